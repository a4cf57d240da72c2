/**
 * Fetching one blob from an upstream into the store, shared by everyone who wants it
 * (singleflight) and readable while it is being written.
 *
 * The upstream body is written chunk by chunk into a fresh file under the uploads
 * directory while it is hashed; readers follow that file as it grows (each from byte 0, so
 * a late joiner misses nothing), which is how a client receives the bytes while they are
 * stored. Only when the last byte is in and the digest and size verify is the file fsynced
 * and published (pool link, repository link): a failed or aborted fetch leaves nothing
 * visible, and its file is removed. A reader that goes away (client disconnect) only stops
 * reading; the fetch carries on and the blob is stored.
 *
 * Background fetches (scheduled sync) wait for the IO budget before each write; once a
 * client joins, the fetch counts as foreground and is no longer throttled.
 */
import { randomUUID } from "node:crypto";
import { open } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../log";
import type { Digest } from "../oci/digest";
import { createHasher } from "../platform/hash";
import type { IoBudget } from "../scheduler/budget";
import type { Store } from "../storage/store";
import { UpstreamError } from "./errors";

const READ_CHUNK = 1024 * 1024;
const WRITE_BATCH = 256 * 1024;

/** One fetch in flight. */
export class BlobFetch {
  /** Bytes written to the file so far. */
  written = 0;
  /** Size announced by the upstream, when it did. */
  size: number | undefined;
  state: "running" | "done" | "failed" = "running";
  /** Every byte is written and the digest verified (readers may finish; publishing may still be under way). */
  verified = false;
  error: unknown;
  /** Resolves when the blob is published; rejects when the fetch failed. */
  readonly done: Promise<void>;
  /** Resolves once the upstream answered (size known) or the fetch failed. */
  readonly started: Promise<void>;
  background: boolean;
  readonly path: string;
  private waiters: (() => void)[] = [];
  private resolveStarted!: () => void;

  constructor(
    readonly repo: string,
    readonly digest: Digest,
    readonly dir: string,
    background: boolean,
    readonly publishedPath: string,
  ) {
    this.background = background;
    this.path = join(dir, "data");
    this.started = new Promise((res) => (this.resolveStarted = res));
    this.done = new Promise<void>(() => {}); // replaced by BlobFetches
  }

  /** Called by the writer: something changed (bytes, state). */
  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  markStarted(): void {
    this.resolveStarted();
  }

  private changed(): Promise<void> {
    return new Promise((res) => this.waiters.push(res));
  }

  /**
   * A stream of the blob from byte 0, following the file as it grows. Errors when the
   * fetch fails. `onRead` is told every chunk's size (foreground IO accounting).
   */
  reader(onRead?: (bytes: number) => void): ReadableStream<Uint8Array> {
    this.background = false;
    let fh: Awaited<ReturnType<typeof open>> | undefined;
    let pos = 0;
    const openFile = async () => {
      try {
        return await open(this.path, "r");
      } catch {
        // the fetch finished and its file is gone: read the published blob
        return await open(this.publishedPath, "r");
      }
    };
    return new ReadableStream<Uint8Array>({
      type: "bytes",
      pull: async (controller) => {
        for (let i = 0; ; i++) {
          if (pos < this.written || (this.state === "done" && fh === undefined && pos < (this.size ?? this.written))) {
            fh ??= await openFile();
            const want = Math.min(READ_CHUNK, Math.max(this.written, this.size ?? 0) - pos);
            const buf = new Uint8Array(want);
            const { bytesRead } = await fh.read(buf, 0, want, pos);
            if (bytesRead > 0) {
              pos += bytesRead;
              onRead?.(bytesRead);
              controller.enqueue(bytesRead === want ? buf : buf.subarray(0, bytesRead));
              return;
            }
          }
          if (this.state === "failed") {
            await fh?.close().catch(() => {});
            controller.error(this.error);
            return;
          }
          if ((this.state === "done" || this.verified) && pos >= this.written) {
            await fh?.close().catch(() => {});
            controller.close();
            return;
          }
          await this.changed();
        }
      },
      cancel: async () => {
        await fh?.close().catch(() => {});
      },
    });
  }
}

/** Opens the upstream response for a blob. */
export type BlobSource = (signal: AbortSignal | undefined) => Promise<Response>;

/** The fetches in flight, keyed by repository and digest. */
export class BlobFetches {
  private readonly inflight = new Map<string, BlobFetch>();

  constructor(
    private readonly store: Store,
    private readonly budget: IoBudget,
    private readonly log: Logger,
  ) {}

