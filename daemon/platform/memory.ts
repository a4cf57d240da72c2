/**
 * Keeping the resident set small under upload load. Request bodies arrive as many short-lived
 * buffers that the garbage collector reclaims lazily; on a small board that laziness alone
 * can double the resident set. A full collection costs well under a millisecond on berth's
 * heap, so forcing one after every `interval` bytes of ingress keeps the peak close to the
 * working set for a negligible share of CPU.
 */

type Collect = () => void;

function runtimeCollector(): Collect | undefined {
  const bun = (globalThis as { Bun?: { gc?: (force: boolean) => void } }).Bun;
  if (bun?.gc) return () => bun.gc!(true);
  const gc = (globalThis as { gc?: () => void }).gc; // node --expose-gc
  return gc ? () => gc() : undefined;
}

/**
 * Returns a function to call with the size of each chunk of request body received; it
 * forces a collection whenever `interval` bytes have arrived since the last one. With
 * `interval` 0 (or a runtime that cannot collect on demand) it does nothing.
 */
export function ingressCollector(interval: number): (bytes: number) => void {
  const collect = runtimeCollector();
  if (!collect || interval <= 0) return () => {};
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since < interval) return;
    since = 0;
    collect();
  };
}
