/**
 * The audit trail: who changed what, as JSON lines through the logger (`"msg":"audit"` and an
 * `audit` field naming the event), so it goes wherever the log goes (journald, a collector)
 * and berth writes no file of its own. Events:
 *   push        a manifest stored: identity, source address, repo, reference, digest, tags
 *   tag-move    a push moved a tag that pointed at another manifest (`from` is the old digest)
 *   delete      a manifest, tag or blob deleted (`kind`)
 *   login-failed  credentials refused (user, source, reason; `locked`: the seconds of the
 *               lockout this failure started). Attempts refused while locked are not logged
 *               one by one (a flood would fill the log); the lockout's start is.
 *   admin       an admin API request that changes something (method, path, status)
 *   pulls       with `[audit] pulls = true`: manifest GETs counted in memory per identity,
 *               repo and digest, written as one line per interval (never a line per pull)
 *
 * An anonymous caller is `"identity": null`. The identity comes from the principal the HTTP
 * front decides once per request (auth/identity.ts); the source address from the connection.
 */
import type { Principal } from "../auth/identity";
import type { Logger } from "../log";

/** Who asked: the principal (undefined: anonymous) and the peer's address (undefined: unknown). */
export interface Actor {
  principal?: Principal | undefined;
  address?: string | undefined;
}

/** Options for {@link AuditTrail}. */
export interface AuditOptions {
  /** Count manifest pulls and write them in batches. */
  pulls: boolean;
  /** Milliseconds between pull batches. */
  pullIntervalMs: number;
  /** Distinct identity/repo/digest triples kept per batch; the rest are counted in `others`. */
  maxPullEntries?: number;
}

interface PullCount {
  identity: string | null;
  repo: string;
  digest: string;
  count: number;
}

const DEFAULT_PULL_ENTRIES = 1024;

/** The fields every event carries about its actor. */
function who(actor: Actor): Record<string, unknown> {
  const p = actor.principal;
  return {
    identity: p ? p.name : null,
    ...(p ? { via: p.source } : {}),
    ...(p?.keyId !== undefined ? { key: p.keyId } : {}),
    address: actor.address ?? null,
  };
}

/**
 * Writes audit events to `log` (give it a logger at info level whatever `[log] level` says,
 * so the trail is never filtered away). `now` is a millisecond clock for the pull batches.
 */
export class AuditTrail {
  private readonly pulls = new Map<string, PullCount>();
  private others = 0;
  private since: number;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly maxPullEntries: number;

  constructor(
    private readonly log: Logger,
    private readonly options: AuditOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.maxPullEntries = options.maxPullEntries ?? DEFAULT_PULL_ENTRIES;
    this.since = now();
  }

  /** Starts the pull batches' timer (when pulls are audited); {@link close} stops it. */
  start(): void {
    if (!this.options.pulls || this.timer) return;
    this.timer = setInterval(() => this.flushPulls(), this.options.pullIntervalMs);
    this.timer.unref?.();
  }

  /** Flushes the last pull batch and stops the timer. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.flushPulls();
  }

  /** True when pulls are counted (the handler may skip calling {@link pulled} otherwise). */
  get auditsPulls(): boolean {
    return this.options.pulls;
  }

  /** A manifest was stored; `moved` are tags that pointed at another manifest before. */
  pushed(actor: Actor, repo: string, reference: string, digest: string, tags: readonly string[], moved: readonly { tag: string; from: string }[] = []): void {
    const base = who(actor);
    this.log.info("audit", { audit: "push", ...base, repo, reference, digest, tags });
    for (const m of moved) this.log.info("audit", { audit: "tag-move", ...base, repo, tag: m.tag, from: m.from, digest });
  }

  /** A manifest (by digest), a tag or a blob was deleted. */
  deleted(actor: Actor, kind: "manifest" | "tag" | "blob", repo: string, reference: string): void {
    this.log.info("audit", { audit: "delete", ...who(actor), kind, repo, reference });
  }

  /** Credentials were refused; `lockedForSeconds` when this failure started a lockout. */
  loginFailed(user: string | undefined, address: string | undefined, reason: string, lockedForSeconds?: number): void {
    this.log.info("audit", {
      audit: "login-failed",
      user: user === undefined ? null : redactSecrets(user),
      address: address ?? null,
      reason: redactSecrets(reason),
      ...(lockedForSeconds !== undefined ? { locked: lockedForSeconds } : {}),
    });
  }

  /** A manifest was not served because its repository requires a verified signature it lacks. */
  unsigned(repo: string, reference: string, digest: string, reason: string): void {
    this.log.info("audit", { audit: "signature-refused", repo, reference, digest, reason });
  }

  /** An admin API request that changes something (or was refused), with its answer's status. */
  admin(actor: Actor, method: string, path: string, status: number): void {
    this.log.info("audit", { audit: "admin", ...who(actor), method, path, status });
  }

  /** A manifest was pulled: counted in memory, written with the next batch. */
  pulled(actor: Actor, repo: string, digest: string): void {
    if (!this.options.pulls) return;
    const identity = actor.principal ? actor.principal.name : null;
    const key = `${identity ?? ""}\u0000${repo}\u0000${digest}`;
    const entry = this.pulls.get(key);
    if (entry) entry.count++;
    else if (this.pulls.size < this.maxPullEntries) this.pulls.set(key, { identity, repo, digest, count: 1 });
    else this.others++;
  }

  /** Writes the pull batch as one line (nothing when there were no pulls) and starts a new one. */
  flushPulls(): void {
    const until = this.now();
    if (this.pulls.size > 0 || this.others > 0) {
      const pulls = [...this.pulls.values()];
      const total = pulls.reduce((n, p) => n + p.count, this.others);
      this.log.info("audit", {
        audit: "pulls",
        since: new Date(this.since).toISOString(),
        until: new Date(until).toISOString(),
        total,
        pulls,
        ...(this.others > 0 ? { others: this.others } : {}),
      });
      this.pulls.clear();
      this.others = 0;
    }
    this.since = until;
  }
}

/**
 * `text` with credentials cut out: an API key keeps its id (`berth_<id>_…`), a JWT becomes
 * `<token>`. A client that sends a key or token as the Basic user name (as some registries
 * accept) must not leave it in the log through the failed login's user name or reason.
 */
export function redactSecrets(text: string): string {
  if (!text.includes("berth_") && !text.includes("eyJ")) return text;
  return text.replace(/(berth_[0-9a-f]{16}_)[A-Za-z0-9_-]*/g, "$1…").replace(/eyJ[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*){1,2}/g, "<token>");
}
