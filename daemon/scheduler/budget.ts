/**
 * The IO budget: token buckets in bytes per second and operations per second, one pair for
 * reads and one for writes. Background IO waits for tokens; foreground IO (clients) never
 * waits but takes tokens too, driving a bucket into debt, so background work backs off
 * while clients are busy and resumes as the debt is paid back at the configured rate.
 *
 * A rate of 0 means "no limit" for that dimension (IO is still counted). Debt is capped at
 * one second of budget (`debtSeconds`), so a burst of client traffic delays background work
 * by at most that long after it ends.
 */
import type { BackgroundIo, IoKind } from "./io";
import { abortableSleep } from "../platform/sleep";

export type { IoKind } from "./io";

/** Rates of the budget; 0 = unlimited. */
export interface BudgetRates {
  readBytesPerSecond: number;
  writeBytesPerSecond: number;
  readOpsPerSecond: number;
  writeOpsPerSecond: number;
}

/** A token bucket that may go into bounded debt. */
export class TokenBucket {
  private level: number;
  private last: number;

  /** `rate` tokens per second, at most `burst` banked, at most `debt` owed (0 rate = unlimited). */
  constructor(
    readonly rate: number,
    private readonly burst: number = rate,
    private readonly debt: number = rate,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    this.level = burst;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    this.level = Math.min(this.burst, this.level + ((t - this.last) / 1000) * this.rate);
    this.last = t;
  }

  /** Takes `n` tokens now, never waiting (foreground); the level may go into debt. */
  charge(n: number): void {
    if (this.rate <= 0) return;
    this.refill();
    this.level = Math.max(-this.debt, this.level - n);
  }

  /** Milliseconds until the level is non-negative (0 when tokens are available now). */
  waitMs(): number {
    if (this.rate <= 0) return 0;
    this.refill();
    return this.level >= 0 ? 0 : Math.ceil((-this.level / this.rate) * 1000);
  }

  /** Tokens available now (negative when in debt); Infinity when unlimited. */
  available(): number {
    if (this.rate <= 0) return Number.POSITIVE_INFINITY;
    this.refill();
    return this.level;
  }
}


interface Counters {
  bytes: number;
  ops: number;
}

/** The budget shared by foreground and background IO. */
export class IoBudget implements BackgroundIo {
  private readonly buckets: Record<IoKind, { bytes: TokenBucket; ops: TokenBucket }>;
  private readonly totals = {
    foreground: { read: { bytes: 0, ops: 0 }, write: { bytes: 0, ops: 0 } } as Record<IoKind, Counters>,
    background: { read: { bytes: 0, ops: 0 }, write: { bytes: 0, ops: 0 } } as Record<IoKind, Counters>,
  };
  private waitedMs = 0;

  constructor(readonly rates: BudgetRates, now?: () => number) {
    const bucket = (rate: number) => new TokenBucket(rate, rate, rate, now);
    this.buckets = {
      read: { bytes: bucket(rates.readBytesPerSecond), ops: bucket(rates.readOpsPerSecond) },
      write: { bytes: bucket(rates.writeBytesPerSecond), ops: bucket(rates.writeOpsPerSecond) },
    };
  }

  /**
   * Counts client IO against the budget; never waits. Cheap enough for every chunk of a
   * request (a few arithmetic operations).
   */
  foreground(bytes: number, kind: IoKind, ops = 1): void {
    const t = this.totals.foreground[kind];
    t.bytes += bytes;
    t.ops += ops;
    this.buckets[kind].bytes.charge(bytes);
    this.buckets[kind].ops.charge(ops);
  }

  /** Waits until the budget allows background IO of `bytes` bytes and `ops` operations, then takes them. */
  async take(kind: IoKind, bytes: number, ops = 1, signal?: AbortSignal): Promise<void> {
    const b = this.buckets[kind];
    for (let i = 0; i < 10_000; i++) {
      const wait = Math.max(b.bytes.waitMs(), b.ops.waitMs());
      if (wait === 0) break;
      this.waitedMs += wait;
      await abortableSleep(Math.min(wait, 1000), signal);
    }
    signal?.throwIfAborted();
    b.bytes.charge(bytes);
    b.ops.charge(ops);
    const t = this.totals.background[kind];
    t.bytes += bytes;
    t.ops += ops;
  }

  read(bytes: number, signal?: AbortSignal): Promise<void> {
    return this.take("read", bytes, 1, signal);
  }

  write(bytes: number, signal?: AbortSignal): Promise<void> {
    return this.take("write", bytes, 1, signal);
  }

  /** Rates, bucket levels and totals, for the admin API and logs. */
  state() {
    const level = (k: IoKind) => ({ bytes: finite(this.buckets[k].bytes.available()), ops: finite(this.buckets[k].ops.available()) });
    return {
      rates: this.rates,
      available: { read: level("read"), write: level("write") },
      foreground: structuredClone(this.totals.foreground),
      background: structuredClone(this.totals.background),
      backgroundWaitedMs: this.waitedMs,
    };
  }
}

function finite(n: number): number | null {
  return Number.isFinite(n) ? Math.round(n) : null;
}

/**
 * Wraps a stream so that every chunk waits for background budget of `kind` before it is
 * passed on: a budgeted reader (wrap what is read) or writer (wrap what will be written).
 */
export function budgetedStream(
  source: ReadableStream<Uint8Array>,
  io: BackgroundIo,
  kind: IoKind,
  signal?: AbortSignal,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) return controller.close();
      await io.take(kind, value.byteLength, 1, signal);
      controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** Budget rates of the IO profiles (`[scheduler] io_profile`); explicit keys override them. */
export const IO_PROFILES: Record<string, BudgetRates> = {
  none: { readBytesPerSecond: 0, writeBytesPerSecond: 0, readOpsPerSecond: 0, writeOpsPerSecond: 0 },
  sdcard: { readBytesPerSecond: 8 << 20, writeBytesPerSecond: 4 << 20, readOpsPerSecond: 400, writeOpsPerSecond: 100 },
  emmc: { readBytesPerSecond: 32 << 20, writeBytesPerSecond: 16 << 20, readOpsPerSecond: 1500, writeOpsPerSecond: 500 },
  ssd: { readBytesPerSecond: 128 << 20, writeBytesPerSecond: 64 << 20, readOpsPerSecond: 10_000, writeOpsPerSecond: 5_000 },
};
