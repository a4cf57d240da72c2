/**
 * Blob upload sessions (distribution spec, "Pushing blobs"): the bytes of a session stream
 * into the file `<root>/.berth/uploads/<id>` through a hasher, so the digest is known when the
 * last byte lands and no blob is ever whole in memory. A chunk that fails half-way (the
 * client went away, the disk filled) is cut off again, so the session stays at the last
 * good offset and the client can resume from there.
 *
 * Sessions live in memory; their files are removed at start-up (clients restart an upload
 * whose session is unknown). A session holds no file descriptor between requests (its hash
 * state is in memory), the number of sessions is capped in total and per client, and a
 * session idle for `expiryMs` is removed by a timer of its own (unref'd; it runs only while
 * sessions exist, so an idle registry has no timer).
 */
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import type { Algorithm, Digest } from "../oci/digest";
import type { AppendFile, Disk } from "../platform/disk";
import { hashFile } from "../platform/hash";
import { type UploadHasher, type UploadHashing, inlineHashing } from "../platform/uploadhash";
import { StorageError, isNoSpace } from "./errors";
import type { Paths } from "./paths";
import type { Logger } from "../log";
import { SessionTable, type UploadLimits } from "./sessions";
import { IngestWriter, type Publish } from "./ingest";
import type { UploadSession, UploadStore } from "./api";

export type { UploadSession } from "./api";

export type { UploadLimits } from "./sessions";

/**
 * Bytes gathered before one write to the file. Each upload in flight holds up to this much
 * of the body (plus the chunk that passed it) until the write returns, and the chunks are
 * garbage only after it: 256 KiB rather than 1 MiB took the anonymous peak of 16 x 64 MiB
 * pushes at concurrency 8 from ~69 to ~59 MiB, at no cost in throughput that showed.
 */
const WRITE_BATCH = 256 * 1024;

interface Session extends UploadSession {
  hasher: UploadHasher | undefined;
  busy: boolean;
}

/** Options for {@link Uploads}. */
export interface UploadOptions {
  /** Largest blob accepted, in bytes; 0 means no limit. */
  maxBlobBytes: number;
  /** Told the size of every chunk received (the memory governor listens). */
  onIngress?: (bytes: number) => void;
  /** How upload bytes are hashed (default: inline, on the event loop). */
  hashing?: UploadHashing;
  /**
   * Hashes a session's bytes again with another algorithm (a final digest in an algorithm
   * the session was not started with); default: reads the data file (platform/hash.ts).
   */
  hashAgain?: (path: string, algorithm: Algorithm) => Promise<string>;
  /**
   * Asked before bytes are accepted for `repo` (the whole announced length up front when
   * it is known, else each batch before it is written); throws a StorageError ("quota" or
   * "no-space") to refuse them. Quota and the free-space floor live behind it.
   */
  admit?: (repo: string, bytes: number) => Promise<void>;
  /** Caps on sessions and their expiry; none: unlimited, and only GC removes idle sessions. */
  limits?: UploadLimits;
  /** Where expiries and failed removals are logged. */
  log?: Logger;
  /** Links a verified, fsynced data file into its repository (storage/ingest.ts). */
  publish: Publish;
}

/** The upload sessions of one storage root: the local {@link UploadStore}. */
export class Uploads implements UploadStore {
  private readonly sessions: SessionTable<Session>;

  constructor(
    private readonly paths: Paths,
    private readonly disk: Disk,
    private readonly options: UploadOptions,
  ) {
    this.sessions = new SessionTable<Session>(options.limits, (s) => this.expire(s));
  }

  /** Removes every session left on disk by an earlier run. */
  async clearLeftovers(): Promise<number> {
    const names = this.disk.readdir(this.paths.uploads);
    for (const name of names) await this.disk.removeTree(join(this.paths.uploads, name));
    await this.disk.mkdirp(this.paths.uploads);
    return names.length;
  }

