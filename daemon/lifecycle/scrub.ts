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
import { join } from "node:path";
import type { Logger } from "../log";
import { type Algorithm, isAlgorithm } from "../oci/digest";
import { TEMP_PREFIX } from "../platform/disk";
import { hashFile } from "../platform/hash";
import type { Store } from "../storage/store";

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

/** Re-hashes blobs and quarantines the bad ones. */
export class Scrubber {
  readonly counters: ScrubCounters = { runs: 0, blobsChecked: 0, bytesChecked: 0, mismatches: 0 };
  private readonly found: QuarantineEntry[] = [];
  private running: Promise<ScrubReport> | undefined;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    /** Hashes a file (injectable for tests that run on a simulated disk). */
    private readonly hash: (algorithm: Algorithm, path: string) => Promise<string> = hashFile,
  ) {}

  /** Quarantined blobs: those found by this process, then older files in the quarantine directory. */
  quarantine(): QuarantineEntry[] {
    const known = new Set(this.found.map((q) => q.file));
    const dir = this.quarantineDir();
    const older: QuarantineEntry[] = [];
    for (const name of this.store.disk.readdir(dir)) {
      const m = /^(sha256|sha512)-([0-9a-f]+)-(\d+)$/.exec(name);
      if (!m || known.has(join(dir, name))) continue;
      const info = this.store.disk.stat(join(dir, name));
      older.push({ digest: `${m[1]}:${m[2]}`, actual: "", size: info?.size ?? 0, repositories: [], file: join(dir, name), at: Number(m[3]) });
    }
    return [...this.found, ...older];
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
    const { disk, paths } = this.store;
    const started = Date.now();
    this.counters.runs++;
    this.counters.lastStarted = started;
    const report: ScrubReport = { blobsChecked: 0, bytesChecked: 0, quarantined: [], aborted: false };
    const seen = new Set<number>();
    const check = async (alg: Algorithm, hex: string, path: string) => {
      const info = disk.stat(path);
      if (!info?.isFile || seen.has(info.ino)) return;
      seen.add(info.ino);
      let actual: string;
      try {
        actual = await this.hash(alg, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return; // removed meanwhile
        throw err;
      }
      report.blobsChecked++;
      report.bytesChecked += info.size;
      this.counters.blobsChecked++;
      this.counters.bytesChecked += info.size;
      if (actual !== hex) report.quarantined.push(await this.isolate(alg, hex, actual, path, info.size));
      progress?.({ done: report.blobsChecked, total: Math.max(total, report.blobsChecked), bytes: report.bytesChecked, totalBytes: Math.max(totalBytes, report.bytesChecked) });
    };
    let total = 0;
    let totalBytes = 0;
    const repos = await this.store.repositories();
    const sources: [Algorithm, string, string][] = [];
    for (const alg of ["sha256", "sha512"] as const) {
      for (const hex of disk.readdir(paths.poolDir(alg))) if (!hex.startsWith(TEMP_PREFIX)) sources.push([alg, hex, paths.poolBlob(alg, hex)]);
    }
    if (progress) {
      // the totals a progress bar needs: the pool (repository blobs are mostly links into it)
      total = sources.length;
      for (const [, , path] of sources) totalBytes += disk.stat(path)?.size ?? 0;
    }
    outer: for (const [alg, hex, path] of sources) {
      if (signal?.aborted) break outer;
      await check(alg, hex, path);
    }
    for (const repo of repos) {
      for (const alg of disk.readdir(join(paths.repo(repo), "blobs"))) {
        if (!isAlgorithm(alg)) continue;
        for (const hex of disk.readdir(paths.blobDir(repo, alg))) {
          if (signal?.aborted) break;
          if (!hex.startsWith(TEMP_PREFIX)) await check(alg, hex, paths.blob(repo, alg, hex));
        }
      }
    }
    report.aborted = signal?.aborted ?? false;
    this.counters.lastFinished = Date.now();
    this.counters.lastDurationMs = this.counters.lastFinished - started;
    return report;
  }

  /** Moves the bad bytes to the quarantine and removes every link to the digest. */
  private async isolate(alg: Algorithm, hex: string, actual: string, badPath: string, size: number): Promise<QuarantineEntry> {
    const { disk, paths } = this.store;
    const digest = `${alg}:${hex}`;
    const dir = this.quarantineDir();
    if (!disk.stat(dir)) {
      await disk.mkdirp(dir);
      await disk.syncDir(paths.internal);
    }
    const file = join(dir, `${alg}-${hex}-${Date.now()}`);
    // Keep one copy of the bad bytes for inspection: a new link, so moving it cannot
    // leave the digest's name pointing at nothing half-way.
    if (!(await disk.link(badPath, file).catch(() => false))) await disk.copy(badPath, file).catch(() => false);
    await disk.syncDir(dir);
    const repositories: string[] = [];
    for (const repo of await this.store.repositories()) {
      const path = paths.blob(repo, alg, hex);
      if (!disk.stat(path)) continue;
      await this.store.layouts.withLock(repo, async () => {
        await disk.unlink(path);
        await disk.syncDir(paths.blobDir(repo, alg));
      });
      repositories.push(repo);
    }
    const pool = paths.poolBlob(alg, hex);
    if (disk.stat(pool)) {
      await disk.unlink(pool);
      await disk.syncDir(paths.poolDir(alg));
    }
    this.store.manifests.delete(digest);
    const entry: QuarantineEntry = { digest, actual: `${alg}:${actual}`, size, repositories, file, at: Date.now() };
    this.found.push(entry);
    this.counters.mismatches++;
    this.log.error("scrub: a blob does not match its digest; it is quarantined and no longer served", {
      digest,
      actual: entry.actual,
      size,
      repositories,
      file,
    });
    return entry;
  }

  private quarantineDir(): string {
    return join(this.store.paths.internal, "quarantine");
  }
}
