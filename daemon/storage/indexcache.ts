/**
 * The parsed index.json of recently used repositories, bounded by bytes: each entry weighs
 * the size of its index.json file plus a fixed overhead, and the least recently used entries
 * leave once the total passes the budget. A store of 10,000 repositories therefore keeps
 * only the few it serves (a catalog walk or a GC pass no longer leaves every index parsed in
 * memory), and an entry is always re-read from disk when its file's stamp moved, so nothing
 * here can serve a stale index.
 */
import type { RepoIndex } from "./api";

/** Bytes charged per entry on top of its file size (maps, strings, the entry itself). */
export const INDEX_ENTRY_OVERHEAD = 512;

/** LRU of parsed indexes holding at most `budget` weighted bytes. */
export class IndexCache {
  private readonly entries = new Map<string, { index: RepoIndex; weight: number }>();
  private used = 0;

  /** `budget`: bytes of index.json (plus overhead per entry) kept parsed; 0 keeps none. */
  constructor(private readonly budget: number) {}

  /** The cached index of `name` (now the most recently used), if any. */
  get(name: string): RepoIndex | undefined {
    const hit = this.entries.get(name);
    if (!hit) return undefined;
    this.entries.delete(name);
    this.entries.set(name, hit);
    return hit.index;
  }

  /** Caches `index` of `name`, whose index.json has `fileBytes`; evicts the oldest to fit. */
  set(name: string, index: RepoIndex, fileBytes: number): void {
    this.delete(name);
    const weight = fileBytes + INDEX_ENTRY_OVERHEAD;
    if (weight > this.budget) return;
    this.entries.set(name, { index, weight });
    this.used += weight;
    for (const [key, old] of this.entries) {
      if (this.used <= this.budget) break;
      this.entries.delete(key);
      this.used -= old.weight;
    }
  }

  /** Forgets every index (an idle registry over its memory limit); each is read again on its next use. */
  clear(): void {
    this.entries.clear();
    this.used = 0;
  }

  /** Forgets `name`. */
  delete(name: string): void {
    const old = this.entries.get(name);
    if (!old) return;
    this.entries.delete(name);
    this.used -= old.weight;
  }

  /** Weighted bytes held. */
  size(): number {
    return this.used;
  }

  /** Entries held. */
  count(): number {
    return this.entries.size;
  }
}
