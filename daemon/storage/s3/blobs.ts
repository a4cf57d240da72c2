/**
 * Blobs on S3 (the {@link BlobStore} of the S3 backend). Bytes are content-addressed under
 * blobs/<alg>/<hex> (written once, never changed, so deduplication is free) and linked into a
 * repository by an empty object repos/<repo>/_links/<alg>/<hex>.
 *
 * Bytes come in through the one ingest path (storage/ingest.ts and the upload sessions of
 * storage/uploads.ts), written to a {@link PartSpool} (uploads.ts, spool.ts): streamed into a
 * multipart upload under a temporary key with bounded memory, nothing spooled locally. Once
 * the digest is verified, {@link publish} makes it the blob: when the bucket has the blob
 * already the upload is dropped (dedupe), else a blob of less than one part is one PUT from
 * memory and a larger one is completed and copied on the server to its content-addressed key
 * (CopyObject; UploadPartCopy ranges past 5 GiB). The upload is never completed onto the
 * blob's key itself: RGW 16's CompleteMultipartUpload ignores If-None-Match, and the temporary
 * key keeps an upload that fails half-way out of the blob namespace. Then the link is written,
 * and the blob is HEADed again so that a GC in another process that removed it meanwhile is
 * noticed and the blob copied again. Linking a blob the bucket already has (a mount, an
 * upload of bytes already stored) is a guarded write (gclock.ts), so that no GC deletes what
 * the acknowledgement promises. Reads are ranged GETs streamed to the client, or (opt-in)
 * redirects to presigned URLs.
 */
import type { Algorithm, Digest } from "../../oci/digest";
import type { BlobBody, BlobIngest, BlobInfo, BlobStore, ByteRange, IngestOptions } from "../api";
import type { S3Client } from "./client";
import type { GcLock } from "./gclock";
import type { S3Keys } from "./keys";
import type { KnownBlob, LinkState } from "./links";
import { type CopyOptions, copyObject } from "./multipart";
import { NotInMemory, type PartSpool } from "./spool";

/** With a blob grace below this, the link of freshly uploaded bytes is a guarded write too. */
const GUARD_FRESH_BELOW_MS = 60_000;

/** How blobs are sent to clients. */
export interface S3BlobOptions {
  /** Redirect whole-blob GETs to presigned URLs valid this long (0: stream through berth). */
  redirectSeconds: number;
  /** The client that signs redirect URLs (its endpoint is the one clients can reach). */
  presigner?: S3Client;
  /** Opens an ingest (storage/ingest.ts on the upload spool); its commit ends in {@link S3Blobs.publish}. */
  startIngest(repo: string, algorithm: Algorithm, options: IngestOptions): Promise<BlobIngest>;
  /** Creates the repository's index if needed (before its first link). */
  ensureRepo(repo: string): Promise<void>;
  /** Limits of the server-side copy (tests). */
  copy?: CopyOptions;
  /** Guards links of blobs already stored against another process's GC. */
  gcLock: GcLock;
  /** A blob older than half of this is touched when linked anew (backend.ts, blobGraceMs). */
  graceMs: number;
}

/** The bucket's blobs and each repository's links. */
export class S3Blobs implements BlobStore {
  constructor(
    private readonly s3: S3Client,
    private readonly keys: S3Keys,
    readonly state: LinkState,
    private readonly options: S3BlobOptions,
  ) {}

  /** From memory (see links.ts); a miss lists the repository again in the background. */
  stat(repo: string, digest: Digest): BlobInfo | undefined {
    const info = this.state.stat(repo, digest.value);
    if (!info) this.state.missed(repo);
    return info;
  }

  /** After a miss in memory: the link and the blob as the bucket has them (another process may have written them). */
  async lookup(repo: string, digest: Digest): Promise<BlobInfo | undefined> {
    const link = await this.s3.head(this.keys.link(repo, digest.value));
    if (!link) return undefined;
    const blob = await this.blobInfo(digest.value);
    if (!blob) return undefined;
    this.state.linked(repo, digest.value, blob, link.lastModified.getTime());
    return { size: blob.size, mtimeMs: link.lastModified.getTime() };
  }

