/**
 * Authorization: which actions (pull, push, delete) an identity may take on a repository.
 * A pure function of a compiled policy, a principal (or none: anonymous) and a repository
 * name; no IO, no clock, no cache (the cache per repository lives in access/access.ts).
 *
 * Rules come from `[[access]]` tables. For a repository, the ONE most specific rule whose
 * globs match it decides, and everything it does not grant is denied (so is a repository
 * no rule matches). Specificity of a glob, compared in this order:
 *   1. the longer literal prefix (characters before the first `*` or `?`) wins;
 *   2. then the glob with fewer `**` wins;
 *   3. then the glob with fewer single wildcards (`*`, `?`) wins;
 *   4. then the longer glob wins;
 *   5. then the rule written first in the file wins.
 * So `factory/app` beats `factory/*`, which beats `factory/**`, which beats `**`.
 *
 * Within the deciding rule an identity gets the union of `anonymous`, `authenticated`,
 * `users[name]` and `groups[g]` for each of its groups; an anonymous caller gets only
 * `anonymous`. Admins (by name or group) may do everything. A credential's own limits
 * (`Principal.limits`: an API key's scopes, a token's access claims) intersect the grant.
 */
import type { Action, Principal, ScopeLimit } from "../auth/identity";
import { type NameMatcher, globMatcher, globToRegExp, globSpecificity, moreSpecificFirst } from "../oci/glob";

/** Action bits: a set of actions as a number (cheap to cache and intersect). */
export const PULL = 1;
export const PUSH = 2;
export const DELETE = 4;
/** Every action. */
export const ALL = PULL | PUSH | DELETE;

const BIT: Record<Action, number> = { pull: PULL, push: PUSH, delete: DELETE };

/** The bit of one action. */
export function bitOf(action: Action): number {
  return BIT[action];
}

/** Actions as bits; `*` means all. */
export function bitsOf(actions: readonly string[]): number {
  let bits = 0;
  for (const a of actions) bits |= a === "*" ? ALL : (BIT[a as Action] ?? 0);
  return bits;
}

/** One `[[access]]` table as written in the configuration. */
export interface AccessRuleConfig {
  repos: string[];
  anonymous: string[];
  authenticated: string[];
  users: Record<string, string[]>;
  groups: Record<string, string[]>;
}

/** Who is an admin, and who may read /metrics (`[auth]`). */
export interface RolesConfig {
  admins: readonly string[];
  adminGroups: readonly string[];
  metricsUsers: readonly string[];
  metricsGroups: readonly string[];
  /** /metrics readable without credentials. */
  metricsAnonymous: boolean;
}

interface CompiledRule {
  index: number;
  anonymous: number;
  authenticated: number;
  users: Map<string, number>;
  groups: Map<string, number>;
}

interface CompiledGlob {
  re: RegExp;
  /** Sort key: greater is more specific. */
  rank: [number, number, number, number, number];
  rule: CompiledRule;
}

/** A policy ready for evaluation: build with {@link compilePolicy}. */
export interface Policy {
  /** Globs of every rule, most specific first. */
  readonly globs: readonly CompiledGlob[];
  readonly roles: RolesConfig;
  /** True when anonymous callers may pull every repository name (then `GET /v2/` answers 200 to them). */
  readonly anonymousPullsAll: boolean;
  /** True when some rule grants anonymous callers pull. */
  readonly anonymousPullsAny: boolean;
}


function grantMap(table: Record<string, string[]>): Map<string, number> {
  return new Map(Object.entries(table).map(([k, v]) => [k, bitsOf(v)]));
}

