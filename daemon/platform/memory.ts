/**
 * Keeping the resident set within a budget under load. Request bodies and responses leave
 * many short-lived buffers that the garbage collector reclaims lazily; on a small board that
 * laziness alone can double the resident set. A full collection stops the event loop for a
 * few milliseconds under load, so it is forced only when needed: the resident set is read
 * (cheap) after every `checkInterval` bytes of request bodies and once a second while
 * requests are arriving, and a collection runs only if it is above the soft limit. A
 * collection that could not bring the resident set under the limit (the allocator keeps
 * freed pages a while, or live data really is that large) is not repeated every second: the
 * next one waits until the set has grown by an eighth of the limit beyond what the last one
 * left. When traffic stops, one last look collects, and while the set stays above the limit
 * a few follow-up looks (SETTLE_MS, under a minute in all) collect again as the allocator
 * returns pages; about 20 s into the quiet, a set still above the limit also gives back what
 * is held on purpose (caches, the idle hashing thread: `trim`); then an idle registry runs no
 * timer at all.
 *
 * Nothing here may throw: it runs on a timer and inside requests. Reading the resident set
 * can fail (Bun reads /proc, which needs a descriptor: under EMFILE it threw "Failed to get
 * memory usage" from the timer and ended the process), so a failed read skips that look.
 */

type Collect = () => void;

/**
 * Request-body bytes between two looks at the resident set under traffic. 8 MiB rather than
 * 16: the body chunks of concurrent large pushes are garbage once written, and a look that
 * collects sooner leaves fewer of them resident (16 x 64 MiB pushes at concurrency 8: anonymous
 * peak ~58 -> ~55 MiB, for ~1.3x the collections of a few milliseconds each).
 */
export const CHECK_INTERVAL = 8 * 1024 * 1024;

/** Delays of the follow-up looks after traffic stops, while the resident set is above the limit. */
export const SETTLE_MS = [4000, 15000, 30000];

/**
 * The follow-up look (an index into the looks: 0 is the one when traffic stops) from which a
 * resident set still above the limit after a collection also trims: caches are dropped and
 * idle threads stopped (`trim`), then it collects again. The second follow-up, ~20 s after the
 * last request: late enough that a pause between bursts of traffic does not empty the caches,
 * early enough to be back under the limit within a minute of going idle.
 */
export const TRIM_AT = 2;

function runtimeCollector(): Collect | undefined {
  const bun = (globalThis as { Bun?: { gc?: (force: boolean) => void } }).Bun;
  if (bun?.gc) return () => bun.gc!(true);
  const gc = (globalThis as { gc?: () => void }).gc; // node --expose-gc
  return gc ? () => gc() : undefined;
}

/** Forces a full collection of the JS heap; false on a runtime that cannot collect on demand (never throws). */
export function collectGarbage(): boolean {
  const collect = runtimeCollector();
  if (!collect) return false;
  try {
    collect();
    return true;
  } catch {
    return false;
  }
}

/** Bytes of the JS heap in use (live objects and garbage not yet collected), or undefined when unknown (never throws). */
export function heapUsedBytes(): number | undefined {
  try {
    return process.memoryUsage().heapUsed;
  } catch {
    return undefined;
  }
}

/** The resident set in bytes, or undefined when it cannot be read right now (never throws). */
export function residentBytes(): number | undefined {
  try {
    return process.memoryUsage.rss();
  } catch {
    return undefined;
  }
}

/** Forced collections so far and the time they took. */
export interface CollectorStats {
  collections: number;
  totalMs: number;
  /** Times an idle registry above the limit dropped its caches ({@link GovernorOptions.trim}). */
  trims: number;
}

/** Watches traffic and collects when the resident set is over budget. */
export interface MemoryGovernor {
  /** Call with the size of each chunk of request body received. */
  ingress(bytes: number): void;
  /** Call once per request. */
  request(): void;
  stats(): CollectorStats;
  /** Stops the timer. */
  stop(): void;
}

/** Options for {@link memoryGovernor}. */
export interface GovernorOptions {
  /** Resident set above which a collection is forced; 0 disables the governor. */
  softLimitBytes: number;
  /** Request-body bytes between two looks at the resident set (default {@link CHECK_INTERVAL}). */
  checkInterval?: number;
  /** Milliseconds between looks while requests arrive. */
  tickMs?: number;
  /** Reads the resident set (injectable for tests); undefined or a throw skips that look. */
  rss?: () => number | undefined;
  /**
   * Gives back memory held on purpose (caches, idle threads) when an idle registry stays above
   * the limit after a collection: once per idle period, from the look {@link TRIM_AT}. Must not throw.
   */
  trim?: () => void;
}

/** A {@link MemoryGovernor}; inert on a runtime that cannot collect on demand. */
export function memoryGovernor(options: GovernorOptions, collect: Collect | undefined = runtimeCollector()): MemoryGovernor {
  const rss = options.rss ?? residentBytes;
  const stats: CollectorStats = { collections: 0, totalMs: 0, trims: 0 };
  const enabled = collect !== undefined && options.softLimitBytes > 0;
  let sinceCheck = 0;
  let requests = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  let settling: ReturnType<typeof setTimeout> | undefined;
  // what the last collection left when that was still above the limit (0: none)
  let floor = 0;
  const margin = options.softLimitBytes / 8;

  /** Collects when over the limit (and, under traffic, grown since a vain collection); true if still over. */
  const check = (idle: boolean): boolean => {
    try {
      const now = rss();
      if (now === undefined) return false;
      if (now <= options.softLimitBytes) {
        floor = 0;
        return false;
      }
      if (!idle && floor > 0 && now < floor + margin) return true;
      const t = performance.now();
      collect!();
      stats.collections++;
      stats.totalMs += performance.now() - t;
      const after = rss();
      floor = after !== undefined && after > options.softLimitBytes ? after : 0;
      return floor > 0;
    } catch {
      // a look that fails is skipped; the next one tries again
      return false;
    }
  };
  const settle = (step: number) => {
    settling = undefined;
    let over = check(true);
    if (over && step === TRIM_AT && options.trim) {
      try {
        options.trim();
        stats.trims++;
      } catch {
        // a trim that fails leaves the caches as they were; the collection still runs
      }
      over = check(true);
    }
    if (!over || step >= SETTLE_MS.length) return;
    settling = setTimeout(() => settle(step + 1), SETTLE_MS[step]);
    settling.unref?.();
  };
  const tick = () => {
    if (requests === 0) {
      clearInterval(timer);
      timer = undefined;
      settle(0);
      return;
    }
    requests = 0;
    check(false);
  };
  return {
    ingress(bytes) {
      if (!enabled) return;
      sinceCheck += bytes;
      if (sinceCheck < (options.checkInterval ?? CHECK_INTERVAL)) return;
      sinceCheck = 0;
      check(false);
    },
    request() {
      if (!enabled) return;
      requests++;
      if (settling) {
        clearTimeout(settling);
        settling = undefined;
      }
      if (!timer) {
        timer = setInterval(tick, options.tickMs ?? 1000);
        timer.unref?.();
      }
    },
    stats: () => ({ ...stats }),
    stop() {
      clearInterval(timer);
      clearTimeout(settling);
      timer = undefined;
      settling = undefined;
    },
  };
}