  /** Fetches in flight (for the admin API). */
  list() {
    return [...this.inflight.values()].map((f) => ({ repo: f.repo, digest: f.digest.value, written: f.written, size: f.size ?? null, background: f.background }));
  }

  /** The fetch of `digest` into `repo` in flight, if any. */
  get(repo: string, digest: Digest): BlobFetch | undefined {
    return this.inflight.get(`${repo}@${digest.value}`);
  }

  /**
   * Starts the fetch of `digest` into `repo` from `source`, or joins the one in flight.
   * `expectedSize` (from a descriptor) is checked when given.
   */
  fetch(repo: string, digest: Digest, source: BlobSource, opts: { background: boolean; signal?: AbortSignal; expectedSize?: number; upstream: string }): BlobFetch {
    const key = `${repo}@${digest.value}`;
    const existing = this.inflight.get(key);
    if (existing) {
      if (!opts.background) existing.background = false;
      return existing;
    }
    const dir = this.store.paths.upload(`sync-${randomUUID()}`);
    const f = new BlobFetch(repo, digest, dir, opts.background, this.store.blobs.path(repo, digest));
    this.inflight.set(key, f);
    const done = this.run(f, source, opts).then(
      () => {
        f.state = "done";
      },
      (err) => {
        f.state = "failed";
        f.error = err;
        throw err;
      },
    ).finally(() => {
      this.inflight.delete(key);
      f.markStarted();
      f.notify();
    });
    done.catch(() => {});
    (f as { done: Promise<void> }).done = done;
    return f;
  }

  private async run(f: BlobFetch, source: BlobSource, opts: { signal?: AbortSignal; expectedSize?: number; upstream: string }): Promise<void> {
    const disk = this.store.disk;
    await disk.mkdirp(f.dir);
    try {
      const res = await source(opts.signal);
      const length = res.headers.get("content-length");
      f.size = length !== null && /^\d+$/.test(length) ? Number(length) : opts.expectedSize;
      if (opts.expectedSize !== undefined && f.size !== opts.expectedSize) {
        await res.body?.cancel();
        throw new UpstreamError("digest", opts.upstream, `sent ${f.size} bytes for ${f.digest.value}, whose descriptor says ${opts.expectedSize}`);
      }
      const file = await disk.openAppend(f.path);
      f.markStarted();
      const hasher = createHasher(f.digest.algorithm);
      try {
        if (res.body) {
          // chunks are gathered up to WRITE_BATCH bytes per write: fewer syscalls, and readers
          // still get bytes within one batch of their arrival
          let batch: Uint8Array[] = [];
          let batchBytes = 0;
          const flush = async () => {
            if (batchBytes === 0) return;
            if (f.background) await this.budget.take("write", batchBytes, 1, opts.signal);
            else this.budget.foreground(batchBytes, "write");
            await file.write(batch);
            f.written += batchBytes;
            batch = [];
            batchBytes = 0;
            f.notify();
          };
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            opts.signal?.throwIfAborted();
            hasher.update(chunk);
            batch.push(chunk);
            batchBytes += chunk.byteLength;
            if (f.size !== undefined && f.written + batchBytes > f.size) throw new UpstreamError("digest", opts.upstream, `sent more than the ${f.size} bytes announced for ${f.digest.value}`);
            if (batchBytes >= WRITE_BATCH || f.written === 0) await flush();
          }
          await flush();
        }
        if (f.size !== undefined && f.written !== f.size) throw new UpstreamError("unreachable", opts.upstream, `the transfer of ${f.digest.value} broke off after ${f.written} of ${f.size} bytes`);
        const hex = hasher.hex();
        if (hex !== f.digest.hex) throw new UpstreamError("digest", opts.upstream, `sent bytes hashing to ${f.digest.algorithm}:${hex} for ${f.digest.value}`);
        f.verified = true;
        f.notify();
        await file.sync();
      } finally {
        await file.close().catch(() => {});
      }
      f.size = f.written;
      await this.store.layouts.ensure(f.repo);
      await this.store.blobs.publish(f.repo, f.digest, f.path);
      this.log.debug("blob fetched", { repo: f.repo, digest: f.digest.value, bytes: f.written, upstream: opts.upstream });
    } catch (err) {
      if (err instanceof UpstreamError) throw err;
      if (opts.signal?.aborted) throw err;
      // a body that broke off mid-stream
      const e = err as { code?: string; message?: string };
      throw new UpstreamError("unreachable", opts.upstream, `the transfer of ${f.digest.value} broke off (${e?.code ?? e?.message ?? "error"})`);
    } finally {
      await disk.removeTree(f.dir).catch(() => {});
    }
  }
}