  /** Reads a small blob whole. */
  async read(_repo: string, digest: Digest): Promise<Uint8Array> {
    const got = await this.s3.get(this.keys.blob(digest.value));
    return new Uint8Array(await new Response(got.body).arrayBuffer());
  }

  /** A presigned redirect (whole blobs, when configured) or a stream of a ranged GET. */
  open(_repo: string, digest: Digest, range?: ByteRange): BlobBody {
    const key = this.keys.blob(digest.value);
    if (!range && this.options.redirectSeconds > 0 && this.options.presigner) return { kind: "redirect", url: this.options.presigner.presignGet(key, this.options.redirectSeconds) };
    return { kind: "stream", open: () => lazyGet(this.s3, key, range) };
  }

  /** True when the link and the blob are in the bucket (asked of S3 when not known here). */
  async holdsDurably(repo: string, digest: Digest): Promise<boolean> {
    if (this.state.stat(repo, digest.value)) return true;
    return (await this.s3.head(this.keys.link(repo, digest.value))) !== undefined && (await this.blobInfo(digest.value)) !== undefined;
  }

  /** The stored blob, from memory or a HEAD. */
  async blobInfo(digest: string): Promise<KnownBlob | undefined> {
    const known = this.state.pool.get(digest);
    if (known) return known;
    const info = await this.s3.head(this.keys.blob(digest));
    if (!info) return undefined;
    const blob = { size: info.size, mtimeMs: info.lastModified.getTime() };
    this.state.pool.set(digest, blob);
    return blob;
  }

  async canMount(digest: Digest, from?: string): Promise<boolean> {
    if (from !== undefined && !(await this.holdsDurably(from, digest))) return false;
    return (await this.blobInfo(digest.value)) !== undefined;
  }

  /** Writes the link, then checks the blob is still there (a GC elsewhere may have removed it). */
  async mount(repo: string, digest: Digest, from?: string): Promise<boolean> {
    if (!(await this.canMount(digest, from))) return false;
    await this.options.ensureRepo(repo);
    if (await this.linkStored(repo, digest)) return true;
    this.state.dropped(digest.value);
    return false;
  }

  /**
   * Links the stored blob into `repo` as a guarded write (gclock.ts): checked under an
   * intent, touched when old (a GC that decided on it keeps it), linked; undefined (nothing
   * written) when the bucket does not have it.
   */
  private linkStored(repo: string, digest: Digest): Promise<KnownBlob | undefined> {
    const lock = this.options.gcLock;
    return lock.guard(`a link of ${digest.value} into "${repo}"`, async (g) => {
      const info = await this.s3.head(this.keys.blob(digest.value));
      if (!info) return undefined;
      const blob = { size: info.size, mtimeMs: info.lastModified.getTime() };
      const signal = await g.beforeWrite();
      if (blob.mtimeMs + this.options.graceMs / 2 <= Date.now()) await lock.touch(digest.value, g.epoch, signal);
      await this.s3.put(this.keys.link(repo, digest.value), new Uint8Array(0), { signal });
      this.state.linked(repo, digest.value, blob);
      return blob;
    });
  }

  /** Removes the repository's link (the bytes stay for other repositories, and GC). */
  async remove(repo: string, digest: Digest): Promise<boolean> {
    const key = this.keys.link(repo, digest.value);
    if (!this.state.stat(repo, digest.value) && !(await this.s3.head(key))) return false;
    await this.s3.delete(key);
    this.state.unlinked(repo, digest.value);
    return true;
  }

