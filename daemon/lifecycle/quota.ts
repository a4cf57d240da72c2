/**
 * Quota and the free-space floor, enforced before bytes are accepted.
 *
 * Usage is the bytes of distinct inodes under the root that berth stores: pool entries,
 * repository blobs outside the pool, and upload sessions in flight. It is measured by a
 * walk (stats only, no writes) and kept between walks as "measured + admitted since"; a
 * check that would fail is re-measured first, so the estimate only ever errs on the side of
 * measuring again. Free space comes from statfs on every check.
 *
 * When an upload would cross the global quota, a prefix quota or the floor, the evictor
 * frees least-recently-pulled evictable content one image at a time; if nothing more can be
 * evicted the bytes are refused with a StorageError("quota") that says which limit, and
 * nothing already stored is touched. Admissions are serialised so two uploads never evict
 * for the same room.
 */
import type { Space } from "../config/schema";
import type { Logger } from "../log";
import { StorageError } from "../storage/errors";
import type { Storage } from "../storage/api";
import { KeyedLock } from "../storage/lock";

/** Options for {@link Quota}. */
export interface QuotaOptions {
  /** Bytes the store may hold; 0 = unlimited. */
  maxBytes: number;
  /** Free space to keep on the file system. */
  minFree: Space;
  /** Quotas for repository prefixes. */
  prefixes: readonly { prefix: string; maxBytes: number }[];
}

/** Which limit a write would cross. */
export interface Shortfall {
  /** "store", "prefix" or "floor". */
  limit: "store" | "prefix" | "floor";
  /** The prefix, for a prefix quota. */
  prefix?: string;
  /** Bytes that must be freed. */
  bytes: number;
  message: string;
}

/** Frees room; returns false when nothing more can be evicted for `shortfall`. */
export type Evict = (shortfall: Shortfall) => Promise<boolean>;

/** What {@link Quota.figures} reports (the admin API's `quota`). */
export interface QuotaFigures {
  usedBytes: number;
  maxBytes: number;
  freeBytes: number;
  totalBytes: number;
  minFreeBytes: number;
  prefixes: { prefix: string; maxBytes: number; usedBytes: number }[];
  evictions: number;
  refusals: number;
}

/** Measures usage and admits or refuses upload bytes. */
export class Quota {
  private measured: { total: number; byPrefix: Map<string, number> } | undefined;
  private admittedSince = 0;
  private readonly admittedByPrefix = new Map<string, number>();
  private readonly lock = new KeyedLock();
  private evictFn: Evict | undefined;
  refusals = 0;
  evictions = 0;

  constructor(
    private readonly store: Storage,
    private readonly options: QuotaOptions,
    private readonly log: Logger,
  ) {}

  /** True when any limit is configured. */
  get active(): boolean {
    return this.options.maxBytes > 0 || this.options.prefixes.length > 0 || ("bytes" in this.options.minFree ? this.options.minFree.bytes > 0 : this.options.minFree.percent > 0);
  }

  /** Sets the evictor (wired after construction: it needs the registry). */
  setEvictor(evict: Evict): void {
    this.evictFn = evict;
  }

  /** Admits `bytes` for `repo`, evicting if needed; throws StorageError("quota") when there is no room. */
  async admit(repo: string, bytes: number): Promise<void> {
    // the reserve for deletes on a full disk comes before any upload byte (storage/reserve.ts)
    await this.store.reserve.restore();
    if (!this.active || bytes <= 0) return;
    await this.lock.run("admit", async () => {
      let shortfall = this.check(repo, bytes);
      for (let round = 0; shortfall; round++) {
        this.measure();
        shortfall = this.check(repo, bytes);
        if (!shortfall) break;
        if (round >= 10_000 || !this.evictFn || !(await this.evictFn(shortfall))) {
          this.refusals++;
          this.log.warn("quota: upload refused", { repo, bytes, limit: shortfall.limit, prefix: shortfall.prefix, reason: shortfall.message });
          throw new StorageError("quota", shortfall.message);
        }
        this.evictions++;
        this.measured = undefined;
      }
      this.admittedSince += bytes;
      for (const p of this.options.prefixes) if (repo.startsWith(p.prefix)) this.admittedByPrefix.set(p.prefix, (this.admittedByPrefix.get(p.prefix) ?? 0) + bytes);
    });
  }

  /** Usage figures for the admin API (measures afresh). */
  figures(): QuotaFigures {
    this.measure();
    const fs = this.store.meter.space();
    return {
      usedBytes: this.measured!.total,
      maxBytes: this.options.maxBytes,
      freeBytes: fs.free,
      totalBytes: fs.total,
      minFreeBytes: this.floor(fs.total),
      prefixes: this.options.prefixes.map((p) => ({ ...p, usedBytes: this.measured!.byPrefix.get(p.prefix) ?? 0 })),
      evictions: this.evictions,
      refusals: this.refusals,
    };
  }

  /** Measures what the store holds (storage's one walk) and records it. */
  measure(): { total: number; byPrefix: Map<string, number> } {
    const m = this.store.meter.usage(this.options.prefixes.map((p) => p.prefix));
    const sessions = this.store.uploads.list();
    for (const p of this.options.prefixes) for (const s of sessions) if (s.repo.startsWith(p.prefix)) m.byPrefix.set(p.prefix, (m.byPrefix.get(p.prefix) ?? 0) + s.size);
    this.measured = m;
    this.admittedSince = 0;
    this.admittedByPrefix.clear();
    return this.measured;
  }

  private check(repo: string, bytes: number): Shortfall | undefined {
    const m = this.measured;
    if (this.options.maxBytes > 0) {
      const used = m ? m.total + this.admittedSince : Number.POSITIVE_INFINITY;
      if (used + bytes > this.options.maxBytes) {
        const need = m ? used + bytes - this.options.maxBytes : bytes;
        return { limit: "store", bytes: need, message: `storage quota exceeded: storing ${bytes} more bytes would exceed the store's quota of ${this.options.maxBytes} bytes (in use: ${m ? used : "unknown"}), and nothing evictable is left` };
      }
    }
    for (const p of this.options.prefixes) {
      if (!repo.startsWith(p.prefix)) continue;
      const used = m ? (m.byPrefix.get(p.prefix) ?? 0) + (this.admittedByPrefix.get(p.prefix) ?? 0) : Number.POSITIVE_INFINITY;
      if (used + bytes > p.maxBytes) {
        return { limit: "prefix", prefix: p.prefix, bytes: m ? used + bytes - p.maxBytes : bytes, message: `storage quota exceeded: repositories under "${p.prefix}" may hold ${p.maxBytes} bytes (in use: ${m ? used : "unknown"}); ${bytes} more do not fit, and nothing evictable is left` };
      }
    }
    const fs = this.store.meter.space();
    const floor = this.floor(fs.total);
    if (floor > 0 && fs.free - bytes < floor) {
      return { limit: "floor", bytes: floor - (fs.free - bytes), message: `not enough free space: storing ${bytes} more bytes would leave less than the ${floor} bytes that must stay free (free: ${fs.free}), and nothing evictable is left` };
    }
    return undefined;
  }

  private floor(total: number): number {
    const f = this.options.minFree;
    return "bytes" in f ? f.bytes : Math.ceil((total * f.percent) / 100);
  }
}