  /**
   * Opens a new session for `repo`, hashing with `algorithm`, for `client` (a peer
   * address). Throws too-many-uploads when the total or the client's cap is reached; an
   * errno error (EMFILE, ENOSPC …) when the session's file cannot be made.
   */
  async start(repo: string, algorithm: Algorithm, client?: string): Promise<UploadSession> {
    const id = randomUUID();
    // One file per session, straight in the uploads directory: no directory to make and
    // remove per blob (each costs file-system metadata writes on the card).
    const path = this.paths.upload(id);
    const now = Date.now();
    // in the table (caps checked) before the first await; busy until its file exists
    const session: Session = { id, repo, algorithm, size: 0, started: now, lastActive: now, client, hasher: undefined, busy: true };
    this.sessions.add(session);
    try {
      const file = await this.disk.openAppend(path);
      await file.close();
      session.hasher = (this.options.hashing ?? inlineHashing).create(algorithm, path);
    } catch (err) {
      this.sessions.delete(id);
      await this.disk.removeTree(path).catch(() => {});
      throw err;
    }
    session.busy = false;
    session.lastActive = Date.now();
    return session;
  }

  /** Sessions `client` has open. */
  countFor(client: string): number {
    return this.sessions.countFor(client);
  }

  /** Stops the expiry timer (sessions stay). */
  stop(): void {
    this.sessions.stop();
  }

  /** Removes a session its expiry found idle; logs, never throws (it runs on a timer). */
  private async expire(s: Session): Promise<void> {
    try {
      await this.discard(s.id);
      this.options.log?.info("upload session expired", { repo: s.repo, id: s.id, bytes: s.size, idleMs: Date.now() - s.lastActive });
    } catch (err) {
      this.options.log?.warn("an expired upload session could not be removed", { repo: s.repo, id: s.id, error: (err as Error).message });
    }
  }

  /** The session `id` of `repo`; throws upload-unknown if there is none. */
  get(repo: string, id: string): UploadSession {
    return this.session(repo, id);
  }

  /** Sessions in flight. */
  count(): number {
    return this.sessions.size;
  }

  /** Every session in flight (for garbage collection of idle ones and quota accounting). */
  list(): (UploadSession & { readonly busy: boolean })[] {
    return [...this.sessions.values()];
  }

  /**
   * Appends a request body to the session. With `range`, the chunk must start at the
   * session's current size (else range-mismatch) and be exactly `range.end - range.start + 1`
   * bytes; with `length`, exactly that many bytes. On any failure the session is restored
   * to where it was before this call.
   */
  async append(
    repo: string,
    id: string,
    body: ReadableStream<Uint8Array> | null,
    opts: { range?: { start: number; end: number }; length?: number } = {},
  ): Promise<UploadSession> {
    const session = this.session(repo, id);
    if (session.busy) throw new StorageError("upload-busy", "another request is writing to this upload");
    if (opts.range && opts.range.start !== session.size) {
      throw new StorageError("range-mismatch", `the chunk starts at ${opts.range.start} but the upload has ${session.size} bytes`);
    }
    session.busy = true;
    const startSize = session.size;
    let file: AppendFile;
    try {
      file = await this.disk.openAppend(this.dataPath(id));
    } catch (err) {
      // (EMFILE …) nothing was written: the session must not stay busy, i.e. unusable and unexpirable
      session.busy = false;
      session.lastActive = Date.now();
      throw err;
    }
    session.hasher?.checkpoint();
    const announced = opts.range ? opts.range.end - opts.range.start + 1 : opts.length;
    // the one write step of every ingest (storage/ingest.ts); batches are admitted only when no length was announced
    const admit = this.options.admit;
    const writer = new IngestWriter(file, session.hasher, startSize, announced === undefined && admit ? (bytes) => admit(repo, bytes) : undefined);
    try {
      if (announced !== undefined && announced > 0) await admit?.(repo, announced);
      const written = body ? await this.pump(session, body, writer) : 0;
      await writer.settle();
      if (announced !== undefined && written !== announced) {
        throw new StorageError("size-mismatch", `received ${written} bytes where ${announced} were announced`);
      }
      return session;
    } catch (err) {
      await file.truncate(startSize).catch(() => {});
      session.size = startSize;
      session.hasher?.rollback();
      if (isNoSpace(err)) throw new StorageError("no-space", "the disk is full");
      throw err;
    } finally {
      await writer.idle();
      await file.close().catch(() => {});
      session.busy = false;
      session.lastActive = Date.now();
    }
  }

