/**
 * Sync's durable state, in the meta database (tables of their own, created here; the
 * derived index's schema version is not touched, and nothing here is derivable from the
 * layouts, so a rebuild of the index leaves these tables alone):
 *
 * - `sync_tags`: per local repository and tag, the upstream registry, the digest last seen
 *   upstream, when it was last checked (a tag is re-checked at most once per interval, also
 *   across restarts), and when a local client last pulled it (the warm set).
 * - `sync_pins`: tags that must always be mirrored and never evicted (GC reads
 *   {@link SyncState.isPinned}).
 *
 * Pulls are batched by the caller and written in one transaction (an SD card wears with
 * every small write).
 */
import type { SqlDatabase, Statement } from "../platform/sqlite";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS sync_tags (
  repo TEXT NOT NULL, tag TEXT NOT NULL, registry TEXT NOT NULL,
  digest TEXT, checked_at INTEGER NOT NULL DEFAULT 0, pulled_at INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (repo, tag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sync_tags_by_pull ON sync_tags (pulled_at);
CREATE TABLE IF NOT EXISTS sync_pins (
  repo TEXT NOT NULL, tag TEXT NOT NULL, registry TEXT NOT NULL,
  PRIMARY KEY (repo, tag)
) WITHOUT ROWID;
`;

/** A tag in the warm set. */
export interface WarmTag {
  repo: string;
  tag: string;
  registry: string;
  pulledAt: number;
}

/** Sync's tables. */
export class SyncState {
  private readonly q: {
    checked: Statement<{ checked_at: number; digest: string | null }>;
    markChecked: Statement<never>;
    pulled: Statement<never>;
    dropPull: Statement<never>;
    warm: Statement<{ repo: string; tag: string; registry: string; pulled_at: number }>;
    pinned: Statement<{ one: number }>;
    clearPins: Statement<never>;
    addPin: Statement<never>;
    pins: Statement<{ repo: string; tag: string; registry: string }>;
  };

  constructor(private readonly db: SqlDatabase) {
    db.exec(SCHEMA);
    this.q = {
      checked: db.prepare("SELECT checked_at, digest FROM sync_tags WHERE repo = ? AND tag = ?"),
      markChecked: db.prepare(
        "INSERT INTO sync_tags (repo, tag, registry, digest, checked_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (repo, tag) DO UPDATE SET registry = excluded.registry, digest = excluded.digest, checked_at = excluded.checked_at",
      ),
      pulled: db.prepare(
        "INSERT INTO sync_tags (repo, tag, registry, pulled_at) VALUES (?, ?, ?, ?) ON CONFLICT (repo, tag) DO UPDATE SET pulled_at = max(pulled_at, excluded.pulled_at)",
      ),
      dropPull: db.prepare("UPDATE sync_tags SET pulled_at = 0 WHERE repo = ? AND tag = ?"),
      warm: db.prepare("SELECT repo, tag, registry, pulled_at FROM sync_tags WHERE pulled_at >= ? AND registry = ? ORDER BY pulled_at DESC"),
      pinned: db.prepare("SELECT 1 AS one FROM sync_pins WHERE repo = ? AND tag = ?"),
      clearPins: db.prepare("DELETE FROM sync_pins WHERE registry = ?"),
      addPin: db.prepare("INSERT OR REPLACE INTO sync_pins (repo, tag, registry) VALUES (?, ?, ?)"),
      pins: db.prepare("SELECT repo, tag, registry FROM sync_pins ORDER BY repo, tag"),
    };
  }

  /** When the tag was last checked upstream (ms since the epoch; 0 = never) and the digest seen then. */
  lastCheck(repo: string, tag: string): { at: number; digest: string | undefined } {
    const row = this.q.checked.get(repo, tag);
    return { at: row?.checked_at ?? 0, digest: row?.digest ?? undefined };
  }

  /** Records that `tag` was checked upstream at `at` and pointed at `digest`. */
  markChecked(registry: string, repo: string, tag: string, digest: string, at = Date.now()): void {
    this.q.markChecked.run(repo, tag, registry, digest, at);
  }

  /** Records a batch of local pulls (repo, tag, registry, time) in one transaction. */
  recordPulls(pulls: readonly { repo: string; tag: string; registry: string; at: number }[]): void {
    if (pulls.length === 0) return;
    this.db.transaction(() => {
      for (const p of pulls) this.q.pulled.run(p.repo, p.tag, p.registry, p.at);
    });
  }

  /** Takes `repo:tag` out of the warm set (the upstream no longer has it); a later pull puts it back. */
  dropPull(repo: string, tag: string): void {
    this.q.dropPull.run(repo, tag);
  }

  /** Tags of `registry` pulled locally since `since` (ms since the epoch), newest first. */
  warm(registry: string, since: number): WarmTag[] {
    return this.q.warm.all(since, registry).map((r) => ({ repo: r.repo, tag: r.tag, registry: r.registry, pulledAt: r.pulled_at }));
  }

  /** Replaces the pins of `registry` (local repository names). */
  setPins(registry: string, pins: readonly { repo: string; tag: string }[]): void {
    this.db.transaction(() => {
      this.q.clearPins.run(registry);
      for (const p of pins) this.q.addPin.run(p.repo, p.tag, registry);
    });
  }

  /** True when `repo:tag` (local names) is pinned: garbage collection and eviction must keep it. */
  isPinned(repo: string, tag: string): boolean {
    return this.q.pinned.get(repo, tag) !== undefined;
  }

  /** Every pin. */
  pins(): { repo: string; tag: string; registry: string }[] {
    return this.q.pins.all();
  }
}
