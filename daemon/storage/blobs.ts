/**
 * Blobs: the pool of distinct blobs and their hard links into repositories.
 *
 * Publishing is ordered so that a crash at any step leaves either the old state or the new:
 * the data file is already fsynced by its writer; it is linked into the pool (EEXIST means
 * the blob is already there), the pool directory is fsynced, the pool entry is linked into
 * the repository, and the repository's blob directory is fsynced. What a crash leaves
 * behind is at worst a pool entry with one link, which garbage collection removes.
 *
 * Where hard links are not possible (another file system, FAT, a link-count limit) blobs
 * are copied instead; this is logged once.
 */
import { fileBody } from "../platform/serve";
import { dirname } from "node:path";
import type { Algorithm, Digest } from "../oci/digest";
import type { Disk, FileInfo } from "../platform/disk";
import { hashFile } from "../platform/hash";
import type { Logger } from "../log";
import type { Paths } from "./paths";
import type { BlobBody, BlobIngest, BlobStore, ByteRange, IngestOptions } from "./api";

const LINK_UNSUPPORTED = new Set(["EXDEV", "EPERM", "ENOTSUP", "EOPNOTSUPP", "EMLINK", "ENOSYS"]);
/** Opening a file for writing failed for want of permission (another owner, a read-only mount). */
const NOT_WRITABLE = new Set(["EACCES", "EPERM", "EROFS"]);

/** Options for {@link BlobStore}. */
export interface BlobStoreOptions {
  /** Share identical blobs across repositories through the pool. */
  dedupe: boolean;
  /**
   * Quota and free-space admission (storage/ingest.ts), asked before a mount writes bytes:
   * a copy where links are not possible, or of a file berth may not write to.
   */
  admit?: (repo: string, bytes: number) => Promise<void>;
}

/** Blob files of every repository, deduplicated through the pool: the local {@link BlobStore}. */
export class LocalBlobs implements BlobStore {
  private linksWork = true;
  private readonly madeDirs = new Set<string>();

  constructor(
    private readonly paths: Paths,
    private readonly disk: Disk,
    private readonly options: BlobStoreOptions,
    private readonly log: Logger,
    /** Opens an ingest (storage/ingest.ts); set by the store that composes this. */
    private readonly starter?: (repo: string, algorithm: Algorithm, options: IngestOptions) => Promise<BlobIngest>,
  ) {}

  /** Starts writing a blob for `repo` (storage/ingest.ts). */
  ingest(repo: string, algorithm: Algorithm, options: IngestOptions = {}): Promise<BlobIngest> {
    if (!this.starter) throw new Error("this blob store was made without an ingest path");
    return this.starter(repo, algorithm, options);
  }

  /** The blob's file as a `Blob` (sent with sendfile), whole or `range` of it. */
  open(repo: string, digest: Digest, range?: ByteRange): BlobBody {
    const path = this.path(repo, digest);
    return { kind: "file", file: range ? fileBody(path, range.start, range.end - range.start + 1) : fileBody(path) };
  }

  /** Path of `digest` in `repo` (it may not exist); for the storage layer only. */
  path(repo: string, digest: Digest): string {
    return this.paths.blob(repo, digest.algorithm, digest.hex);
  }

  /** The blob's file info in `repo`, or undefined if the repository does not hold it. */
  stat(repo: string, digest: Digest): FileInfo | undefined {
    const info = this.disk.stat(this.path(repo, digest));
    return info?.isFile ? info : undefined;
  }

  /** Reads a small blob whole (manifests only; callers check the size first). */
  read(repo: string, digest: Digest): Promise<Uint8Array> {
    return this.disk.readFile(this.path(repo, digest));
  }

