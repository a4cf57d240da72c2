/**
 * Fetching one blob from an upstream into the store, shared by everyone who wants it
 * (singleflight) and readable while it is being written.
 *
 * The upstream body is written in batches through storage's one ingest path (storage/api.ts,
 * BlobIngest), which admits each batch against quota and the free-space floor as a push is.
 * Readers (clients pulling the blob) are relayed the bytes from memory: the fetch keeps a
 * bounded window of the most recent chunks, and a reader behind that window (a late joiner,
 * or a client slower than the upstream) reads back what was written instead, each from byte 0, so
 * nobody misses anything and memory stays bounded whatever the client's pace. The digest is
 * computed by the store's hashing (a thread reading the file back from the page cache, when
 * configured, for the local backend), so the event loop only receives, writes and relays.
 *
 * Only when the last byte is in and the digest and size verify is the ingest committed
 * (made durable and linked into the repository): a failed or aborted fetch leaves nothing
 * visible; its readers get an error instead of an end, so a client
 * never takes bad bytes for a complete blob. A reader that goes away (client disconnect)
 * only stops reading; the fetch carries on and the blob is stored.
 *
 * Background fetches (scheduled sync) wait for the IO budget before each write; once a
 * client joins, the fetch counts as foreground and is no longer throttled.
 */
import type { Logger } from "../log";
import type { Digest } from "../oci/digest";
import type { IoBudget } from "../scheduler/budget";
import type { BlobIngest, Storage } from "../storage/api";
import { StorageError } from "../storage/errors";
import { UpstreamError } from "./errors";

const READ_CHUNK = 1024 * 1024;
/** Bytes gathered per write while a client waits (fewer, larger writes: ~10 % less time per cold pull). */
export const WRITE_BATCH = 1024 * 1024;
/** Bytes per write of a background fetch: shorter turns of the event loop, for clients' tail latency. */
const BACKGROUND_WRITE_BATCH = 256 * 1024;
/** Blobs up to this size are hashed on the event loop. */
const INLINE_HASH_MAX = 1024 * 1024;
/** Received bytes kept in memory for readers, beyond those not yet written. */
export const RELAY_WINDOW = 4 * 1024 * 1024;

/** One fetch in flight. */
export class BlobFetch {
  /** Bytes written to the file so far. */
  written = 0;
  /** Bytes received from the upstream so far (>= written). */
  received = 0;
  /** Size announced by the upstream, when it did. */
  size: number | undefined;
  state: "running" | "done" | "failed" = "running";
  /** Every byte is in and the digest verified (readers may finish; publishing may still be under way). */
  verified = false;
  error: unknown;
  /** Resolves when the blob is published; rejects when the fetch failed. */
  readonly done: Promise<void>;
  /** Resolves once the upstream answered (size known) or the fetch failed. */
  readonly started: Promise<void>;
  background: boolean;
  /** Where the bytes go (and are read back from); set once the upstream answered. */
  ingest: BlobIngest | undefined;
  /** The relay window: received chunks covering bytes [windowStart, received). */
  private window: Uint8Array[] = [];
  private windowStart = 0;
  private waiters: (() => void)[] = [];
  private resolveStarted!: () => void;

