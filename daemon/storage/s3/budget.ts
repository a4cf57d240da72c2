/**
 * One byte budget for the part buffers of every S3 upload in the process (`[storage.s3]
 * upload_memory`). A buffer is taken from it before it is allocated and given back once its
 * part is sent or dropped, so thousands of upload sessions hold at most the budget in part
 * buffers between them. A request that finds the budget spent waits, in arrival order, for at
 * most `waitMs`; after that it is refused with StorageError "too-many-uploads", which the
 * registry answers 429 TOOMANYREQUESTS with Retry-After (the answer clients already retry
 * on when the session cap is reached): waiting a little covers the common case (parts of
 * other pushes finish within a second or two), and refusing after a bound keeps a stuck
 * bucket from piling up requests that each hold a connection.
 *
 * Bytes held between requests (an upload session's tail, spool.ts) are parked here with a
 * way to give them back: a request that finds the budget spent asks the oldest parked holders
 * to spill their bytes to the bucket first, so idle sessions cannot keep the budget from
 * the uploads that are sending (a client opening sessions and leaving each with a tail
 * under one part held all of it until the sessions expired, renewable at will).
 *
 * Part-sized buffers given back are kept for reuse (a long push then reuses a few buffers
 * instead of leaving one per part for the collector), never more than the budget leaves free:
 * lent and kept buffers together stay within `limit`.
 */
import { StorageError } from "../errors";

/** Default of {@link ByteBudget}'s wait for room, in milliseconds. */
export const BUDGET_WAIT_MS = 10_000;

interface Waiter {
  bytes: number;
  resolve: () => void;
  timer: ReturnType<typeof setTimeout>;
}

/** A shared count of bytes lent out, bounded by `limit`. */
export class ByteBudget {
  private used = 0;
  private peakUsed = 0;
  private readonly queue: Waiter[] = [];
  private readonly spare: Uint8Array[] = [];
  /** Holders of bytes between requests that can give them back, oldest first. */
  private readonly parked = new Map<object, { bytes: number; spill: () => void }>();

  constructor(
    /** Bytes that may be lent out at once. */
    readonly limit: number,
    /** How long {@link acquire} waits for room before refusing. */
    readonly waitMs = BUDGET_WAIT_MS,
    /** The size of the buffers kept for reuse (the part size). */
    readonly reuseSize = 0,
  ) {
    if (!Number.isSafeInteger(limit) || limit <= 0) throw new RangeError(`Upload memory budget "${limit}" must be a positive whole number of bytes`);
  }

  /** Bytes lent out now. */
  get inUse(): number {
    return this.used;
  }

  /** The most bytes lent out at once since start (for tests and benchmarks). */
  get peak(): number {
    return this.peakUsed;
  }

  /** Takes `bytes` if they are free now and nobody waits before us; false otherwise. */
  tryAcquire(bytes: number): boolean {
    if (bytes > this.limit) throw new RangeError(`A buffer of ${bytes} bytes is larger than the upload memory budget of ${this.limit} bytes`);
    if (this.queue.length > 0 || this.used + bytes > this.limit) return false;
    this.take(bytes);
    return true;
  }

  /**
   * Marks `bytes` of `holder` as idle: when the budget runs short, `spill` is called (once;
   * it must release the bytes when it has put them elsewhere). {@link unpark} takes it back.
   */
  park(holder: object, bytes: number, spill: () => void): void {
    if (bytes > 0) this.parked.set(holder, { bytes, spill });
  }

  /** `holder`'s bytes are in use again (a new request of its session). */
  unpark(holder: object): void {
    this.parked.delete(holder);
  }

  /** Takes `bytes`, waiting up to `waitMs` for room; throws too-many-uploads after that. */
  async acquire(bytes: number): Promise<void> {
    if (this.tryAcquire(bytes)) return;
    // idle holders go first, oldest first, as far as the waiters (this one included) lack room
    let short = this.used + bytes - this.limit;
    for (const w of this.queue) short += w.bytes;
    for (const [holder, p] of this.parked) {
      if (short <= 0) break;
      this.parked.delete(holder);
      short -= p.bytes;
      p.spill();
    }
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        resolve,
        timer: setTimeout(() => {
          this.queue.splice(this.queue.indexOf(waiter), 1);
          this.wake();
          reject(new StorageError("too-many-uploads", `the upload memory budget of ${this.limit} bytes is in use by other uploads; retry later`));
        }, this.waitMs),
      };
      this.queue.push(waiter);
    });
  }

  /** A buffer of `size` bytes for bytes already acquired: a kept one when `size` is the reuse size. */
  buffer(size: number): Uint8Array {
    return (size === this.reuseSize && this.spare.pop()) || new Uint8Array(size);
  }

  /** Keeps `buffer` (no longer used by its holder, its bytes released) for reuse if it fits. */
  recycle(buffer: Uint8Array): void {
    if (buffer.byteLength !== this.reuseSize || this.used + (this.spare.length + 1) * this.reuseSize > this.limit) return;
    this.spare.push(buffer);
  }

  /** Gives back `bytes` (never more than were taken) and lets waiters in. */
  release(bytes: number): void {
    if (bytes <= 0) return;
    this.used = Math.max(0, this.used - bytes);
    this.wake();
  }

  private take(bytes: number): void {
    this.used += bytes;
    // kept buffers make room for lent ones: together they stay within the limit
    while (this.spare.length > 0 && this.used + this.spare.length * this.reuseSize > this.limit) this.spare.pop();
    if (this.used > this.peakUsed) this.peakUsed = this.used;
  }

  /** Serves waiters in order while the first fits. */
  private wake(): void {
    while (this.queue.length > 0 && this.used + this.queue[0]!.bytes <= this.limit) {
      const w = this.queue.shift()!;
      clearTimeout(w.timer);
      this.take(w.bytes);
      w.resolve();
    }
  }
}
