/**
 * Pull and push statistics per repository reference (a tag or a manifest digest), for
 * retention ("keep what was pulled lately") and eviction ("least recently pulled first").
 *
 * Pulls must not write: every pull only updates a map in memory. The map is flushed to the
 * `usage` table of meta.db in one transaction on an interval and at shutdown, and only the
 * entries that changed since the last flush are written; with nothing changed a flush writes
 * nothing at all, so an idle registry stays idle. A power cut loses at most one interval of
 * statistics, which only makes retention and eviction slightly less informed.
 *
 * Only the changes not yet flushed live in memory (at most MAX_PENDING entries: one more
 * flushes at once); everything else is read from the table when asked for, so the memory
 * this costs does not grow with the number of references in the store.
 *
 * Table version 1 (created beside the derived index; unlike it, not rebuildable from disk).
 */
import type { SqlDatabase, Statement } from "../platform/sqlite";

const TABLE = `
CREATE TABLE IF NOT EXISTS usage (
  repo TEXT NOT NULL, ref TEXT NOT NULL,
  pushed_at INTEGER, pulled_at INTEGER, pulls INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (repo, ref)
) WITHOUT ROWID;
`;

/** What is known about one reference; times are milliseconds since the epoch. */
export interface UsageEntry {
  pushedAt?: number;
  pulledAt?: number;
  pulls: number;
}

/** Figures about the statistics themselves. */
export interface UsageFigures {
  entries: number;
  dirty: number;
  flushes: number;
  rowsWritten: number;
  lastFlush?: number;
}

/** Changes kept in memory before a flush is forced (about 150 bytes each). */
export const MAX_PENDING = 8192;

type Row = { ref: string; pushed_at: number | null; pulled_at: number | null; pulls: number };

function entryOf(r: Row): UsageEntry {
  const e: UsageEntry = { pulls: r.pulls };
  if (r.pushed_at !== null) e.pushedAt = r.pushed_at;
  if (r.pulled_at !== null) e.pulledAt = r.pulled_at;
  return e;
}

