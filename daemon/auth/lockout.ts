/**
 * Failed-login lockout, per source address and per user name. A pure module: it decides,
 * the HTTP front acts (an immediate 429 with `Retry-After`; nobody is made to wait on a held
 * connection, so a locked-out client costs others nothing).
 *
 * Rules:
 * - `perSource` failures from one address within `windowMs` lock that address out of every
 *   login for the lockout period; `perUser` failures for one user name (from anywhere)
 *   lock password logins as that user. 0 turns a rule off.
 * - The period starts at `baseMs` and doubles with each lockout that follows without a
 *   success, up to `maxMs`. An entry idle for longer than `maxMs + windowMs` starts afresh.
 * - A success resets the user's record (counter and doublings). It does not reset the
 *   source's: one valid account must not let an address keep guessing others' passwords.
 * - Attempts refused while locked are not verified and not counted, so a single address
 *   adds at most `perSource` failures to a user per lockout period: with the defaults (5 per
 *   source, 20 per user) one address alone takes the user's lock out of reach for minutes,
 *   while a guess spread over many addresses still meets the per-user rule.
 * - A request without credentials is not a login: `/v2/` probes are never counted.
 *
 * Memory is bounded: at most `maxEntries` sources and as many users are tracked; the least
 * recently failed entry that is not locked is forgotten first (among the oldest few).
 */

/** Options for {@link LoginLockout}. */
export interface LockoutOptions {
  /** Failures from one address before it is locked out; 0 = never. */
  perSource: number;
  /** Failures for one user name before it is locked out; 0 = never. */
  perUser: number;
  windowMs: number;
  baseMs: number;
  maxMs: number;
  /** Sources (and, separately, users) tracked at most. */
  maxEntries: number;
}

/** Whether a login may be attempted; when not, who is locked and for how many seconds. */
export type LockState = { locked: false } | { locked: true; scope: "source" | "user"; retryAfterSeconds: number };

interface Entry {
  failures: number;
  windowStart: number;
  lockedUntil: number;
  /** Lockouts so far without a success (the exponent of the period). */
  strikes: number;
  lastFailure: number;
}

const OPEN: LockState = { locked: false };
/** How many of the oldest entries are looked at for one that is not locked, when full. */
const EVICTION_SCAN = 32;

/** One kind of key (addresses or user names). */
class Counter {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly threshold: number,
    private readonly options: LockoutOptions,
  ) {}

  size(): number {
    return this.entries.size;
  }

  /** Milliseconds left of `key`'s lock at `now`; 0 when not locked. */
  lockedFor(key: string, now: number): number {
    const e = this.entries.get(key);
    return e !== undefined && e.lockedUntil > now ? e.lockedUntil - now : 0;
  }

  fail(key: string, now: number): number {
    if (this.threshold <= 0) return 0;
    const { windowMs, baseMs, maxMs } = this.options;
    let e = this.entries.get(key);
    if (e !== undefined && now - e.lastFailure > maxMs + windowMs && e.lockedUntil <= now) e = undefined;
    if (e === undefined) {
      this.makeRoom(now);
      e = { failures: 0, windowStart: now, lockedUntil: 0, strikes: 0, lastFailure: now };
    }
    this.entries.delete(key);
    this.entries.set(key, e); // most recently failed last
    if (now - e.windowStart > windowMs) {
      e.failures = 0;
      e.windowStart = now;
    }
    e.failures++;
    e.lastFailure = now;
    if (e.failures >= this.threshold) {
      e.strikes++;
      e.lockedUntil = now + Math.min(maxMs, baseMs * 2 ** Math.min(e.strikes - 1, 40));
      e.failures = 0;
      e.windowStart = now;
    }
    return e.lockedUntil > now ? e.lockedUntil - now : 0;
  }

  reset(key: string): void {
    this.entries.delete(key);
  }

  private makeRoom(now: number): void {
    if (this.entries.size < this.options.maxEntries) return;
    let scanned = 0;
    for (const [key, e] of this.entries) {
      if (e.lockedUntil <= now) return void this.entries.delete(key);
      if (++scanned >= EVICTION_SCAN) break;
    }
    this.entries.delete(this.entries.keys().next().value!);
  }
}

/**
 * Failed-login bookkeeping for the authenticator. `now` is a millisecond clock (tests pass
 * a fake one). Addresses and user names are opaque strings; an undefined one is not tracked.
 */
export class LoginLockout {
  private readonly sources: Counter;
  private readonly users: Counter;
  private readonly now: () => number;

  constructor(options: LockoutOptions, now: () => number = Date.now) {
    const bounded = { ...options, maxEntries: Math.max(1, options.maxEntries) };
    this.sources = new Counter(options.perSource, bounded);
    this.users = new Counter(options.perUser, bounded);
    this.now = now;
  }

  /** True when any rule is on (a lockout with none need not be installed). */
  static active(options: LockoutOptions): boolean {
    return options.perSource > 0 || options.perUser > 0;
  }

  /** Entries tracked (sources + users), for tests and metrics. */
  size(): number {
    return this.sources.size() + this.users.size();
  }

  /** Whether a login as `user` from `address` may be attempted now (ask before verifying). */
  check(user: string | undefined, address: string | undefined): LockState {
    const now = this.now();
    const source = address === undefined ? 0 : this.sources.lockedFor(address, now);
    if (source > 0) return { locked: true, scope: "source", retryAfterSeconds: Math.ceil(source / 1000) };
    const byUser = user === undefined ? 0 : this.users.lockedFor(user, now);
    if (byUser > 0) return { locked: true, scope: "user", retryAfterSeconds: Math.ceil(byUser / 1000) };
    return OPEN;
  }

  /** Records a failed login; returns the state it leaves (locked when this failure crossed a threshold). */
  failed(user: string | undefined, address: string | undefined): LockState {
    const now = this.now();
    const source = address === undefined ? 0 : this.sources.fail(address, now);
    const byUser = user === undefined ? 0 : this.users.fail(user, now);
    if (source > 0) return { locked: true, scope: "source", retryAfterSeconds: Math.ceil(source / 1000) };
    if (byUser > 0) return { locked: true, scope: "user", retryAfterSeconds: Math.ceil(byUser / 1000) };
    return OPEN;
  }

  /** Records a successful login: the user's failures and doublings are forgotten. */
  succeeded(user: string | undefined): void {
    if (user !== undefined) this.users.reset(user);
  }
}
