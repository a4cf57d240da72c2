/**
 * The one ingest path of the local backend: bytes that become a blob (a sync fetch, a
 * layout adoption, a manifest, and the completion of a client's upload session) are written
 * through the `Disk` seam into a file under `<root>/.berth/uploads/`, admitted against quota
 * and free space batch by batch, hashed as they are written, flushed early, fsynced, and only
 * then published (pool link, repository link, each directory fsynced: blobs.ts). A failure
 * at any step leaves nothing visible; the file is removed, and start-up removes any a power
 * cut left. Client upload sessions (uploads.ts) keep their own resumable state across
 * requests but end in the same {@link Publish} step. The S3 backend runs this same code on a
 * `Disk` whose files are multipart uploads streamed to the bucket (storage/s3/uploads.ts).
 */
import { open } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import type { Algorithm, Digest } from "../oci/digest";
import type { AppendFile, Disk } from "../platform/disk";
import { hashFile } from "../platform/hash";
import { type UploadHasher, type UploadHashing, inlineHashing } from "../platform/uploadhash";
import type { BlobIngest, IngestOptions } from "./api";
import { StorageError, isNoSpace } from "./errors";
import type { Paths } from "./paths";

/** Bytes written between early flushes (see {@link EarlyFlush}). */
const EARLY_FLUSH = 4 << 20;

/**
 * Early flushes of a file being written: an fdatasync starts in the background every
 * EARLY_FLUSH bytes, so writeback overlaps with receiving and the fsync that completes the
 * file only has the tail left. Durability is decided by that final fsync. A failed flush is
 * kept, not left as an unhandled rejection (which would end the process), and thrown by
 * `settle()`: on Linux a later fsync may succeed after a writeback error, so it must not be
 * lost. Used by uploads and by fetches from upstreams.
 */
export class EarlyFlush {
  private unflushed = 0;
  private pending: Promise<void> | undefined;
  private error: unknown;

  constructor(private readonly file: AppendFile) {}

  /** `bytes` more were written. */
  wrote(bytes: number): void {
    this.unflushed += bytes;
    if (this.unflushed < EARLY_FLUSH || this.pending) return;
    this.unflushed = 0;
    this.pending = this.file.sync().catch((err: unknown) => void (this.error ??= err)).finally(() => (this.pending = undefined));
  }

  /** Waits for a flush in progress; throws the first that failed. */
  async settle(): Promise<void> {
    await this.pending;
    if (this.error) throw this.error;
  }

  /** Waits for a flush in progress, whatever its outcome (before closing the file). */
  async idle(): Promise<void> {
    await this.pending;
  }
}

/**
 * The write step every ingest shares (a {@link BlobIngest}, and each request of a client's
 * upload session): a batch is admitted (quota, free space), written through the `Disk` seam,
 * hashed, and counted for the early flushes. A full disk becomes StorageError "no-space".
 */
export class IngestWriter {
  private readonly flusher: EarlyFlush;

  constructor(
    private readonly file: AppendFile,
    private readonly hasher: UploadHasher | undefined,
    /** Bytes the file holds already. */
    public written: number,
    /** Asked before each batch is written; undefined: admitted already (or never). */
    private readonly admit?: (bytes: number) => Promise<void>,
  ) {
    this.flusher = new EarlyFlush(file);
  }

  /** Admits, writes, hashes and counts one batch. */
  async write(chunks: Uint8Array[]): Promise<void> {
    let bytes = 0;
    for (const c of chunks) bytes += c.byteLength;
    if (bytes === 0) return;
    if (this.admit) await this.admit(bytes);
    try {
      await this.file.write(chunks);
    } catch (err) {
      throw noSpace(err);
    }
    this.written += bytes;
    this.hasher?.advance(chunks, this.written);
    this.flusher.wrote(bytes);
  }

  /** Waits for an early flush in progress (and writes a remote sink still sends); throws the first that failed. */
  async settle(): Promise<void> {
    await this.flusher.settle();
    await this.file.settle?.();
  }

  /** Waits for an early flush in progress, whatever its outcome (before closing the file). */
  idle(): Promise<void> {
    return this.flusher.idle();
  }
}

/** Makes the fsynced file at `path`, verified to hash to `digest`, blob `digest` of `repo`. */
export type Publish = (repo: string, digest: Digest, path: string) => Promise<void>;