  constructor(
    readonly repo: string,
    readonly digest: Digest,
    background: boolean,
  ) {
    this.background = background;
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

  /** The writer received `chunk` (not yet written). */
  receive(chunk: Uint8Array): void {
    this.window.push(chunk);
    this.received += chunk.byteLength;
    this.notify();
  }

  /** The writer wrote bytes up to `written`: chunks that are on file may leave the window. */
  wrote(written: number): void {
    this.written = written;
    while (this.window.length > 0 && this.received - this.windowStart > RELAY_WINDOW) {
      const first = this.window[0]!;
      if (this.windowStart + first.byteLength > written) break;
      this.windowStart += first.byteLength;
      this.window.shift();
    }
    this.notify();
  }

  /** The fetch ended: readers still behind read the file (or the published blob). */
  end(): void {
    this.window = [];
    this.windowStart = this.written;
    this.received = this.written;
  }

  /** Bytes held in memory for readers. */
  get windowBytes(): number {
    return this.received - this.windowStart;
  }

  /**
   * Resolves once every byte is in and the digest verified; rejects with the fetch's error.
   * Pull-through waits for this before answering for a small blob, so a blob whose bytes
   * are wrong gets a clean error status rather than a 200 that breaks off.
   */
  async whenVerified(): Promise<void> {
    for (;;) {
      if (this.state === "failed") throw this.error;
      if (this.verified || this.state === "done") return;
      await this.changed();
    }
  }

  private changed(): Promise<void> {
    return new Promise((res) => this.waiters.push(res));
  }

  /**
   * A stream of the blob from byte 0. Errors when the fetch fails. `onRead` is told the size
   * of every chunk read from the file (foreground IO accounting; relayed bytes cost no IO).
   */
  reader(onRead?: (bytes: number) => void): ReadableStream<Uint8Array> {
    this.background = false;
    const cursor: Cursor = { pos: 0, onRead };
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          await this.pull(controller, cursor);
        } catch (err) {
          controller.error(this.state === "failed" ? this.error : err);
        }
      },
    });
  }

  /** Enqueues what `cursor` can have next, waiting for it if need be; true once closed. */
  private async pull(controller: ReadableStreamDefaultController<Uint8Array>, cursor: Cursor): Promise<boolean> {
    for (;;) {
      if (this.state === "failed") throw this.error;
      const pos = cursor.pos;
      if (pos < this.windowStart || (this.state === "done" && pos < this.written)) {
        // behind the window: read back from storage, which holds every byte before it
        const limit = this.state === "done" ? this.written : this.windowStart;
        const want = Math.min(READ_CHUNK, limit - pos);
        if (!this.ingest) throw new Error(`the fetch of ${this.digest.value} has no bytes to read back`);
        const bytes = await this.ingest.readBack(pos, want);
        if (bytes.byteLength === 0) throw new Error(`the stored bytes of ${this.digest.value} ended at ${pos} of ${limit}`);
        cursor.pos += bytes.byteLength;
        cursor.onRead?.(bytes.byteLength);
        controller.enqueue(bytes);
        return false;
      }
      if (pos < this.received) {
        // in the window: every chunk from pos on, without copying
        let at = this.windowStart;
        for (const chunk of this.window) {
          const end = at + chunk.byteLength;
          if (end > cursor.pos) {
            controller.enqueue(cursor.pos === at ? chunk : chunk.subarray(cursor.pos - at));
            cursor.pos = end;
          }
          at = end;
        }
        return false;
      }
      if ((this.state === "done" || this.verified) && pos >= this.written) {
        controller.close();
        return true;
      }
      await this.changed();
    }
  }
}

/** Where one reader is. */
interface Cursor {
  pos: number;
  onRead?: (bytes: number) => void;
}

/** Opens the upstream response for a blob. */
export type BlobSource = (signal: AbortSignal | undefined) => Promise<Response>;

/** The fetches in flight, keyed by repository and digest. */
export class BlobFetches {
  private readonly inflight = new Map<string, BlobFetch>();
  /** Blobs an upstream sent with bytes that did not match their digest (or announced size), by upstream. */
  readonly corrupt = new Map<string, number>();

  constructor(
    private readonly store: Storage,
    private readonly budget: IoBudget,
    private readonly log: Logger,
  ) {}

  /** Fetches in flight (for the admin API). */
  list() {
    return [...this.inflight.values()].map((f) => ({ repo: f.repo, digest: f.digest.value, written: f.written, size: f.size ?? null, background: f.background }));
  }

