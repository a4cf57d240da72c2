/**
 * The one reader for bodies read whole into memory (manifests pushed or fetched, search
 * queries, forms, PEM texts): the bytes are counted as they stream, so a body without a
 * Content-Length (chunked) is held to the cap too, and reading stops at the first byte past
 * it. Optional: a deadline for the whole body (a client trickling bytes cannot hold memory
 * for ever), an abort signal, and a hook told of every chunk before it is kept (a byte
 * budget reserves as the body grows; a scanner refuses JSON nested too deep). Web streams
 * only, so the Node.js build shares it. Callers turn the errors below into their own.
 */

/** Options of {@link readCapped}. */
export interface CapOptions {
  /** Largest body accepted; one byte more is {@link BodyTooLarge}. */
  maxBytes: number;
  /** Milliseconds the whole body may take; 0 or absent = no deadline ({@link BodyTimedOut}). */
  timeoutMs?: number;
  /** Stops the read: the signal's reason is thrown. */
  signal?: AbortSignal;
  /**
   * Told of each chunk (and the bytes so far, this chunk included) before it is kept; what
   * it throws ends the read and is thrown as is.
   */
  onChunk?: (chunk: Uint8Array, total: number) => void;
}

/** The body had more than `maxBytes` bytes; `total` is what was counted when reading stopped. */
export class BodyTooLarge extends Error {
  constructor(readonly total: number, readonly maxBytes: number) {
    super(`the body has ${total} bytes or more; at most ${maxBytes} are accepted`);
  }
}

/** The body did not arrive whole within `timeoutMs`. */
export class BodyTimedOut extends Error {
  constructor(readonly timeoutMs: number) {
    super(`the body did not arrive within ${timeoutMs} ms`);
  }
}

/**
 * Reads `body` whole (null is empty) with the limits of `options`. Throws
 * {@link BodyTooLarge}, {@link BodyTimedOut}, the signal's reason, what `onChunk` threw, or
 * the stream's own error when it broke off; in every case the stream is cancelled.
 */
export async function readCapped(body: ReadableStream<Uint8Array> | null | undefined, options: CapOptions): Promise<Uint8Array> {
  const { maxBytes, timeoutMs = 0, signal, onChunk } = options;
  signal?.throwIfAborted();
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  let stopped: { reason: unknown } | undefined;
  const stop = (reason: unknown) => {
    stopped ??= { reason };
    reader.cancel(reason).catch(() => {});
  };
  const timer = timeoutMs > 0 ? setTimeout(() => stop(new BodyTimedOut(timeoutMs)), timeoutMs) : undefined;
  const onAbort = () => stop(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (stopped) throw stopped.reason;
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) throw new BodyTooLarge(total, maxBytes);
      onChunk?.(value, total);
      chunks.push(value);
    }
  } catch (err) {
    await reader.cancel().catch(() => {});
    throw stopped ? stopped.reason : err;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
  return concat(chunks, total);
}

/** `chunks` as one array of `total` bytes (the chunk itself when there is one). */
function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
