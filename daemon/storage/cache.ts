/**
 * A byte-bounded LRU cache of manifest bodies, keyed by digest. Content-addressed entries
 * never go stale, so there is nothing to invalidate; entries leave only to make room. Each
 * entry weighs its body plus {@link MANIFEST_ENTRY_OVERHEAD}, so the budget bounds the memory
 * the cache really holds: an image manifest is ~400-1,000 bytes, and counting bodies alone
 * let an 8 MiB budget keep ~20,000 of them, ~30 MiB of memory.
 */

/**
 * Bytes charged per entry on top of its body: the Uint8Array and its buffer, the digest key,
 * the map entry and the record (measured: ~1.1 KiB per entry of a 400-byte body in Bun 1.4).
 */
export const MANIFEST_ENTRY_OVERHEAD = 1024;

/** A cached manifest. */
export interface CachedManifest {
  readonly bytes: Uint8Array;
  readonly mediaType: string;
}

/** LRU of manifests holding at most `capacity` weighted bytes (bodies plus overhead). */
export class ManifestCache {
  private readonly entries = new Map<string, CachedManifest>();
  private used = 0;

  constructor(private readonly capacity: number) {}

  get(digest: string): CachedManifest | undefined {
    const hit = this.entries.get(digest);
    if (hit) {
      this.entries.delete(digest);
      this.entries.set(digest, hit);
    }
    return hit;
  }

  /** Drops every entry (an idle registry over its memory limit); they come back as manifests are read. */
  clear(): void {
    this.entries.clear();
    this.used = 0;
  }

  set(digest: string, entry: CachedManifest): void {
    const size = weigh(entry);
    if (size > this.capacity / 4 || this.entries.has(digest)) return;
    this.entries.set(digest, entry);
    this.used += size;
    for (const [key, old] of this.entries) {
      if (this.used <= this.capacity) break;
      this.entries.delete(key);
      this.used -= weigh(old);
    }
  }

  /** Drops `digest` (its blob was found corrupt and quarantined). */
  delete(digest: string): void {
    const old = this.entries.get(digest);
    if (!old) return;
    this.entries.delete(digest);
    this.used -= weigh(old);
  }

  /** Weighted bytes held (bodies plus overhead). */
  size(): number {
    return this.used;
  }
}

/** What an entry is charged against the budget. */
function weigh(entry: CachedManifest): number {
  return entry.bytes.byteLength + MANIFEST_ENTRY_OVERHEAD;
}
