/**
 * The storage engine of one root: layouts, blobs, uploads and the manifest cache, plus
 * start-up recovery. No HTTP types and no SQL here.
 */
import { statfsSync } from "node:fs";
import { join, relative } from "node:path";
import { nameProblem } from "../oci/names";
import { type Disk, TEMP_PREFIX } from "../platform/disk";
import { type UploadHashing, inlineHashing } from "../platform/uploadhash";
import type { Logger } from "../log";
import { BlobStore } from "./blobs";
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

/** The storage engine. */
export class Store {
  readonly paths: Paths;
  readonly layouts: Layouts;
  readonly blobs: BlobStore;
  readonly uploads: Uploads;
  readonly manifests: ManifestCache;
  /** Room kept for writes that free space on a full disk (storage/reserve.ts). */
  readonly reserve: Reserve;
  /** How bytes written to the store are hashed (uploads, and fetches from upstreams). */
  readonly hashing: UploadHashing;

  constructor(
    readonly disk: Disk,
    options: StoreOptions,
    private readonly log: Logger,
  ) {
    this.paths = new Paths(options.root);
    this.reserve = new Reserve(this.paths.internal, disk, () => {
      const s = statfsSync(this.paths.root);
      return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
    }, log);
    this.layouts = new Layouts(this.paths, disk, log, () => this.reserve.release());
    this.blobs = new BlobStore(this.paths, disk, { dedupe: options.dedupe }, log);
    this.hashing = options.hashing ?? inlineHashing;
    this.uploads = new Uploads(this.paths, disk, { maxBlobBytes: options.maxBlobBytes, onIngress: options.onIngress, hashing: this.hashing, admit: options.admit, limits: options.uploadLimits, log });
    this.manifests = new ManifestCache(options.manifestCacheBytes);
  }

  /**
   * Prepares the root and cleans what an interrupted run left: upload sessions and temp
   * files of atomic writes. Returns the repositories found.
   */
  async recover(): Promise<RecoveryReport> {
    for (const dir of [this.paths.root, this.paths.internal, this.paths.uploads, this.paths.poolDir("sha256"), this.paths.poolDir("sha512")]) {
      if (!this.disk.stat(dir)) {
        await this.disk.mkdirp(dir);
        await this.disk.syncDir(join(dir, ".."));
      }
    }
    const uploadsRemoved = await this.uploads.clearLeftovers();
    let tempFilesRemoved = 0;
    for (const dir of [this.paths.poolDir("sha256"), this.paths.poolDir("sha512")]) tempFilesRemoved += await this.removeTemps(dir);
    const repositories = await this.scan((dir) => this.removeTemps(dir).then((n) => void (tempFilesRemoved += n)));
    await this.reserve.restore(); // only when there is room; a full disk starts without it
    return { repositories, uploadsRemoved, tempFilesRemoved };
  }

  /** Every repository (directory holding an index.json) under the root, in lexical order. */
  repositories(): Promise<string[]> {
    return this.scan();
  }

  /**
   * Walks the root for OCI layouts. Hidden directories and blob directories are not entered;
   * `visit` is called for every layout directory and blob directory found (for cleaning).
   */
  private async scan(visit?: (dir: string) => Promise<void>): Promise<string[]> {
    const found: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      const names = this.disk.readdir(dir);
      const isLayout = names.includes("index.json") && this.disk.stat(join(dir, "index.json"))?.isFile;
      if (isLayout && dir !== this.paths.root) {
        const name = relative(this.paths.root, dir);
        const problem = nameProblem(name);
        if (problem) this.log.once(`bad-repo-${name}`, "a layout under the root has a name that is not a valid repository name; it is not served", { path: name, problem });
        else found.push(name);
        if (visit) {
          await visit(dir);
          for (const alg of this.disk.readdir(join(dir, "blobs"))) await visit(join(dir, "blobs", alg));
        }
      }
      for (const name of names) {
        if (name.startsWith(".") || (isLayout && name === "blobs")) continue;
        const child = join(dir, name);
        if (this.disk.stat(child)?.isDirectory) await walk(child);
      }
    };
    await walk(this.paths.root);
    return found.sort();
  }

  private async removeTemps(dir: string): Promise<number> {
    let removed = 0;
    for (const name of this.disk.readdir(dir)) {
      if (!name.startsWith(TEMP_PREFIX)) continue;
      await this.disk.unlink(join(dir, name));
      removed++;
    }
    if (removed > 0) await this.disk.syncDir(dir);
    return removed;
  }
}
