/**
 * Scrubbing: every stored blob is re-hashed (each inode once: pool entries first, then
 * repository blobs outside the pool, such as layouts dropped into the root). A blob whose
 * bytes do not hash to its name is quarantined:
 *
 *   <root>/.berth/quarantine/<alg>-<hex>-<unix ms>   the bad bytes, kept for inspection
 *
 * and every link to it (the pool entry, each repository's blob) is removed, so it is never
 * served again: GET answers 404, and a client (or, later, sync from an upstream) can push
 * it again. Each quarantine is logged, counted and listed by the admin API. Scrubbing only
 * reads unless it finds something; it yields between blobs and stops when aborted.
 */
import type { Logger } from "../log";
import type { AuditItem, Storage } from "../storage/api";
import { HeapBound, Pacer } from "./pacer";

/**
 * The scrub's slack of resident growth (half the pacer's) and how often it looks (four
 * times as often). Small blobs are hashed synchronously (platform/hash.ts), some 30,000 a
 * second, and each leaves about a kilobyte of native garbage (the strings and stat records of
 * the walk) that the heap count never sees: with the pacer's defaults the resident set of a
 * scrub of 120,000 blobs ran ~10 MiB past where it began before a collection, with these
 * ~7 MiB, for about ten collections of a few milliseconds.
 */
export const SCRUB_RSS_SLACK = 4 * 1024 * 1024;
/** See {@link SCRUB_RSS_SLACK}. */
export const SCRUB_LOOK_MS = 25;

/** A pacer with the scrub's bound, started from the live size (one collection first). */
function scrubPacer(): Pacer {
  const pacer = new Pacer(undefined, new HeapBound(undefined, SCRUB_LOOK_MS, SCRUB_RSS_SLACK));
  pacer.heap?.start(true);
  return pacer;
}

/** One quarantined blob. */
export interface QuarantineEntry {
  digest: string;
  /** What its bytes hash to. */
  actual: string;
  size: number;
  /** Repositories it was removed from. */
  repositories: string[];
  file: string;
  at: number;
}

/** Counters (a plain object; the metrics endpoint reads it). */
export interface ScrubCounters {
  runs: number;
  blobsChecked: number;
  bytesChecked: number;
  mismatches: number;
  lastStarted?: number;
  lastFinished?: number;
  lastDurationMs?: number;
}

/** Progress of a running scrub: blobs and bytes checked, of the pool's totals. */
export interface ScrubProgress {
  done: number;
  total: number;
  bytes: number;
  totalBytes: number;
}

/** What one scrub found. */
export interface ScrubReport {
  blobsChecked: number;
  bytesChecked: number;
  quarantined: QuarantineEntry[];
  aborted: boolean;
}

/** Re-hashes blobs and quarantines the bad ones (through storage's {@link BlobAudit}). */
export class Scrubber {
  readonly counters: ScrubCounters = { runs: 0, blobsChecked: 0, bytesChecked: 0, mismatches: 0 };
  private readonly found: QuarantineEntry[] = [];
  private running: Promise<ScrubReport> | undefined;

  constructor(
    private readonly store: Storage,
    private readonly log: Logger,
  ) {}

  /** Quarantined blobs: those found by this process, then older ones the quarantine holds. */
  quarantine(): QuarantineEntry[] {
    const known = new Set(this.found.map((q) => q.file));
    return [...this.found, ...this.store.audit.quarantined().filter((q) => !known.has(q.file))];
  }

  /**
   * Runs a scrub; a call while one runs joins it (and its `progress` is not told). `progress`
   * hears blobs and bytes checked against the pool's totals after each blob.
   */
  run(signal?: AbortSignal, progress?: (p: ScrubProgress) => void): Promise<ScrubReport> {
    this.running ??= this.scrub(signal, progress).finally(() => (this.running = undefined));
    return this.running;
  }

  private async scrub(signal?: AbortSignal, progress?: (p: ScrubProgress) => void): Promise<ScrubReport> {
    // the totals a progress bar needs: the pool (repository blobs are mostly links into it)
    let total = 0;
    let totalBytes = 0;
    if (progress) {
      const pacer = scrubPacer();
      for await (const blob of this.store.storedBlobs()) {
        await pacer.tick();
        total++;
        totalBytes += blob.size;
      }
    }
    const started = Date.now();
    this.counters.runs++;
    this.counters.lastStarted = started;
    const report: ScrubReport = { blobsChecked: 0, bytesChecked: 0, quarantined: [], aborted: false };
    // Keeps the garbage of the walk and the hashing bounded (pacer.ts), from the live size:
    // what the previous pass left would otherwise add to this one's peak.
    const pacer = scrubPacer();
    for await (const item of this.store.audit.auditItems()) {
      if (signal?.aborted) break;
      await pacer.tick();
      const actual = await item.hash();
      if (actual === undefined) continue; // removed meanwhile
      report.blobsChecked++;
      report.bytesChecked += item.size;
      this.counters.blobsChecked++;
      this.counters.bytesChecked += item.size;
      if (actual !== item.digest.hex) report.quarantined.push(await this.isolate(item, actual));
      progress?.({ done: report.blobsChecked, total: Math.max(total, report.blobsChecked), bytes: report.bytesChecked, totalBytes: Math.max(totalBytes, report.bytesChecked) });
    }
    report.aborted = signal?.aborted ?? false;
    this.counters.lastFinished = Date.now();
    this.counters.lastDurationMs = this.counters.lastFinished - started;
    return report;
  }

  /** Sets the bad bytes aside and removes every link to the digest. */
  private async isolate(item: AuditItem, actual: string): Promise<QuarantineEntry> {
    const entry = await this.store.audit.quarantine(item, actual);
    this.store.manifests.delete(entry.digest);
    this.found.push(entry);
    this.counters.mismatches++;
    this.log.error("scrub: a blob does not match its digest; it is quarantined and no longer served", {
      digest: entry.digest,
      actual: entry.actual,
      size: entry.size,
      repositories: entry.repositories,
      file: entry.file,
    });
    return entry;
  }
}
