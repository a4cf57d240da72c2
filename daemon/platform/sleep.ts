/**
 * The one abortable sleep: resolves after `ms`, or rejects with the signal's reason as soon
 * as it is aborted (at once when it already is). The timer and the listener are both
 * removed either way, so a long-lived signal collects no listeners.
 */

/** Waits `ms` milliseconds unless `signal` is aborted first. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