  /**
   * The shared ingest on the upload spool. Bytes still in memory are read back from there;
   * bytes already sent in parts only from the stored blob: a reader that fell that far
   * behind a fetch in flight waits for the commit, then reads the blob.
   */
  async ingest(repo: string, algorithm: Algorithm, options: IngestOptions = {}): Promise<BlobIngest> {
    const inner = await this.options.startIngest(repo, algorithm, options);
    let committed: Digest | undefined;
    let settle!: (ok: boolean) => void;
    const settled = new Promise<boolean>((resolve) => (settle = resolve));
    const s3 = this.s3;
    const keys = this.keys;
    return {
      get written() {
        return inner.written;
      },
      write: (chunks) => inner.write(chunks),
      async readBack(offset, length) {
        if (!committed) {
          try {
            return await inner.readBack(offset, length);
          } catch (err) {
            if (!(err instanceof NotInMemory)) throw err;
          }
        }
        if (!committed && !(await settled)) throw new Error(`The bytes of a blob for "${repo}" were dropped before they were stored`);
        if (length <= 0) return new Uint8Array(0);
        const got = await s3.get(keys.blob(committed!.value), { start: offset, end: offset + length - 1 });
        return new Uint8Array(await new Response(got.body).arrayBuffer());
      },
      digest: () => inner.digest(),
      async commit(digest) {
        try {
          await inner.commit(digest);
        } catch (err) {
          settle(false);
          throw err;
        }
        committed = digest;
        settle(true);
      },
      async cancel() {
        await inner.cancel();
        settle(committed !== undefined);
      },
    };
  }

  /**
   * Makes the verified bytes of `spool` blob `digest` of `repo` (see the module comment); the
   * spool is dropped afterwards whatever happened.
   */
  async publish(repo: string, digest: Digest, spool: PartSpool): Promise<void> {
    try {
      await this.options.ensureRepo(repo);
      const key = this.keys.blob(digest.value);
      if ((await this.s3.head(key)) && (await this.linkStored(repo, digest))) return;
      let blob = await this.place(key, spool);
      // New bytes are young, so no GC decides on them before the link below is written, unless
      // the grace is too short to cover this moment: then the link is a guarded write too.
      if (this.options.graceMs < GUARD_FRESH_BELOW_MS) {
        for (let tries = 1; !(await this.linkStored(repo, digest)); tries++) {
          if (tries >= 3) throw new Error(`Blob ${digest.value} was removed from the bucket three times while it was being linked into "${repo}"`);
          await this.place(key, spool);
        }
        return;
      }
      await this.s3.put(this.keys.link(repo, digest.value), new Uint8Array(0));
      if (!(await this.s3.head(key))) blob = await this.place(key, spool);
      this.state.linked(repo, digest.value, blob);
    } finally {
      await spool.drop();
    }
  }

  /** Writes the spool's bytes to `key`: one PUT when small, else completed and copied on the server. */
  private async place(key: string, spool: PartSpool): Promise<KnownBlob> {
    if (spool.small) {
      await spool.restore();
      const bytes = spool.bytes();
      await this.s3.put(key, bytes);
      return { size: bytes.byteLength, mtimeMs: Date.now() };
    }
    await spool.complete();
    await copyObject(this.s3, spool.key, key, spool.size, this.options.copy);
    return { size: spool.size, mtimeMs: Date.now() };
  }
}

/** A stream whose GET starts on the first read (so a body that is never read costs no request). */
function lazyGet(s3: S3Client, key: string, range?: ByteRange): ReadableStream<Uint8Array> {
  let reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(reason?: unknown): Promise<void> } | undefined;
  const abort = new AbortController();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!reader) {
        const got = await s3.get(key, { ...(range ? { start: range.start, end: range.end } : {}), signal: abort.signal });
        reader = got.body.getReader();
      }
      const r = await reader.read();
      if (r.done || !r.value) controller.close();
      else controller.enqueue(r.value);
    },
    async cancel(reason) {
      abort.abort(reason);
      await reader?.cancel(reason).catch(() => {});
    },
  });
}
