/**
 * The bytes of one upload (a client's upload session, a sync fetch, a bundle import) on their
 * way into S3, held in memory only as much as S3's multipart rules need: every `partSize`
 * bytes become a part of a multipart upload under a temporary key, sent while the client is
 * still sending (at most `concurrency` parts of one upload in flight; a write waits for room,
 * so the request body is read no faster than S3 takes it). What is left between two requests
 * of a session (less than one part) stays in memory as the tail, because S3 accepts a part
 * under 5 MiB only as the last one. Every buffer is taken from the process's {@link ByteBudget}.
 * A tail is parked in the budget between requests: when other uploads need the memory, it
 * is spilled to an object `<key>.tail` in the bucket and read back by the session's next
 * request (or its completion), so idle sessions hold no memory others are waiting for.
 *
 * A spool is written through {@link AppendFile} handles, the write step every ingest shares
 * (storage/ingest.ts), so admission, hashing and accounting are the local backend's: opening
 * a handle marks where the request starts, `truncate` to that mark undoes the request (parts
 * it sent are forgotten and sent again under the same numbers later), `settle` waits for the
 * request's parts, and `close` keeps the remainder as the tail. A blob smaller than one part
 * never starts a multipart upload: it is one PUT from memory when published.
 */
import type { AppendFile } from "../../platform/disk";
import type { S3Client } from "./client";
import type { ByteBudget } from "./budget";
import { StorageError } from "../errors";

/** How a spool cuts and sends parts. */
export interface SpoolOptions {
  /** Bytes per part, 5 MiB or more. */
  partSize: number;
  /** Parts of one spool in flight at once. */
  concurrency: number;
  budget: ByteBudget;
}

/** A part the multipart upload holds. */
interface SentPart {
  partNumber: number;
  etag: string;
  size: number;
}

/** Where a request started: what {@link PartSpool.rollback} returns to. */
interface Mark {
  size: number;
  nextPart: number;
}

/** Thrown by {@link PartSpool.readMemory} for bytes that went up in a part: read them once the blob is stored. */
export class NotInMemory extends Error {
  override name = "NotInMemory";
}

/** S3's most parts in one multipart upload. */
const MAX_PARTS = 10_000;

/** Smallest buffer taken for a blob that may stay below one part. */
const MIN_BUFFER = 64 * 1024;

/** One upload's bytes: sent parts, the part being filled, and the tail kept between requests. */
export class PartSpool {
  /** Bytes written so far. */
  size = 0;
  private uploadId: string | undefined;
  private parts: SentPart[] = [];
  private nextPart = 1;
  /** The bytes after the last sent part, as of the last closed handle (leased: tail.byteLength). */
  private tail: Uint8Array = new Uint8Array(0);
  /** The part being filled (leased: buffer.byteLength); starts with a copy of the tail. */
  private buffer: Uint8Array | undefined;
  private filled = 0;
  /** The tail was copied into a buffer in this request (so it is in a part or in the buffer now). */
  private tailUsed = false;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown;
  private mark: Mark | undefined;
  private completed = false;
  private dropped = false;
  private readonly abort = new AbortController();
  /** Bytes of the tail spilled to {@link tailKey} (the in-memory tail is then empty). */
  private spilled = 0;
  /** A spill or read-back running. */
  private moving: Promise<void> | undefined;

  constructor(
    private readonly s3: S3Client,
    /** The temporary key the multipart upload is made under. */
    readonly key: string,
    private readonly options: SpoolOptions,
  ) {}

  /** True when every byte is in memory (no part sent): the blob is one PUT. */
  get small(): boolean {
    return this.uploadId === undefined;
  }

  /** Opens a handle for one request; its start is the mark a `truncate` returns to. */
  handle(): AppendFile & { settle(): Promise<void> } {
    if (this.dropped) throw new Error(`the upload to "${this.key}" was dropped`);
    this.options.budget.unpark(this);
    this.mark = { size: this.size, nextPart: this.nextPart };
    return {
      write: (chunks) => this.write(chunks),
      truncate: (size) => this.rollback(size),
      sync: () => this.settle(),
      settle: () => this.settle(),
      close: async () => this.keepTail(),
    };
  }

  /** Appends `chunks` (copied; the caller keeps them), sending each full part. */
  private async write(chunks: Uint8Array[]): Promise<void> {
    if (this.dropped || this.completed) throw new Error(`the upload to "${this.key}" is closed`);
    if (this.failure) throw this.failure;
    await this.restore();
    let left = 0;
    for (const c of chunks) left += c.byteLength;
    for (const chunk of chunks) {
      let at = 0;
      while (at < chunk.byteLength) {
        if (!this.buffer || this.filled === this.buffer.byteLength) await this.room(left);
        const buffer = this.buffer!;
        const take = Math.min(buffer.byteLength - this.filled, chunk.byteLength - at);
        buffer.set(chunk.subarray(at, at + take), this.filled);
        this.filled += take;
        this.size += take;
        at += take;
        left -= take;
        if (this.filled === this.options.partSize) await this.send();
      }
    }
  }

