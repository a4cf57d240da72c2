/**
 * Where the S3 backend's uploads are written: a {@link Disk} whose appendable files are
 * {@link PartSpool}s streaming into multipart uploads under `<prefix>uploads/<name>`, named
 * by the last component of the path the shared code asks for. The upload sessions
 * (storage/uploads.ts) and the ingest of sync fetches and bundle imports (storage/ingest.ts)
 * are the local backend's code, given this disk and inline hashing: admission (quota),
 * resumable hashing, accounting and the session bounds stay one implementation, and nothing
 * of an upload touches the local cache directory. `publish(path)` hands the spool to
 * blobs.ts; removing the path drops it (aborting its multipart upload).
 *
 * Only what those two callers use is implemented; the rest of `Disk` throws.
 */
import { createHash } from "node:crypto";
import { basename } from "node:path";
import type { Algorithm } from "../../oci/digest";
import type { AppendFile, Disk, FileInfo } from "../../platform/disk";
import type { S3Client } from "./client";
import type { S3Keys } from "./keys";
import { PartSpool, type SpoolOptions } from "./spool";

/** The key prefix of uploads in flight (a crashed process's are swept at start: backend.ts). */
export function uploadsPrefix(keys: S3Keys): string {
  return `${keys.prefix}uploads/`;
}

/** Upload spools by path, as a `Disk` for storage/uploads.ts and storage/ingest.ts. */
export class SpoolDisk implements Disk {
  private readonly spools = new Map<string, PartSpool>();

  constructor(
    private readonly s3: S3Client,
    private readonly keys: S3Keys,
    private readonly options: SpoolOptions,
  ) {}

  /** The spool written at `path`; throws when there is none. */
  spool(path: string): PartSpool {
    const spool = this.spools.get(path);
    if (!spool) throw new Error(`No upload is being written at "${path}"`);
    return spool;
  }

  /** Bytes of the spool at `path` still in memory (see {@link PartSpool.readMemory}). */
  async readBack(path: string, offset: number, length: number): Promise<Uint8Array> {
    const spool = this.spool(path);
    await spool.restore();
    return spool.readMemory(offset, length);
  }

  /**
   * Hashes the bytes of the spool at `path` with `algorithm`: a small one from memory, else
   * its multipart upload is completed (publishing then only copies it) and read back from
   * the bucket. For a final digest in an algorithm the session was not hashing with.
   */
  async hashAgain(path: string, algorithm: Algorithm): Promise<string> {
    const spool = this.spool(path);
    const hash = createHash(algorithm);
    await spool.restore();
    if (spool.small) return hash.update(spool.bytes()).digest("hex");
    await spool.complete();
    const got = await this.s3.get(spool.key);
    for await (const chunk of got.body) hash.update(chunk);
    return hash.digest("hex");
  }

  /** Spools open now. */
  get count(): number {
    return this.spools.size;
  }

  /** A handle on the spool at `path` (made on first open); each open marks where a request starts. */
  async openAppend(path: string): Promise<AppendFile> {
    let spool = this.spools.get(path);
    if (!spool) {
      spool = new PartSpool(this.s3, `${uploadsPrefix(this.keys)}${basename(path)}`, this.options);
      this.spools.set(path, spool);
    }
    return spool.handle();
  }

  /** Drops the spool at `path` (its multipart upload aborted); none is fine. */
  async unlink(path: string): Promise<void> {
    const spool = this.spools.get(path);
    this.spools.delete(path);
    await spool?.drop();
  }

  /** As {@link unlink}: a session's data is one spool. */
  removeTree(path: string): Promise<void> {
    return this.unlink(path);
  }

  /** No spool outlives its process (the bucket's leftovers are swept at start). */
  readdir(): string[] {
    return [];
  }

  async mkdirp(): Promise<void> {}

  stat(): FileInfo | undefined {
    return unsupported("stat");
  }
  readFile(): Promise<Uint8Array> {
    return unsupported("readFile");
  }
  link(): Promise<boolean> {
    return unsupported("link");
  }
  copy(): Promise<boolean> {
    return unsupported("copy");
  }
  rename(): Promise<void> {
    return unsupported("rename");
  }
  syncDir(): Promise<void> {
    return unsupported("syncDir");
  }
  writeAtomic(): Promise<void> {
    return unsupported("writeAtomic");
  }
}

function unsupported(what: string): never {
  throw new Error(`The S3 upload spool has no "${what}": uploads are streamed to the bucket`);
}