/** Pull/push statistics: changes in memory until a batched flush to meta.db, the rest read from it. */
export class UsageStats {
  /** Changes since the last flush: an entry, or null for a forgotten reference. */
  private readonly pending = new Map<string, UsageEntry | null>();
  private readonly upsert: Statement<never>;
  private readonly remove: Statement<never>;
  private readonly one: Statement<Row>;
  private readonly ofOne: Statement<Row>;
  private readonly count: Statement<{ n: number }>;
  private flushes = 0;
  private rowsWritten = 0;
  private lastFlush: number | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly db: SqlDatabase,
    private readonly now: () => number = Date.now,
  ) {
    db.exec(TABLE);
    this.upsert = db.prepare("INSERT OR REPLACE INTO usage (repo, ref, pushed_at, pulled_at, pulls) VALUES (?, ?, ?, ?, ?)");
    this.remove = db.prepare("DELETE FROM usage WHERE repo = ? AND ref = ?");
    this.one = db.prepare<Row>("SELECT ref, pushed_at, pulled_at, pulls FROM usage WHERE repo = ? AND ref = ?");
    this.ofOne = db.prepare<Row>("SELECT ref, pushed_at, pulled_at, pulls FROM usage WHERE repo = ?");
    this.count = db.prepare<{ n: number }>("SELECT count(*) AS n FROM usage");
  }

  /** Records a pull of `reference`, and of the digest it resolved to. Memory only. */
  pulled(repo: string, reference: string, digest: string): void {
    const t = this.now();
    this.touch(repo, reference, (e) => {
      e.pulledAt = t;
      e.pulls++;
    });
    if (reference !== digest) this.touch(repo, digest, (e) => (e.pulledAt = t));
  }

  /** Records a push of manifest `digest` under `tags`. Memory only; flushed with the pulls. */
  pushed(repo: string, digest: string, tags: readonly string[]): void {
    const t = this.now();
    for (const ref of [digest, ...tags]) this.touch(repo, ref, (e) => (e.pushedAt = t));
  }

  /** Forgets a reference (a deleted tag or manifest). */
  forget(repo: string, ref: string): void {
    if (this.get(repo, ref) === undefined) return;
    this.pending.set(key(repo, ref), null);
    this.bound();
  }

  /** What is known about `ref` of `repo`. */
  get(repo: string, ref: string): UsageEntry | undefined {
    const p = this.pending.get(key(repo, ref));
    if (p !== undefined) return p ?? undefined;
    const r = this.one.get(repo, ref);
    return r ? entryOf(r) : undefined;
  }

  /** Most recent push or pull of `ref` (and, for a tag, of the digest it points at). */
  lastUsed(repo: string, ref: string, digest?: string): number | undefined {
    let best: number | undefined;
    for (const r of digest && digest !== ref ? [ref, digest] : [ref]) {
      const e = this.get(repo, r);
      for (const t of [e?.pushedAt, e?.pulledAt]) if (t !== undefined && (best === undefined || t > best)) best = t;
    }
    return best;
  }

  /** Every entry of `repo`, by reference. */
  ofRepo(repo: string): Map<string, UsageEntry> {
    const out = new Map<string, UsageEntry>();
    for (const r of this.ofOne.all(repo)) out.set(r.ref, entryOf(r));
    const prefix = `${repo}\0`;
    for (const [k, e] of this.pending) {
      if (!k.startsWith(prefix)) continue;
      if (e) out.set(k.slice(prefix.length), e);
      else out.delete(k.slice(prefix.length));
    }
    return out;
  }

  /** Writes the entries changed since the last flush in one transaction; returns rows written. */
  flush(): number {
    if (this.pending.size === 0) return 0;
    const changes = [...this.pending];
    this.db.transaction(() => {
      for (const [k, e] of changes) {
        const [repo, ref] = k.split("\0") as [string, string];
        if (e) this.upsert.run(repo, ref, e.pushedAt ?? null, e.pulledAt ?? null, e.pulls);
        else this.remove.run(repo, ref);
      }
    });
    // an entry changed again while this ran (nothing awaits above, but stay exact) stays pending
    for (const [k, e] of changes) if (this.pending.get(k) === e) this.pending.delete(k);
    const keys = changes;
    this.flushes++;
    this.rowsWritten += keys.length;
    this.lastFlush = this.now();
    return keys.length;
  }

  /** Flushes every `intervalMs` (the timer does not keep the process alive). */
  startFlushing(intervalMs: number, onError: (err: unknown) => void): void {
    this.stopFlushing();
    this.timer = setInterval(() => {
      try {
        this.flush();
      } catch (err) {
        onError(err);
      }
    }, intervalMs);
    this.timer.unref?.();
  }

  /** Stops the flush timer (call {@link flush} afterwards at shutdown). */
  stopFlushing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Figures for the admin API. */
  figures(): UsageFigures {
    const f: UsageFigures = { entries: this.count.get()?.n ?? 0, dirty: this.pending.size, flushes: this.flushes, rowsWritten: this.rowsWritten };
    if (this.lastFlush !== undefined) f.lastFlush = this.lastFlush;
    return f;
  }

  private touch(repo: string, ref: string, change: (e: UsageEntry) => void): void {
    const k = key(repo, ref);
    let e = this.pending.get(k);
    if (!e) this.pending.set(k, (e = e === null ? { pulls: 0 } : (this.get(repo, ref) ?? { pulls: 0 })));
    change(e);
    this.bound();
  }

  /** Flushes at once when more changes wait than {@link MAX_PENDING}. */
  private bound(): void {
    if (this.pending.size <= MAX_PENDING) return;
    try {
      this.flush();
    } catch {
      // meta.db cannot be written right now (a full disk): the changes stay pending and the
      // interval's flush retries (and reports) them
    }
  }
}

function key(repo: string, ref: string): string {
  return `${repo}\0${ref}`;
}
