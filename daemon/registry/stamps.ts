/**
 * Which index.json stamp each recently used repository's derived rows were brought up to,
 * bounded by bytes: a name and its stamp weigh their lengths plus a fixed overhead, and the
 * least recently used leave first. A forgotten repository costs one lookup in meta.db (its
 * stored stamp) the next time, never a wrong answer, so the bound only trades memory for
 * that lookup on a store with more repositories than fit.
 */

/** Bytes charged per entry on top of the name and stamp. */
const OVERHEAD = 64;

/** Default budget: about 2,000 repositories of typical name length. */
export const STAMP_MEMO_BYTES = 256 * 1024;

/** An LRU of repository -> stamp within `budget` bytes. */
export class StampMemo {
  private readonly entries = new Map<string, string>();
  private used = 0;

  constructor(private readonly budget: number = STAMP_MEMO_BYTES) {}

  /** The remembered stamp of `repo` (now the most recently used), if any. */
  get(repo: string): string | undefined {
    const stamp = this.entries.get(repo);
    if (stamp === undefined) return undefined;
    this.entries.delete(repo);
    this.entries.set(repo, stamp);
    return stamp;
  }

  /** Remembers `stamp` for `repo`, evicting the least recently used to stay within budget. */
  set(repo: string, stamp: string): void {
    this.delete(repo);
    const weight = weigh(repo, stamp);
    if (weight > this.budget) return;
    this.entries.set(repo, stamp);
    this.used += weight;
    for (const [key, old] of this.entries) {
      if (this.used <= this.budget) break;
      this.entries.delete(key);
      this.used -= weigh(key, old);
    }
  }

  /** Forgets `repo`. */
  delete(repo: string): void {
    const old = this.entries.get(repo);
    if (old === undefined) return;
    this.entries.delete(repo);
    this.used -= weigh(repo, old);
  }

  /** Weighted bytes held. */
  size(): number {
    return this.used;
  }
}

function weigh(repo: string, stamp: string): number {
  return (repo.length + stamp.length) * 2 + OVERHEAD;
}
