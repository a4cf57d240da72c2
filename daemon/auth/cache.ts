/**
 * A cache of credentials already verified, so a client sending Basic credentials on every
 * request pays for bcrypt once. The key is sha256(user \0 password \0 stored hash): it holds
 * no password, and a changed or removed entry (a new stored hash) can never hit an old
 * key. Bounded in entries (the oldest goes first) and in time (a short TTL).
 */
import { sha256Base64 } from "../platform/hash";

/** A bounded, expiring set of verified (user, password, stored hash) triples. */
export class VerifiedCache {
  private readonly entries = new Map<string, number>();

  constructor(
    private readonly maxEntries = 1024,
    private readonly ttlMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The cache key of a triple (Bun's one-shot SHA-256: half the cost of a node:crypto hasher on the hot path). */
  static key(user: string, password: string, storedHash: string): string {
    return sha256Base64(`${user}\0${password}\0${storedHash}`);
  }

  /** True when the triple was verified within the TTL. */
  has(key: string): boolean {
    const expires = this.entries.get(key);
    if (expires === undefined) return false;
    if (expires <= this.now()) {
      this.entries.delete(key);
      return false;
    }
    return true;
  }

  /** Records a verified triple. */
  add(key: string): void {
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, this.now() + this.ttlMs);
  }

  /** Forgets everything (a reload). */
  clear(): void {
    this.entries.clear();
  }

  /** Entries held. */
  get size(): number {
    return this.entries.size;
  }
}