/** What an ingest needs of the local store. */
export interface IngestDeps {
  disk: Disk;
  paths: Paths;
  hashing: UploadHashing;
  publish: Publish;
  /** Where a committed blob of `repo` is read back from. */
  published: (repo: string, digest: Digest) => string;
  /** Quota and free-space admission (StorageError "quota" or "no-space" to refuse). */
  admit?: (repo: string, bytes: number) => Promise<void>;
  /** Reads back uncommitted bytes where `disk` holds no readable file (an S3 upload spool). */
  readBack?: (path: string, offset: number, length: number) => Promise<Uint8Array>;
}

/** Opens an ingest of a blob for `repo` (see {@link BlobIngest}). */
export async function startIngest(deps: IngestDeps, repo: string, algorithm: Algorithm, options: IngestOptions = {}): Promise<BlobIngest> {
  const admit = options.admit === false ? undefined : deps.admit;
  if (admit && options.expectedSize !== undefined && options.expectedSize > 0) await admit(repo, options.expectedSize);
  const path = deps.paths.upload(`ingest-${randomUUID()}`);
  let file: AppendFile;
  try {
    file = await deps.disk.openAppend(path);
  } catch (err) {
    await deps.disk.unlink(path).catch(() => {});
    throw noSpace(err);
  }
  const hashing = options.inlineHash ? inlineHashing : deps.hashing;
  return new LocalIngest(deps, repo, algorithm, path, file, hashing.create(algorithm, path), options.expectedSize === undefined ? admit : undefined);
}

class LocalIngest implements BlobIngest {
  private readonly writer: IngestWriter;
  private hex: string | undefined;
  private committed: Digest | undefined;
  private closed = false;

  constructor(
    private readonly deps: IngestDeps,
    private readonly repo: string,
    private readonly algorithm: Algorithm,
    private readonly path: string,
    private readonly file: AppendFile,
    private hasher: UploadHasher | undefined,
    admit: ((repo: string, bytes: number) => Promise<void>) | undefined,
  ) {
    this.writer = new IngestWriter(file, hasher, 0, admit && ((bytes) => admit(repo, bytes)));
  }

  get written(): number {
    return this.writer.written;
  }

  async write(chunks: Uint8Array[]): Promise<void> {
    if (this.closed || !this.hasher) throw new Error(`the ingest of a blob for ${this.repo} is closed`);
    await this.writer.write(chunks);
  }

  async readBack(offset: number, length: number): Promise<Uint8Array> {
    if (!this.committed && this.deps.readBack) return this.deps.readBack(this.path, offset, length);
    const source = this.committed ? this.deps.published(this.repo, this.committed) : this.path;
    const handle = await open(source, "r");
    try {
      const out = new Uint8Array(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await handle.read(out, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === length ? out : out.subarray(0, got);
    } finally {
      await handle.close();
    }
  }

  async digest(): Promise<string> {
    if (this.hex !== undefined) return this.hex;
    await this.writer.settle();
    const hasher = this.hasher;
    this.hasher = undefined;
    if (!hasher) throw new Error(`the ingest of a blob for ${this.repo} is closed`);
    this.hex = await hasher.digest();
    return this.hex;
  }

  async commit(digest: Digest): Promise<void> {
    try {
      const hex = digest.algorithm === this.algorithm ? await this.digest() : await hashFile(digest.algorithm, this.path);
      if (hex !== digest.hex) throw new StorageError("digest-mismatch", `the bytes hash to ${digest.algorithm}:${hex}, not ${digest.value}`);
      await this.writer.settle();
      await this.file.sync();
      await this.close();
      await this.deps.publish(this.repo, digest, this.path);
      this.committed = digest;
    } catch (err) {
      await this.cancel();
      throw noSpace(err);
    }
    await this.deps.disk.unlink(this.path).catch(() => {});
  }

  async cancel(): Promise<void> {
    await this.close();
    if (!this.committed) await this.deps.disk.unlink(this.path).catch(() => {});
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.hasher?.close();
    this.hasher = undefined;
    await this.writer.idle();
    await this.file.close().catch(() => {});
  }
}

/** A full disk as storage's own fault; anything else unchanged. */
function noSpace(err: unknown): unknown {
  return isNoSpace(err) && !(err instanceof StorageError) ? new StorageError("no-space", "the disk is full") : err;
}