  /**
   * Makes the fsynced file `dataPath`, whose content is already verified to hash to
   * `digest`, blob `digest` of `repo`. The caller removes `dataPath` afterwards.
   */
  async publish(repo: string, digest: Digest, dataPath: string): Promise<void> {
    const target = this.path(repo, digest);
    if (this.disk.stat(target)) {
      // Linked already, perhaps by a concurrent push of the same blob that has not yet
      // fsynced the directory: make the entry durable before this push is acknowledged.
      await this.disk.syncDir(dirname(target));
      return;
    }
    if (this.options.dedupe && this.linksWork) {
      const pool = this.paths.poolBlob(digest.algorithm, digest.hex);
      try {
        await this.ensureDir(dirname(pool));
        // An orphaned pool entry may be removed by garbage collection between finding it
        // (EEXIST) and linking it: then the pool entry is made again from the upload.
        // The pool directory is fsynced after the repository's: on a journaling file system
        // the first fsync commits both new entries in one transaction and the second writes
        // nothing, which saves a journal commit per blob. A repository link that outlives its
        // pool entry after a power cut is still a complete blob (only dedupe bookkeeping is
        // affected), so nothing acknowledged depends on the pool entry being durable first.
        for (let attempt = 0; ; attempt++) {
          const poolCreated = await this.disk.link(dataPath, pool);
          try {
            await this.place(pool, target);
            if (poolCreated) await this.disk.syncDir(dirname(pool));
            return;
          } catch (err) {
            if (attempt >= 3 || (err as NodeJS.ErrnoException).code !== "ENOENT" || this.disk.stat(pool)) throw err;
          }
        }
      } catch (err) {
        if (!this.linkUnsupported(err)) throw err;
      }
    }
    await this.place(dataPath, target);
  }

  /**
   * True when `repo` holds `digest` durably: the directory entry is fsynced before answering,
   * so a request acknowledged on the strength of it survives a power cut even if a concurrent
   * push linked the blob a moment ago.
   */
  async holdsDurably(repo: string, digest: Digest): Promise<boolean> {
    const target = this.path(repo, digest);
    if (!this.disk.stat(target)?.isFile) return false;
    await this.disk.syncDir(dirname(target));
    return true;
  }

  /** True when {@link mount} has a source for `digest`: `from` holds it, or (no `from`) the pool does. */
  canMount(digest: Digest, from?: string): boolean {
    const source = from === undefined ? this.paths.poolBlob(digest.algorithm, digest.hex) : this.path(from, digest);
    return this.disk.stat(source)?.isFile === true;
  }

  /**
   * Cross-repository mount: gives `repo` the blob that `from` holds, or, with no `from`,
   * the one in the pool. Returns false when the source does not hold the blob. A blob that
   * `from` holds outside the pool (a layout dropped into the root) is verified before it
   * is adopted into the pool.
   */
  async mount(repo: string, digest: Digest, from?: string): Promise<boolean> {
    const pool = this.paths.poolBlob(digest.algorithm, digest.hex);
    if (from === undefined) {
      const pooled = this.disk.stat(pool);
      if (!pooled) return false;
      if (!this.linksWork) await this.options.admit?.(repo, pooled.size);
      try {
        await this.place(pool, this.path(repo, digest));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT" && !this.disk.stat(pool)) return false; // collected meanwhile
        throw err;
      }
      return true;
    }
    const source = this.path(from, digest);
    const info = this.disk.stat(source);
    if (!info?.isFile) return false;
    // A blob outside the pool may have been written by another tool (a layout dropped into the
    // root) that never fsynced it: linked as it is, an acknowledged mount could read back empty
    // after a power cut (found by the power-cut simulator). Its data is fsynced first; a file
    // berth may not open for writing is copied instead (a copy is fsynced).
    let copyOnly = false;
    if (!this.disk.stat(pool)) copyOnly = !(await this.syncData(source));
    if (copyOnly || !this.linksWork) await this.options.admit?.(repo, info.size);
    if (this.options.dedupe && this.linksWork && !this.disk.stat(pool)) {
      if ((await hashFile(digest.algorithm, source)) !== digest.hex) {
        this.log.warn("blob does not match its digest; not mounting it", { repo: from, digest: digest.value });
        return false;
      }
      try {
        await this.ensureDir(dirname(pool));
        if (await (copyOnly ? this.disk.copy(source, pool) : this.disk.link(source, pool))) await this.disk.syncDir(dirname(pool));
      } catch (err) {
        if (!this.linkUnsupported(err)) throw err;
      }
    }
    const inPool = this.disk.stat(pool) !== undefined;
    try {
      await this.place(inPool ? pool : source, this.path(repo, digest), copyOnly && !inPool);
    } catch (err) {
      // Garbage collection unlinked the source and the pool entry meanwhile: nothing to mount.
      if ((err as NodeJS.ErrnoException).code === "ENOENT" && !this.disk.stat(pool) && !this.disk.stat(source)) return false;
      throw err;
    }
    return true;
  }

