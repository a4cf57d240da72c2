/**
 * The local backend of the storage seam (api.ts) for one root: OCI layouts, the blob pool,
 * upload sessions, the one ingest path, the one walk, GC and scrub abilities and the
 * manifest cache, plus start-up recovery. No HTTP types and no SQL here. Only main wiring,
 * the offline commands and tests construct it; everything above storage/ sees
 * {@link Storage}.
 */
import { statfsSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Algorithm, Digest } from "../oci/digest";
import { type Disk, OWN_TEMP_PREFIX, TEMP_PREFIX, realDisk } from "../platform/disk";
import { type UploadHashing, inlineHashing } from "../platform/uploadhash";
import type { Logger } from "../log";
import type { BlobEntry, BlobIngest, IngestOptions, Storage, StorageFigures } from "./api";
import { LocalBlobs } from "./blobs";
import { startIngest } from "./ingest";
import { LocalAudit, LocalSweep } from "./maintenance";
import { LocalWalk } from "./walk";
import { ManifestCache } from "./cache";
import { Layouts } from "./layouts";
import { Paths } from "./paths";
import { Reserve } from "./reserve";
import { type UploadLimits, Uploads } from "./uploads";

/** Options for {@link Store}. */
export interface StoreOptions {
  root: string;
  dedupe: boolean;
  maxBlobBytes: number;
  manifestCacheBytes: number;
  /** Told the size of every upload chunk received. */
  onIngress?: (bytes: number) => void;
  /** How uploads are hashed (default inline). */
  hashing?: UploadHashing;
  /** Quota / free-space admission of upload bytes (see UploadOptions.admit). */
  admit?: (repo: string, bytes: number) => Promise<void>;
  /** Caps and expiry of upload sessions (none: unlimited, removed only by GC). */
  uploadLimits?: UploadLimits;
}

/** What start-up recovery found and cleaned. */
export interface RecoveryReport {
  repositories: string[];
  uploadsRemoved: number;
  tempFilesRemoved: number;
}

/** The local storage engine of one root. */
export class Store implements Storage {
  readonly paths: Paths;
  readonly indexes: Layouts;
  readonly blobs: LocalBlobs;
  readonly uploads: Uploads;
  readonly manifests: ManifestCache;
  /** Room kept for writes that free space on a full disk (storage/reserve.ts). */
  readonly reserve: Reserve;
  readonly sweep: LocalSweep;
  readonly audit: LocalAudit;
  readonly meter: { usage: LocalWalk["usage"]; space: () => { free: number; total: number }; figures: () => StorageFigures; dedupe: LocalWalk["dedupe"] };
  private readonly walk: LocalWalk;

  constructor(
    readonly disk: Disk,
    options: StoreOptions,
    private readonly log: Logger,
  ) {
    this.paths = new Paths(options.root);
    const space = () => {
      const s = statfsSync(this.paths.root);
      return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
    };
    this.reserve = new Reserve(this.paths.internal, disk, space, log);
    this.walk = new LocalWalk(this.paths, disk, log);
    const hashing = options.hashing ?? inlineHashing;
    const publish = async (repo: string, digest: Digest, path: string) => {
      await this.indexes.ensure(repo);
      await this.blobs.publish(repo, digest, path);
    };
    const ingestDeps = { disk, paths: this.paths, hashing, publish, published: (repo: string, d: Digest) => this.blobs.path(repo, d), admit: options.admit };
    this.blobs = new LocalBlobs(this.paths, disk, { dedupe: options.dedupe, admit: options.admit }, log, (repo: string, algorithm: Algorithm, o: IngestOptions): Promise<BlobIngest> => startIngest(ingestDeps, repo, algorithm, o));
    this.indexes = new Layouts(this.paths, disk, log, () => this.reserve.release(), (dir) => this.blobs.forgetDirs(dir));
    this.uploads = new Uploads(this.paths, disk, { maxBlobBytes: options.maxBlobBytes, onIngress: options.onIngress, hashing, admit: options.admit, limits: options.uploadLimits, log, publish });
    this.manifests = new ManifestCache(options.manifestCacheBytes);
    this.sweep = new LocalSweep(this.paths, disk);
    this.audit = new LocalAudit(this.paths, disk, this.walk, this.indexes);
    this.meter = { usage: (prefixes) => this.walk.usage(prefixes), space, figures: () => this.walk.figures(), dedupe: (maxAgeMs) => this.walk.dedupe(maxAgeMs) };
  }

  trim(): void {
    this.manifests.clear();
    this.indexes.trim();
  }