  /**
   * Resolves once no fetch is in flight: each one ended (stored, or failed and cleaned up).
   * A clean stop waits for this, so a fetch whose bytes a client already received is stored.
   */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight.values()].map((f) => f.done));
  }

  /** The fetch of `digest` into `repo` in flight, if any. */
  get(repo: string, digest: Digest): BlobFetch | undefined {
    return this.inflight.get(`${repo}@${digest.value}`);
  }

  /**
   * Starts the fetch of `digest` into `repo` from `source`, or joins the one in flight.
   * `expectedSize` (from a descriptor) is checked when given. `onError` is told why the
   * fetch failed before the fetch leaves the in-flight table (so a negative answer can be
   * remembered before the next client could start a fetch of its own).
   */
  fetch(repo: string, digest: Digest, source: BlobSource, opts: { background: boolean; signal?: AbortSignal; expectedSize?: number; upstream: string; onError?: (err: unknown) => void }): BlobFetch {
    const key = `${repo}@${digest.value}`;
    const existing = this.inflight.get(key);
    if (existing) {
      if (!opts.background) existing.background = false;
      return existing;
    }
    const f = new BlobFetch(repo, digest, opts.background);
    this.inflight.set(key, f);
    const done = this.run(f, source, opts).then(
      () => {
        f.state = "done";
      },
      (err) => {
        f.state = "failed";
        f.error = err;
        opts.onError?.(err);
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
    let ingest: BlobIngest | undefined;
    try {
      const res = await source(opts.signal);
      const length = res.headers.get("content-length");
      f.size = length !== null && /^\d+$/.test(length) ? Number(length) : opts.expectedSize;
      if (opts.expectedSize !== undefined && f.size !== opts.expectedSize) {
        await res.body?.cancel();
        throw new UpstreamError("digest", opts.upstream, `sent ${f.size} bytes for ${f.digest.value}, whose descriptor says ${opts.expectedSize}`);
      }
      // The hashing thread takes a client's fetch off the event loop. A small blob is hashed at
      // once rather than queued behind big ones there; a background fetch is hashed inline
      // too: it runs at the budget's pace, and a second busy thread costs clients more tail
      // latency on a small board than its few hundred microseconds per batch (bench-sync (a)).
      const inline = f.background || (f.size !== undefined && f.size <= INLINE_HASH_MAX);
      try {
        ingest = await this.store.blobs.ingest(f.repo, f.digest.algorithm, { inlineHash: inline, ...(f.size !== undefined ? { expectedSize: f.size } : {}) });
      } catch (err) {
        await res.body?.cancel().catch(() => {});
        throw err;
      }
      f.ingest = ingest;
      f.markStarted();
      if (res.body) {
        // chunks go to readers at once and to storage in batches (each admitted: quota, min_free)
        let batch: Uint8Array[] = [];
        let batchBytes = 0;
        const flush = async () => {
          if (batchBytes === 0) return;
          if (f.background) await this.budget.take("write", batchBytes, 1, opts.signal);
          else this.budget.foreground(batchBytes, "write");
          const chunks = batch;
          batch = [];
          batchBytes = 0;
          await ingest!.write(chunks);
          f.wrote(ingest!.written);
        };
        try {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            opts.signal?.throwIfAborted();
            if (f.size !== undefined && f.received + chunk.byteLength > f.size) throw new UpstreamError("digest", opts.upstream, `sent more than the ${f.size} bytes announced for ${f.digest.value}`);
            f.receive(chunk);
            batch.push(chunk);
            batchBytes += chunk.byteLength;
            if (batchBytes >= (f.background ? BACKGROUND_WRITE_BATCH : WRITE_BATCH)) await flush();
          }
          await flush();
        } catch (err) {
          await res.body.cancel().catch(() => {});
          throw err;
        }
      }
      if (f.size !== undefined && f.written !== f.size) throw new UpstreamError("unreachable", opts.upstream, `the transfer of ${f.digest.value} broke off after ${f.written} of ${f.size} bytes`);
      const hex = await ingest.digest();
      if (hex !== f.digest.hex) throw new UpstreamError("digest", opts.upstream, `sent bytes hashing to ${f.digest.algorithm}:${hex} for ${f.digest.value}`);
      f.verified = true;
      f.notify();
      await ingest.commit(f.digest);
      f.size = f.written;
      this.log.debug("blob fetched", { repo: f.repo, digest: f.digest.value, bytes: f.written, upstream: opts.upstream });
    } catch (err) {
      // readers learn of the failure before the bytes go away
      f.state = "failed";
      f.error = err instanceof UpstreamError || err instanceof StorageError || opts.signal?.aborted ? err : brokenOff(err, f, opts.upstream);
      if (f.error instanceof UpstreamError && f.error.fault === "digest") {
        this.corrupt.set(opts.upstream, (this.corrupt.get(opts.upstream) ?? 0) + 1);
        this.log.warn("upstream sent a blob whose bytes do not match it; nothing was stored", {
          repo: f.repo,
          digest: f.digest.value,
          upstream: opts.upstream,
          receivedBytes: f.received,
          error: f.error.detail,
        });
      } else if (f.error instanceof UpstreamError && f.error.fault !== "not-found" && f.error.fault !== "down") {
        this.log.warn("an upstream blob transfer failed; nothing was stored", {
          repo: f.repo,
          digest: f.digest.value,
          upstream: opts.upstream,
          receivedBytes: f.received,
          error: f.error.detail,
        });
      } else if (f.error instanceof StorageError) {
        this.log.warn("a blob from an upstream was not stored", { repo: f.repo, digest: f.digest.value, upstream: opts.upstream, fault: f.error.fault, error: f.error.message });
      }
      await ingest?.cancel().catch(() => {});
      throw f.error;
    } finally {
      f.end();
    }
  }
}

/** An error of a body that broke off mid-stream. */
function brokenOff(err: unknown, f: BlobFetch, upstream: string): UpstreamError {
  const e = err as { code?: string; message?: string };
  return new UpstreamError("unreachable", upstream, `the transfer of ${f.digest.value} broke off (${e?.code ?? e?.message ?? "error"})`);
}
