/**
 * A request body that streams `total` bytes without a Content-Length (as a chunked upload
 * does) and counts what was pulled from it, to prove a handler stops reading at its cap.
 */

/** An endless-looking body and the count of bytes pulled from it so far. */
export function endlessBody(total: number, fill = 65): { body: ReadableStream<Uint8Array>; pulled: () => number } {
  let sent = 0;
  const chunk = new Uint8Array(64 * 1024).fill(fill);
  return {
    body: new ReadableStream({
      pull(c) {
        if (sent >= total) return c.close();
        sent += chunk.length;
        c.enqueue(chunk);
      },
    }),
    pulled: () => sent,
  };
}