  /** True when the root exists as a directory (offline commands refuse a missing one). */
  rootIsDirectory(): boolean {
    return this.disk.stat(this.paths.root)?.isDirectory === true;
  }

  /** Where the derived index lives (main wiring and offline commands open it). */
  get metaDbPath(): string {
    return this.paths.metaDb;
  }

  /** Every repository, in lexical order (storage/walk.ts defines one). */
  repositories(): Promise<string[]> {
    return this.walk.repositories();
  }

  /** The same, without yielding. */
  repositoriesSync(): string[] {
    return this.walk.repositoriesSync();
  }

  /** The blobs `repo` holds. */
  repoBlobs(repo: string): Iterable<BlobEntry> {
    return this.walk.repoBlobs(repo);
  }

  /** Every distinct stored blob (the pool). */
  storedBlobs(): Iterable<BlobEntry> {
    return this.walk.storedBlobs();
  }

  /**
   * Prepares the root and cleans what an interrupted run left: upload sessions and temp
   * files of atomic writes. Returns the repositories found. The daemon calls {@link prepare}
   * before listening and {@link sweepTemps} after; offline commands and tests call this.
   */
  async recover(): Promise<RecoveryReport> {
    const uploadsRemoved = await this.prepare();
    const { repositories, tempFilesRemoved } = await this.sweepTemps();
    return { repositories, uploadsRemoved, tempFilesRemoved };
  }

  /**
   * The part of recovery the first request needs: the root's directories, the upload
   * sessions of the last run removed (their ids are not served again) and the reserve.
   * Reads no repository. Returns the number of upload sessions removed.
   */
  async prepare(): Promise<number> {
    for (const dir of [this.paths.root, this.paths.internal, this.paths.uploads, this.paths.poolDir("sha256"), this.paths.poolDir("sha512")]) {
      // every directory made here has its entry fsynced in its parent: `mkdirp` of
      // pool/sha256 makes pool/ too, whose entry in .berth/ must survive a power cut as well
      // (found by the storage contract on the power-cut simulator)
      const missing: string[] = [];
      for (let d = dir; !this.disk.stat(d) && dirname(d) !== d; d = dirname(d)) missing.push(d);
      if (missing.length === 0) continue;
      await this.disk.mkdirp(dir);
      for (const d of missing.reverse()) await this.disk.syncDir(dirname(d));
    }
    const uploadsRemoved = await this.uploads.clearLeftovers();
    await this.reserve.restore(); // only when there is room; a full disk starts without it
    return uploadsRemoved;
  }

  /**
   * Removes the temp files an interrupted run left in the pool and in every layout (its
   * directory and blob directories); returns the repositories found on the way. A temp
   * file is never served (its name is no digest and no index.json), so the daemon runs this
   * after listening, beside live writes: this process's own temp files
   * ({@link OWN_TEMP_PREFIX}) are left alone. `pace` is awaited before each directory
   * (the IO budget, and a turn of the event loop for requests).
   */
  async sweepTemps(pace: (ops: number) => Promise<void> = async () => {}): Promise<{ repositories: string[]; tempFilesRemoved: number }> {
    let tempFilesRemoved = 0;
    for (const dir of [this.paths.poolDir("sha256"), this.paths.poolDir("sha512")]) {
      await pace(1);
      tempFilesRemoved += await this.removeTemps(dir);
    }
    const repositories: string[] = [];
    await this.walk.layoutsPaced(async (name, dir) => {
      repositories.push(name);
      tempFilesRemoved += await this.removeTemps(dir); // read by the walk already
      for (const alg of this.disk.readdir(join(dir, "blobs"))) {
        await pace(1);
        tempFilesRemoved += await this.removeTemps(join(dir, "blobs", alg));
      }
    }, pace);
    repositories.sort();
    return { repositories, tempFilesRemoved };
  }

  private async removeTemps(dir: string): Promise<number> {
    let removed = 0;
    for (const name of this.disk.readdir(dir)) {
      if (!name.startsWith(TEMP_PREFIX) || name.startsWith(OWN_TEMP_PREFIX)) continue;
      await this.disk.unlink(join(dir, name)); // a missing file is no error
      removed++;
    }
    if (removed > 0) await this.disk.syncDir(dir).catch(goneOr);
    return removed;
  }
}

/** False for ENOENT (removed meanwhile, e.g. a repository dropped while a sweep ran); rethrows anything else. */
function goneOr(err: unknown): false {
  if ((err as NodeJS.ErrnoException)?.code === "ENOENT") return false;
  throw err;
}

/** The local backend of `options.root` on the real file system (offline commands). */
export function openLocalStore(options: StoreOptions, log: Logger): Store {
  return new Store(realDisk, options, log);
}
