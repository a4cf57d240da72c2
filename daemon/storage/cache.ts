/**
 * A byte-bounded LRU cache of manifest bodies, keyed by digest. Content-addressed entries
 * never go stale, so there is nothing to invalidate; entries leave only to make room.
 */

/** A cached manifest. */
export interface CachedManifest {
  readonly bytes: Uint8Array;
  readonly mediaType: string;
}

/** LRU of manifests holding at most `capacity` bytes of bodies. */
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

  set(digest: string, entry: CachedManifest): void {
    const size = entry.bytes.byteLength;
    if (size > this.capacity / 4 || this.entries.has(digest)) return;
    this.entries.set(digest, entry);
    this.used += size;
    for (const [key, old] of this.entries) {
      if (this.used <= this.capacity) break;
      this.entries.delete(key);
      this.used -= old.bytes.byteLength;
    }
  }

  /** Drops `digest` (its blob was found corrupt and quarantined). */
  delete(digest: string): void {
    const old = this.entries.get(digest);
    if (!old) return;
    this.entries.delete(digest);
    this.used -= old.bytes.byteLength;
  }

  /** Bytes held. */
  size(): number {
    return this.used;
  }
}
