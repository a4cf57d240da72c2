/**
 * The table of upload sessions in memory, with its bounds: a cap on sessions in total and
 * per client (the peer address), and an expiry timer that removes a session nobody has used
 * for `expiryMs`. The timer is armed only while sessions exist (an idle registry runs
 * none), is unref'd (it never keeps the process alive), and never throws: a removal that
 * fails is reported to the caller's callback and retried on the next pass.
 */
import { StorageError } from "./errors";

/** Bounds on upload sessions (`[storage] max_uploads`, `max_uploads_per_client`, `upload_expiry`). */
export interface UploadLimits {
  /** Sessions open at once, all clients together. */
  maxSessions: number;
  /** Sessions open at once for one client (peer address). */
  maxPerClient: number;
  /** A session idle (no request in progress) this long is removed. */
  expiryMs: number;
}

/** What the table needs to know of a session. */
export interface TrackedSession {
  readonly id: string;
  /** The peer address that opened it, when known. */
  readonly client?: string;
  /** When a request last finished with it (ms since the epoch). */
  lastActive: number;
  /** A request is using it right now: it never expires then. */
  busy: boolean;
}

/** Shortest wait between two expiry passes, in milliseconds. */
const MIN_TICK_MS = 50;

/** Sessions by id, bounded by {@link UploadLimits} (none: unbounded, never expiring). */
export class SessionTable<S extends TrackedSession> {
  private readonly byId = new Map<string, S>();
  private readonly perClient = new Map<string, number>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** `expire` removes an expired session (it must also {@link delete} it); its failures are swallowed. */
  constructor(
    private readonly limits: UploadLimits | undefined,
    private readonly expire: (session: S) => Promise<void>,
  ) {}

  /** The session `id`, if any. */
  get(id: string): S | undefined {
    return this.byId.get(id);
  }

  /** Sessions in the table. */
  get size(): number {
    return this.byId.size;
  }

  /** Every session. */
  values(): IterableIterator<S> {
    return this.byId.values();
  }

  /** Sessions `client` has open. */
  countFor(client: string): number {
    return this.perClient.get(client) ?? 0;
  }

  /**
   * Adds `session`, or throws too-many-uploads when the total or its client's cap is
   * reached. Synchronous, so concurrent requests cannot overshoot the caps.
   */
  add(session: S): void {
    const limits = this.limits;
    if (limits) {
      if (this.byId.size >= limits.maxSessions) {
        throw new StorageError("too-many-uploads", `${this.byId.size} upload sessions are open, the most the registry allows; retry later`);
      }
      const mine = session.client === undefined ? 0 : this.countFor(session.client);
      if (mine >= limits.maxPerClient) {
        throw new StorageError("too-many-uploads", `this client has ${mine} upload sessions open, the most one client may have; finish or cancel one first`);
      }
    }
    this.byId.set(session.id, session);
    if (session.client !== undefined) this.perClient.set(session.client, this.countFor(session.client) + 1);
    this.schedule();
  }

  /** Removes the session `id` (and its client's count), if present. */
  delete(id: string): void {
    const session = this.byId.get(id);
    if (!session) return;
    this.byId.delete(id);
    const client = session.client;
    if (client === undefined) return;
    const left = this.countFor(client) - 1;
    if (left > 0) this.perClient.set(client, left);
    else this.perClient.delete(client);
  }

  /** Stops the expiry timer (the sessions stay). */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Arms the timer for the earliest possible expiry, if any session exists. */
  private schedule(): void {
    const expiryMs = this.limits?.expiryMs;
    if (!expiryMs || this.timer || this.byId.size === 0) return;
    let earliest = Infinity;
    for (const s of this.byId.values()) earliest = Math.min(earliest, s.lastActive);
    const delay = Math.max(MIN_TICK_MS, earliest + expiryMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.sweep(expiryMs).catch(() => {}).finally(() => this.schedule());
    }, delay);
    this.timer.unref?.();
  }

  private async sweep(expiryMs: number): Promise<void> {
    const now = Date.now();
    for (const s of [...this.byId.values()]) {
      if (s.busy || now - s.lastActive < expiryMs) continue;
      await this.expire(s).catch(() => {});
    }
  }
}
