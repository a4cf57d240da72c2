/**
 * Recently touched blobs and repositories, in memory only: what a push in flight has
 * uploaded, mounted or checked (HEAD) but not yet referenced from a manifest. Garbage
 * collection leaves them alone for the grace period, even when the blob's file is old (a
 * client that finds a blob present by HEAD skips uploading it and references it next).
 * Entries older than the grace period are dropped as new ones arrive, so memory is bounded
 * by the push rate times the grace period.
 *
 * When a manifest is deleted, the pushes its blobs were protected for are long over:
 * {@link Touches.settle} drops their marks and records when, so that neither the marks nor
 * the blobs' young files hold them back (a full disk is freed by DELETE and one GC pass, not
 * an hour later). A touch or a new link after that protects a blob again.
 */

/** Touch marks with expiry. */
export class Touches {
  private readonly blobs = new Map<string, number>();
  private readonly repos = new Map<string, number>();
  private readonly digests = new Map<string, number>();
  private readonly settled = new Map<string, number>();
  private lastPrune = 0;

  constructor(
    private readonly graceMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Marks blob `digest` of `repo` (and the repository) as touched now. */
  touch(repo: string, digest: string): void {
    const t = this.now();
    const k = `${repo}\0${digest}`;
    this.blobs.delete(k);
    this.blobs.set(k, t);
    this.repos.delete(repo);
    this.repos.set(repo, t);
    this.digests.delete(digest);
    this.digests.set(digest, t);
    if (t - this.lastPrune > 1000) this.prune(t);
  }

  /**
   * Blobs `digests` of `repo` were referenced by a manifest that has been deleted: their
   * marks are dropped (the digest's too, unless another repository touched it later) and the
   * time is recorded for {@link Touches.settledAfter}.
   */
  settle(repo: string, digests: readonly string[]): void {
    const t = this.now();
    for (const digest of digests) {
      const k = `${repo}\0${digest}`;
      const mark = this.blobs.get(k);
      this.blobs.delete(k);
      const any = this.digests.get(digest);
      if (mark !== undefined && any !== undefined && any <= mark) this.digests.delete(digest);
      this.settled.delete(k);
      this.settled.set(k, t);
    }
    if (t - this.lastPrune > 1000) this.prune(t);
  }

  /**
   * True when blob `digest` of `repo` was settled at or after `fileTimeMs` (the latest change
   * of its file) and has not been touched since: its file's age need not protect it.
   */
  settledAfter(repo: string, digest: string, fileTimeMs: number): boolean {
    const k = `${repo}\0${digest}`;
    const t = this.settled.get(k);
    if (t === undefined || t < fileTimeMs) return false;
    const touched = this.blobs.get(k);
    return touched === undefined || touched < t;
  }

  /** True when blob `digest` of `repo` was touched within the grace period. */
  blobIsFresh(repo: string, digest: string): boolean {
    const t = this.blobs.get(`${repo}\0${digest}`);
    return t !== undefined && this.now() - t < this.graceMs;
  }

  /** True when blob `digest` was touched in any repository within the grace period. */
  digestIsFresh(digest: string): boolean {
    const t = this.digests.get(digest);
    return t !== undefined && this.now() - t < this.graceMs;
  }

  /** When the mark on blob `digest` of `repo` expires (0 when it has none): for GC's "held back until". */
  blobFreshUntil(repo: string, digest: string): number {
    const t = this.blobs.get(`${repo}\0${digest}`);
    return t === undefined ? 0 : t + this.graceMs;
  }

  /** When the mark on blob `digest` in any repository expires (0 when it has none). */
  digestFreshUntil(digest: string): number {
    const t = this.digests.get(digest);
    return t === undefined ? 0 : t + this.graceMs;
  }

  /** True when anything in `repo` was touched within the grace period. */
  repoIsFresh(repo: string): boolean {
    const t = this.repos.get(repo);
    return t !== undefined && this.now() - t < this.graceMs;
  }

  /** Marks held. */
  size(): number {
    return this.blobs.size;
  }

  private prune(t: number): void {
    this.lastPrune = t;
    for (const map of [this.blobs, this.repos, this.digests, this.settled]) {
      for (const [k, at] of map) {
        if (t - at < this.graceMs) break; // insertion order = time order
        map.delete(k);
      }
    }
  }
}