/** Compiles rules and roles into a {@link Policy}. Rules are assumed validated (config/access.ts). */
export function compilePolicy(rules: readonly AccessRuleConfig[], roles: RolesConfig): Policy {
  const globs: CompiledGlob[] = [];
  rules.forEach((r, index) => {
    const rule: CompiledRule = {
      index,
      anonymous: bitsOf(r.anonymous),
      authenticated: bitsOf(r.authenticated),
      users: grantMap(r.users),
      groups: grantMap(r.groups),
    };
    for (const g of r.repos) globs.push({ re: globToRegExp(g), rank: globSpecificity(g, index), rule });
  });
  globs.sort((a, b) => moreSpecificFirst(a.rank, b.rank));
  // conservative: a rule for every name exists, and every rule lets anonymous callers pull
  const anonymousPullsAll = rules.some((r) => r.repos.includes("**")) && rules.every((r) => (bitsOf(r.anonymous) & PULL) !== 0);
  const anonymousPullsAny = rules.some((r) => (bitsOf(r.anonymous) & PULL) !== 0);
  return { globs, roles, anonymousPullsAll, anonymousPullsAny };
}

/** The index of the rule that decides for `repo`, or -1 when none matches. */
export function decidingRule(policy: Policy, repo: string): number {
  for (const g of policy.globs) if (g.re.test(repo)) return g.rule.index;
  return -1;
}

/** True when the principal is an admin (by name, by group, or the admin token). */
export function isAdmin(policy: Policy, principal: Principal | undefined): boolean {
  if (!principal) return false;
  if (principal.source === "admin-token") return true;
  const { admins, adminGroups } = policy.roles;
  return admins.includes(principal.name) || principal.groups.some((g) => adminGroups.includes(g));
}

/** True when the caller may read /metrics (admins, metrics readers, or anyone when allowed). */
export function mayReadMetrics(policy: Policy, principal: Principal | undefined): boolean {
  const { metricsUsers, metricsGroups, metricsAnonymous } = policy.roles;
  if (metricsAnonymous) return true;
  if (!principal) return false;
  return isAdmin(policy, principal) || metricsUsers.includes(principal.name) || principal.groups.some((g) => metricsGroups.includes(g));
}

const limitGlobs = new Map<string, NameMatcher>();

/** A credential's glob (written by a user: an API key scope), matched without backtracking. */
function limitGlob(glob: string): NameMatcher {
  let m = limitGlobs.get(glob);
  if (!m) {
    if (limitGlobs.size >= 1024) limitGlobs.clear();
    limitGlobs.set(glob, (m = globMatcher(glob)));
  }
  return m;
}

/** The actions a credential's own limits allow on `repo` (ALL when it carries none). */
export function limitBits(limits: readonly ScopeLimit[] | undefined, repo: string): number {
  if (limits === undefined) return ALL;
  let bits = 0;
  for (const l of limits) if (l.repos.some((g) => limitGlob(g).test(repo))) bits |= bitsOf(l.actions);
  return bits;
}

/** The actions an anonymous caller may take on `repo` (bits). */
export function anonymousActions(policy: Policy, repo: string): number {
  for (const g of policy.globs) if (g.re.test(repo)) return g.rule.anonymous;
  return 0;
}

/**
 * The actions `principal` (undefined: anonymous) may take on `repo`, as bits: see the file
 * comment for the rules.
 */
export function allowedActions(policy: Policy, principal: Principal | undefined, repo: string): number {
  if (!principal) return anonymousActions(policy, repo);
  let bits: number;
  if (isAdmin(policy, principal)) bits = ALL;
  else {
    let rule: CompiledRule | undefined;
    for (const g of policy.globs) {
      if (g.re.test(repo)) {
        rule = g.rule;
        break;
      }
    }
    if (!rule) return 0;
    bits = rule.anonymous | rule.authenticated | (rule.users.get(principal.name) ?? 0);
    for (const group of principal.groups) bits |= rule.groups.get(group) ?? 0;
  }
  return bits & limitBits(principal.limits, repo);
}

/** True when `principal` may take `action` on `repo`. */
export function allows(policy: Policy, principal: Principal | undefined, repo: string, action: Action): boolean {
  return (allowedActions(policy, principal, repo) & BIT[action]) !== 0;
}
