/**
 * Recently touched blobs and repositories, in memory only: what a push in flight has
 * uploaded, mounted or checked (HEAD) but not yet referenced from a manifest. Garbage
 * collection leaves them alone for the grace period, even when the blob's file is old (a
 * client that finds a blob present by HEAD skips uploading it and references it next).
 * Entries older than the grace period are dropped as new ones arrive, so memory is bounded
 * by the push rate times the grace period.
 */

/** Touch marks with expiry. */
export class Touches {
  private readonly blobs = new Map<string, number>();
  private readonly repos = new Map<string, number>();
  private readonly digests = new Map<string, number>();
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
    for (const map of [this.blobs, this.repos, this.digests]) {
      for (const [k, at] of map) {
        if (t - at < this.graceMs) break; // insertion order = time order
        map.delete(k);
      }
    }
  }
}
