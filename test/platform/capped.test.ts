/** The one capped body reader (platform/capped.ts): cap, deadline, abort, chunk hook, broken streams. */
import { expect, test } from "bun:test";
import { BodyTimedOut, BodyTooLarge, readCapped } from "../../daemon/platform/capped";

/** A stream of `chunks`, then (when `hang`) one that never ends; `cancelled` tells whether it was cancelled. */
function source(chunks: string[], hang = false) {
  const state = { cancelled: false };
  let i = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) return controller.enqueue(new TextEncoder().encode(chunks[i++]));
      if (!hang) return controller.close();
      return new Promise<void>(() => {});
    },
    cancel() {
      state.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { stream, state };
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

test("a body within the cap is read whole; exactly the cap is accepted; null is empty", async () => {
  expect(text(await readCapped(source(["ab", "cd", "e"]).stream, { maxBytes: 5 }))).toBe("abcde");
  expect(text(await readCapped(source(["abcde"]).stream, { maxBytes: 5 }))).toBe("abcde");
  expect((await readCapped(null, { maxBytes: 5 })).byteLength).toBe(0);
});

test("one byte past the cap stops the read and cancels the stream, even mid-way through an endless body", async () => {
  const s = source(["abc", "def", "ghi"], true);
  const err = await readCapped(s.stream, { maxBytes: 5 }).catch((e) => e);
  expect(err).toBeInstanceOf(BodyTooLarge);
  expect(err).toMatchObject({ total: 6, maxBytes: 5 });
  expect(s.state.cancelled).toBe(true);
});

test("a body that does not arrive within the deadline fails with BodyTimedOut and is cancelled", async () => {
  const s = source(["abc"], true);
  const err = await readCapped(s.stream, { maxBytes: 100, timeoutMs: 20 }).catch((e) => e);
  expect(err).toBeInstanceOf(BodyTimedOut);
  expect(s.state.cancelled).toBe(true);
});

test("aborting the signal ends the read with its reason; an already aborted signal reads nothing", async () => {
  const s = source(["abc"], true);
  const ac = new AbortController();
  const reading = readCapped(s.stream, { maxBytes: 100, signal: ac.signal });
  const reason = new Error("shutting down");
  ac.abort(reason);
  expect(await reading.catch((e) => e)).toBe(reason);
  expect(s.state.cancelled).toBe(true);
  const fresh = source(["abc"]);
  expect(await readCapped(fresh.stream, { maxBytes: 100, signal: AbortSignal.abort(reason) }).catch((e) => e)).toBe(reason);
});

test("the chunk hook sees every chunk with the running total, and what it throws ends the read as is", async () => {
  const seen: [string, number][] = [];
  await readCapped(source(["ab", "cde"]).stream, { maxBytes: 10, onChunk: (c, total) => seen.push([text(c), total]) });
  expect(seen).toEqual([["ab", 2], ["cde", 5]]);
  const refusal = new Error("budget spent");
  const s = source(["ab", "cd", "ef"], true);
  const err = await readCapped(s.stream, { maxBytes: 100, onChunk: (_, total) => { if (total > 3) throw refusal; } }).catch((e) => e);
  expect(err).toBe(refusal);
  expect(s.state.cancelled).toBe(true);
});

test("a stream that breaks off throws its own error", async () => {
  const broken = new Error("connection reset");
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array([1, 2]));
      controller.error(broken);
    },
  });
  expect(await readCapped(stream, { maxBytes: 100 }).catch((e) => e)).toBe(broken);
});
