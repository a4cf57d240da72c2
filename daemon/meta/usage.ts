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

/** In-memory pull/push statistics with batched flushes to meta.db. */
export class UsageStats {
  private readonly entries = new Map<string, UsageEntry>();
  private readonly dirty = new Set<string>();
  private readonly upsert: Statement<never>;
  private readonly remove: Statement<never>;
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
    const rows = db.prepare<{ repo: string; ref: string; pushed_at: number | null; pulled_at: number | null; pulls: number }>(
      "SELECT repo, ref, pushed_at, pulled_at, pulls FROM usage",
    ).all();
    for (const r of rows) {
      const e: UsageEntry = { pulls: r.pulls };
      if (r.pushed_at !== null) e.pushedAt = r.pushed_at;
      if (r.pulled_at !== null) e.pulledAt = r.pulled_at;
      this.entries.set(key(r.repo, r.ref), e);
    }
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
    const k = key(repo, ref);
    if (!this.entries.delete(k)) return;
    this.dirty.add(k);
  }

  /** What is known about `ref` of `repo`. */
  get(repo: string, ref: string): UsageEntry | undefined {
    return this.entries.get(key(repo, ref));
  }

  /** Most recent push or pull of `ref` (and, for a tag, of the digest it points at). */
  lastUsed(repo: string, ref: string, digest?: string): number | undefined {
    let best: number | undefined;
    for (const r of digest && digest !== ref ? [ref, digest] : [ref]) {
      const e = this.entries.get(key(repo, r));
      for (const t of [e?.pushedAt, e?.pulledAt]) if (t !== undefined && (best === undefined || t > best)) best = t;
    }
    return best;
  }

  /** Every entry of `repo`, by reference. */
  ofRepo(repo: string): Map<string, UsageEntry> {
    const out = new Map<string, UsageEntry>();
    const prefix = `${repo}\0`;
    for (const [k, e] of this.entries) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), e);
    return out;
  }

  /** Writes the entries changed since the last flush in one transaction; returns rows written. */
  flush(): number {
    if (this.dirty.size === 0) return 0;
    const keys = [...this.dirty];
    this.db.transaction(() => {
      for (const k of keys) {
        const [repo, ref] = k.split("\0") as [string, string];
        const e = this.entries.get(k);
        if (e) this.upsert.run(repo, ref, e.pushedAt ?? null, e.pulledAt ?? null, e.pulls);
        else this.remove.run(repo, ref);
      }
    });
    for (const k of keys) this.dirty.delete(k);
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
    const f: UsageFigures = { entries: this.entries.size, dirty: this.dirty.size, flushes: this.flushes, rowsWritten: this.rowsWritten };
    if (this.lastFlush !== undefined) f.lastFlush = this.lastFlush;
    return f;
  }

  private touch(repo: string, ref: string, change: (e: UsageEntry) => void): void {
    const k = key(repo, ref);
    let e = this.entries.get(k);
    if (!e) this.entries.set(k, (e = { pulls: 0 }));
    change(e);
    this.dirty.add(k);
  }
}

function key(repo: string, ref: string): string {
  return `${repo}\0${ref}`;
}
