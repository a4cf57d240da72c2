/**
 * Keeping the resident set within a budget under upload load. Request bodies arrive as many
 * short-lived buffers that the garbage collector reclaims lazily; on a small board that
 * laziness alone can double the resident set. A full collection stops the event loop for a
 * few milliseconds under load, so it is forced only when needed: every `checkInterval`
 * bytes of ingress the resident set is read (cheap), and a collection runs only if it is
 * above the soft limit.
 */

type Collect = () => void;

function runtimeCollector(): Collect | undefined {
  const bun = (globalThis as { Bun?: { gc?: (force: boolean) => void } }).Bun;
  if (bun?.gc) return () => bun.gc!(true);
  const gc = (globalThis as { gc?: () => void }).gc; // node --expose-gc
  return gc ? () => gc() : undefined;
}

/** Forced collections so far and the time they took. */
export interface CollectorStats {
  collections: number;
  totalMs: number;
}

/** Watches ingress and collects when the resident set is over budget. */
export interface IngressCollector {
  /** Call with the size of each chunk of request body received. */
  note(bytes: number): void;
  stats(): CollectorStats;
}

/** Options for {@link ingressCollector}. */
export interface CollectorOptions {
  /** Resident set above which a collection is forced; 0 disables the collector. */
  softLimitBytes: number;
  /** Ingress between two looks at the resident set. */
  checkInterval: number;
  /** Reads the resident set (injectable for tests). */
  rss?: () => number;
}

/** An {@link IngressCollector}; inert on a runtime that cannot collect on demand. */
export function ingressCollector(options: CollectorOptions, collect: Collect | undefined = runtimeCollector()): IngressCollector {
  const rss = options.rss ?? (() => process.memoryUsage.rss());
  const stats: CollectorStats = { collections: 0, totalMs: 0 };
  let since = 0;
  return {
    note(bytes) {
      if (!collect || options.softLimitBytes <= 0) return;
      since += bytes;
      if (since < options.checkInterval) return;
      since = 0;
      if (rss() <= options.softLimitBytes) return;
      const t = performance.now();
      collect();
      stats.collections++;
      stats.totalMs += performance.now() - t;
    },
    stats: () => ({ ...stats }),
  };
}