  /**
   * Completes the session: verifies that its bytes hash to `digest`, makes them durable and
   * publishes them as blob `digest` of the repository (`beforeLink` runs first), then
   * discards the session. The session stays busy until publishing has settled, so neither
   * the expiry timer nor a GC pass nor a DELETE removes the file while it is being linked.
   * On a mismatch the session is discarded and digest-mismatch is thrown; when publishing
   * fails the session stays.
   */
  async complete(repo: string, id: string, digest: Digest, beforeLink?: () => void): Promise<void> {
    const session = this.session(repo, id);
    if (session.busy) throw new StorageError("upload-busy", "another request is writing to this upload");
    session.busy = true;
    const path = this.dataPath(id);
    try {
      const hasher = session.hasher;
      session.hasher = undefined;
      let hex: string;
      if (hasher && session.algorithm === digest.algorithm) {
        hex = await hasher.digest();
      } else {
        hasher?.close();
        hex = this.options.hashAgain ? await this.options.hashAgain(path, digest.algorithm) : await hashFile(digest.algorithm, path);
      }
      if (hex !== digest.hex) {
        await this.discard(id);
        throw new StorageError("digest-mismatch", `the uploaded bytes hash to ${digest.algorithm}:${hex}, not ${digest.value}`);
      }
      const file = await this.disk.openAppend(path);
      try {
        await file.sync();
      } finally {
        await file.close();
      }
      beforeLink?.();
      await this.options.publish(repo, digest, path);
      await this.discard(id);
    } finally {
      session.busy = false;
      session.lastActive = Date.now();
    }
  }

  /**
   * Writes small in-memory bytes (a manifest) to a fresh fsynced file beside the upload
   * sessions and publishes it as blob `digest` of `repo`, with the same ordered links as a
   * blob; admitted first unless `admit` is false.
   */
  async putSmall(repo: string, digest: Digest, bytes: Uint8Array, admit = true): Promise<void> {
    if (admit) await this.options.admit?.(repo, bytes.byteLength);
    const path = this.paths.upload(`stage-${randomUUID()}`);
    try {
      const file = await this.disk.openAppend(path);
      try {
        await file.write([bytes]);
        await file.sync();
      } finally {
        await file.close();
      }
      await this.options.publish(repo, digest, path);
    } catch (err) {
      if (isNoSpace(err)) throw new StorageError("no-space", "the disk is full");
      throw err;
    } finally {
      await this.disk.unlink(path);
    }
  }

  /** Forgets a session and removes its files. */
  async discard(id: string): Promise<void> {
    this.sessions.get(id)?.hasher?.close();
    this.sessions.delete(id);
    await this.disk.removeTree(this.paths.upload(id));
  }

  /**
   * Cancels session `id` of `repo`; throws upload-unknown if there is none, upload-busy
   * while a request is using it (removing its file under a completing PUT would publish an
   * empty file, reopened by name, as the blob).
   */
  async cancel(repo: string, id: string): Promise<void> {
    const session = this.session(repo, id);
    if (session.busy) throw new StorageError("upload-busy", "a request is using this upload; cancel it once that request has ended");
    await this.discard(id);
  }

  private session(repo: string, id: string): Session {
    const session = this.sessions.get(id);
    if (!session || session.repo !== repo) throw new StorageError("upload-unknown", `no upload "${id}" in this repository`);
    return session;
  }

  private dataPath(id: string): string {
    return this.paths.upload(id);
  }

  /** Streams `body` through the hasher into the file; returns the bytes received. */
  private async pump(session: Session, body: ReadableStream<Uint8Array>, writer: IngestWriter): Promise<number> {
    const limit = this.options.maxBlobBytes;
    const reader = body.getReader();
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    let received = 0;
    try {
      for (;;) {
        let next: { done: true; value?: undefined } | { done: false; value: Uint8Array };
        try {
          next = (await reader.read()) as typeof next;
        } catch {
          throw new StorageError("client-aborted", "the request body ended before it was complete");
        }
        if (next.done) break;
        const chunk = next.value;
        received += chunk.byteLength;
        this.options.onIngress?.(chunk.byteLength);
        if (limit > 0 && session.size + received > limit) {
          throw new StorageError("too-large", `the blob is larger than the limit of ${limit} bytes`);
        }
        batch.push(chunk);
        batchBytes += chunk.byteLength;
        if (batchBytes >= WRITE_BATCH) {
          await writer.write(batch);
          batch = [];
          batchBytes = 0;
        }
      }
      if (batch.length > 0) await writer.write(batch);
    } finally {
      reader.releaseLock();
    }
    session.size += received;
    return received;
  }
}