  /** Makes room for `more` bytes: a buffer (leased) started from the tail, or a larger one. */
  private async room(more: number): Promise<void> {
    const { partSize } = this.options;
    const held = this.buffer ? this.buffer.byteLength : 0;
    const base = this.buffer ? this.filled : this.tailUsed ? 0 : this.tail.byteLength;
    const need = base + more;
    let size = partSize;
    if (need < partSize) {
      size = MIN_BUFFER;
      while (size < need) size *= 2;
      size = Math.min(size, partSize);
    }
    await this.lease(size - held);
    if (this.dropped) {
      // dropped while waiting for room (an ingest cancelled mid-write): nothing may stay leased
      this.options.budget.release(size - held);
      throw new Error(`the upload to "${this.key}" was dropped`);
    }
    const next = this.options.budget.buffer(size);
    if (this.buffer) next.set(this.buffer.subarray(0, this.filled));
    else if (!this.tailUsed) next.set(this.tail);
    if (this.buffer) this.options.budget.recycle(this.buffer);
    this.tailUsed = true;
    this.filled = base;
    this.buffer = next;
  }

  /** Takes `bytes` from the budget; while parts of ours are in flight, waits for one of them rather than for others. */
  private async lease(bytes: number): Promise<void> {
    const budget = this.options.budget;
    while (this.inFlight.size > 0) {
      if (budget.tryAcquire(bytes)) return;
      await Promise.race(this.inFlight);
    }
    await budget.acquire(bytes);
  }

  /** Sends the full buffer as the next part (waiting while `concurrency` are in flight). */
  private async send(): Promise<void> {
    const buffer = this.buffer!;
    const bytes = buffer.subarray(0, this.filled);
    const leased = buffer.byteLength;
    this.buffer = undefined;
    this.filled = 0;
    try {
      if (this.dropped) throw new Error(`the upload to "${this.key}" was dropped`);
      if (this.nextPart > MAX_PARTS) throw new StorageError("too-large", `the blob is larger than ${MAX_PARTS * this.options.partSize} bytes, the most ${MAX_PARTS} parts of ${this.options.partSize} bytes hold`);
      this.uploadId ??= await this.s3.createMultipart(this.key);
      while (this.inFlight.size >= this.options.concurrency) await Promise.race(this.inFlight);
      if (this.failure) throw this.failure;
    } catch (err) {
      this.options.budget.release(leased);
      this.options.budget.recycle(buffer);
      throw err;
    }
    const partNumber = this.nextPart++;
    const p: Promise<void> = this.s3
      .uploadPart(this.key, this.uploadId, partNumber, bytes, this.abort.signal)
      .then((etag) => void this.parts.push({ partNumber, etag, size: bytes.byteLength }))
      .catch((err: unknown) => void (this.failure ??= err))
      .finally(() => {
        this.inFlight.delete(p);
        this.options.budget.release(leased);
        this.options.budget.recycle(buffer);
      });
    this.inFlight.add(p);
  }

