/**
 * The running policy: the compiled {@link Policy} (swapped whole on a reload) and a cache of
 * anonymous decisions per repository, so an anonymous pull pays one map lookup. Every
 * handler that reads, writes or lists asks this object (the /v2 handler, the catalog filter,
 * the token endpoint, the admin API and /metrics guards).
 */
import type { Action, Principal } from "../auth/identity";
import { ACTIONS } from "../auth/identity";
import { type Policy, allowedActions, anonymousActions, bitOf, isAdmin, mayReadMetrics } from "./policy";

/** Repositories whose anonymous decision is cached; the cache is cleared when it fills. */
const ANONYMOUS_CACHE_ENTRIES = 4096;

/** The policy in force, with its per-repository cache for anonymous callers. */
export class Access {
  private current: Policy;
  private anonymous = new Map<string, number>();

  constructor(policy: Policy) {
    this.current = policy;
  }

  /** The policy in force. */
  get policy(): Policy {
    return this.current;
  }

  /** Puts a new policy in force (a reload); cached decisions are dropped. */
  replace(policy: Policy): void {
    this.current = policy;
    this.anonymous = new Map();
  }

  /** The actions (bits, see access/policy.ts) `principal` may take on `repo`. */
  actions(principal: Principal | undefined, repo: string): number {
    if (principal) return allowedActions(this.current, principal, repo);
    let bits = this.anonymous.get(repo);
    if (bits === undefined) {
      bits = anonymousActions(this.current, repo);
      if (this.anonymous.size >= ANONYMOUS_CACHE_ENTRIES) this.anonymous.clear();
      this.anonymous.set(repo, bits);
    }
    return bits;
  }

  /** True when `principal` may take `action` on `repo`. */
  may(principal: Principal | undefined, repo: string, action: Action): boolean {
    return (this.actions(principal, repo) & bitOf(action)) !== 0;
  }

  /** The actions as words (for the token endpoint). */
  grant(principal: Principal | undefined, repo: string): Action[] {
    const bits = this.actions(principal, repo);
    return ACTIONS.filter((a) => (bits & bitOf(a)) !== 0);
  }

  /** A predicate for listings (catalog): the repositories `principal` may pull. */
  visible(principal: Principal | undefined): (repo: string) => boolean {
    return (repo) => this.may(principal, repo, "pull");
  }

  /** True when `GET /v2/` answers 200: any identity, or anonymous when anonymous may pull every repository. */
  base(principal: Principal | undefined): boolean {
    return principal !== undefined || this.current.anonymousPullsAll;
  }

  /** True when the principal may use the admin API (an admin whose credential carries no limits). */
  admin(principal: Principal | undefined): boolean {
    return isAdmin(this.current, principal) && principal?.limits === undefined;
  }

  /** True when the caller may read /metrics. */
  metrics(principal: Principal | undefined): boolean {
    return mayReadMetrics(this.current, principal);
  }
}