  /** Removes `digest` from `repo`; returns false if the repository did not hold it. */
  async remove(repo: string, digest: Digest): Promise<boolean> {
    const target = this.path(repo, digest);
    if (!this.disk.stat(target)) return false;
    await this.disk.unlink(target);
    await this.disk.syncDir(dirname(target));
    return true;
  }

  /** Forgets the directories under `prefix` that this store made (garbage collection removed them). */
  forgetDirs(prefix: string): void {
    for (const dir of this.madeDirs) if (dir === prefix || dir.startsWith(`${prefix}/`)) this.madeDirs.delete(dir);
  }

  /** Links (or, where links fail or `copy` is set, copies) `source` to `target` and makes the entry durable. */
  private async place(source: string, target: string, copy = false): Promise<void> {
    try {
      await this.placeOnce(source, target, copy);
    } catch (err) {
      // The directory may have been removed since it was made (an empty repository
      // collected while a mount raced it): make it again, once.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || !this.disk.stat(source)) throw err;
      this.madeDirs.delete(dirname(target));
      await this.placeOnce(source, target, copy);
    }
  }

  /** Fsyncs the data of a file berth did not write; false when berth may not open it for writing. */
  private async syncData(path: string): Promise<boolean> {
    let file;
    try {
      file = await this.disk.openAppend(path);
    } catch (err) {
      if (NOT_WRITABLE.has((err as NodeJS.ErrnoException).code ?? "")) return false;
      throw err;
    }
    try {
      await file.sync();
    } finally {
      await file.close();
    }
    return true;
  }

  private async placeOnce(source: string, target: string, copy: boolean): Promise<void> {
    await this.ensureDir(dirname(target));
    if (this.linksWork && !copy) {
      try {
        await this.disk.link(source, target);
      } catch (err) {
        if (!this.linkUnsupported(err)) throw err;
        await this.disk.copy(source, target);
      }
    } else {
      await this.disk.copy(source, target);
    }
    // Fsynced also when the target was there already (link or copy returned false): it may be
    // a concurrent push's link whose directory fsync has not completed, and the caller is
    // about to acknowledge (found by the power-cut simulator with random operation latency).
    await this.disk.syncDir(dirname(target));
  }

  private linkUnsupported(err: unknown): boolean {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    if (!LINK_UNSUPPORTED.has(code)) return false;
    if (code !== "EMLINK") this.linksWork = false;
    this.log.once(`link-${code}`, "hard links are not possible here; storing copies instead (no dedupe)", { code });
    return true;
  }

  /**
   * Makes `dir` exist durably: a directory created here (e.g. `blobs/sha512` of a
   * repository on its first sha512 blob) has its entry fsynced in its parent, or a blob
   * linked into it could vanish with it on a power cut (found by the power-cut simulator).
   */
  private async ensureDir(dir: string): Promise<void> {
    if (this.madeDirs.has(dir)) return;
    const missing: string[] = [];
    for (let d = dir; !this.disk.stat(d) && dirname(d) !== d; d = dirname(d)) missing.push(d);
    await this.disk.mkdirp(dir);
    for (const d of missing) await this.disk.syncDir(dirname(d));
    this.madeDirs.add(dir);
  }
}