  /** Waits for the parts in flight; throws the first that failed. */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    if (this.failure) throw this.failure;
  }

  /** Undoes the request since the mark (`size` must be the mark's): its parts are forgotten, the tail is the mark's. */
  private async rollback(size: number): Promise<void> {
    const mark = this.mark;
    if (!mark || mark.size !== size) throw new Error(`the upload to "${this.key}" can go back to ${mark?.size ?? "no mark"} only, not ${size}`);
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    this.failure = undefined;
    this.parts = this.parts.filter((p) => p.partNumber < mark.nextPart);
    this.nextPart = mark.nextPart;
    this.tailUsed = false;
    this.dropBuffer();
    this.size = mark.size;
  }

  /** The object a tail is spilled to. */
  get tailKey(): string {
    return `${this.key}.tail`;
  }

  /** Puts the idle tail into the bucket and gives its memory back (the budget asks; see budget.ts). */
  private spill(): void {
    if (this.moving || this.dropped || this.completed || this.mark || this.tail.byteLength === 0) return;
    const tail = this.tail;
    this.moving = this.s3
      .put(this.tailKey, tail)
      .then(
        () => {
          this.options.budget.unpark(this); // parked again by an empty request meanwhile: nothing left to spill
          this.tail = new Uint8Array(0);
          this.spilled = tail.byteLength;
          this.options.budget.release(tail.byteLength);
        },
        () => {
          // the bucket refused: the tail stays in memory (and parked, for the next shortage)
          if (!this.mark && !this.dropped) this.options.budget.park(this, tail.byteLength, () => this.spill());
        },
      )
      .finally(() => (this.moving = undefined));
  }

  /** Brings a spilled tail back into memory (leased again); waits for a spill running. */
  async restore(): Promise<void> {
    while (this.moving) await this.moving;
    if (this.spilled === 0 || this.dropped) return;
    const bytes = this.spilled;
    this.moving = (async () => {
      await this.options.budget.acquire(bytes);
      try {
        const got = new Uint8Array(await new Response((await this.s3.get(this.tailKey, { signal: this.abort.signal })).body).arrayBuffer());
        if (got.byteLength !== bytes) throw new Error(`the spilled tail of the upload to "${this.key}" has ${got.byteLength} bytes, not ${bytes}`);
        this.tail = got;
        this.spilled = 0;
      } catch (err) {
        this.options.budget.release(bytes);
        throw err;
      }
      await this.s3.delete(this.tailKey).catch(() => {}); // else swept at start with other leftovers under uploads/
    })().finally(() => (this.moving = undefined));
    await this.moving;
  }

  /** Ends a request: what was not sent becomes the tail (the buffer shrunk to it), parked in the budget. */
  private keepTail(): void {
    this.mark = undefined;
    const used = this.tailUsed;
    this.tailUsed = false;
    const buffer = this.buffer;
    if (!used) return this.park();
    const budget = this.options.budget;
    budget.release(this.tail.byteLength);
    this.tail = new Uint8Array(0);
    if (!buffer) return;
    this.buffer = undefined;
    this.tail = this.filled === buffer.byteLength ? buffer : buffer.slice(0, this.filled);
    budget.release(buffer.byteLength - this.filled);
    if (this.tail !== buffer) budget.recycle(buffer);
    this.filled = 0;
    this.park();
  }

  private park(): void {
    if (!this.dropped && !this.completed && this.tail.byteLength > 0) this.options.budget.park(this, this.tail.byteLength, () => this.spill());
  }

  private dropBuffer(): void {
    if (this.buffer) {
      this.options.budget.release(this.buffer.byteLength);
      this.options.budget.recycle(this.buffer);
    }
    this.buffer = undefined;
    this.filled = 0;
  }

  /**
   * Bytes [offset, offset + length) when they are still in memory (shorter at the end);
   * throws {@link NotInMemory} when some went up in a part already.
   */
  readMemory(offset: number, length: number): Uint8Array {
    if (this.spilled > 0) throw new Error(`the tail of the upload to "${this.key}" is spilled; restore() it first`);
    const held = this.buffer ? this.buffer.subarray(0, this.filled) : this.tailUsed ? new Uint8Array(0) : this.tail;
    const start = this.size - held.byteLength;
    if (offset < start) throw new NotInMemory(`bytes from ${offset} of the upload to "${this.key}" are in the bucket's parts`);
    const end = Math.min(offset + length, this.size);
    return end <= offset ? new Uint8Array(0) : held.slice(offset - start, end - start);
  }

  /** The whole blob, when it is {@link small} (after the last handle closed). */
  bytes(): Uint8Array {
    if (!this.small) throw new Error(`the upload to "${this.key}" is in parts`);
    if (this.spilled > 0) throw new Error(`the tail of the upload to "${this.key}" is spilled; restore() it first`);
    return this.tail;
  }

  /**
   * Completes the multipart upload under {@link key} (the tail as its last part); once only.
   * RGW answers an empty ETag for it, which nothing here needs.
   */
  async complete(): Promise<void> {
    if (this.completed) return;
    if (this.small || this.dropped) throw new Error(`the upload to "${this.key}" has no parts to complete`);
    await this.settle();
    this.options.budget.unpark(this);
    await this.restore();
    if (this.tail.byteLength > 0) {
      const etag = await this.s3.uploadPart(this.key, this.uploadId!, this.nextPart, this.tail, this.abort.signal);
      this.parts.push({ partNumber: this.nextPart++, etag, size: this.tail.byteLength });
    }
    const parts = [...this.parts].sort((a, b) => a.partNumber - b.partNumber);
    await this.s3.completeMultipart(this.key, this.uploadId!, parts);
    this.completed = true;
    this.options.budget.release(this.tail.byteLength);
    this.tail = new Uint8Array(0);
  }

  /**
   * Lets go of everything: parts in flight are stopped, an uncompleted multipart upload is
   * aborted (a completed one's temporary object removed), and the memory given back. Safe to
   * call twice. A failed abort is left to the start-up sweep of old uploads (backend.ts).
   */
  async drop(): Promise<void> {
    if (this.dropped) return;
    this.dropped = true;
    this.options.budget.unpark(this);
    this.abort.abort(new Error(`the upload to "${this.key}" was dropped`));
    await Promise.allSettled([...this.inFlight]);
    while (this.moving) await this.moving.catch(() => {});
    if (this.spilled > 0) await this.s3.delete(this.tailKey).catch(() => {});
    this.spilled = 0;
    this.dropBuffer();
    this.options.budget.release(this.tail.byteLength);
    this.tail = new Uint8Array(0);
    if (this.completed) await this.s3.delete(this.key).catch(() => {});
    else if (this.uploadId) await this.s3.abortMultipart(this.key, this.uploadId).catch(() => {});
  }
}
