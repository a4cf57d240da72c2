/**
 * The shared blob fetch on its own, against a scripted upstream body: readers are relayed
 * the bytes from memory while they are recent and read the file once they fall behind, so
 * every reader gets the exact blob whatever its pace or when it joined, the memory held
 * stays bounded, and a fetch that fails leaves nothing behind and never ends a reader as if
 * the blob were complete. Run with the hashing thread and with inline hashing.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createLogger, silentLogger } from "../../daemon/log";
import { type Disk, realDisk } from "../../daemon/platform/disk";
import { type Digest, requireDigest } from "../../daemon/oci/digest";
import { type UploadHashing, inlineHashing, workerHashing } from "../../daemon/platform/uploadhash";
import { IoBudget } from "../../daemon/scheduler/budget";
import { BlobFetches, RELAY_WINDOW, WRITE_BATCH } from "../../daemon/sync/blobfetch";
import { UpstreamError } from "../../daemon/sync/errors";
import { waitFor } from "../helpers/clients";
import { createTestRegistry } from "../helpers/registry";

const CHUNK = 256 * 1024;
const unlimited = () => new IoBudget({ readBytesPerSecond: 0, writeBytesPerSecond: 0, readOpsPerSecond: 0, writeOpsPerSecond: 0 });
const digestOf = (bytes: Uint8Array): Digest => requireDigest(`sha256:${createHash("sha256").update(bytes).digest("hex")}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An upstream response streaming `bytes` in pieces of `piece` bytes; `hook` runs before each piece and may throw to break the body off. */
function source(bytes: Uint8Array, hook: (sent: number) => void | Promise<void> = () => {}, piece = CHUNK) {
  return async () => {
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        await hook(sent);
        if (sent >= bytes.byteLength) return c.close();
        const next = bytes.slice(sent, sent + piece);
        sent += next.byteLength;
        c.enqueue(next);
      },
    });
    return new Response(body, { headers: { "content-length": String(bytes.byteLength) } });
  };
}

/** Reads a stream to the end, pausing `delayMs` after each chunk; resolves to its bytes. */
async function drain(stream: ReadableStream<Uint8Array>, delayMs = 0): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    parts.push(chunk.slice()); // a memcpy: Uint8Array.from copies element by element (seconds for 24 MiB on a loaded machine)
    if (delayMs) await sleep(delayMs);
  }
  return Buffer.concat(parts);
}

const modes: [string, UploadHashing][] = [
  ["hashing thread", workerHashing()],
  ["inline hashing", inlineHashing],
];
afterAll(async () => {
  for (const [, h] of modes) await h.shutdown();
});

describe.each(modes)("blob fetch with %s", (_name, hashing) => {
  test("a slow reader and a late joiner get the exact blob, and memory held stays within the relay window", async () => {
    // Deterministic, not paced by sleeps (which under a loaded machine stretched this test
    // past bun's 5 s default): the upstream pauses at JOIN until the late reader is attached,
    // and the slow reader takes its first chunk and then waits until the fetch is at JOIN,
    // far past the relay window, before reading on.
    const JOIN = 8 << 20;
    await using reg = await createTestRegistry({ hashing });
    const fetches = new BlobFetches(reg.store, unlimited(), silentLogger);
    const bytes = randomBytes(12 << 20);
    const digest = digestOf(bytes);
    let maxWindow = 0;
    const halfway = Promise.withResolvers<void>();
    const joined = Promise.withResolvers<void>();
    const f = fetches.fetch("lib/app", digest, source(bytes, async (sent) => {
      maxWindow = Math.max(maxWindow, f.windowBytes);
      if (sent !== JOIN) return;
      halfway.resolve();
      await joined.promise;
    }), { background: false, upstream: "up" });
    let slowFromFile = 0;
    let lateFromFile = 0;
    const slowReader = f.reader((n) => (slowFromFile += n)).getReader();
    const slow = (async () => {
      const parts: Uint8Array[] = [];
      for (let first = true; ; first = false) {
        const { done, value } = await slowReader.read();
        if (done) return Buffer.concat(parts);
        parts.push(value.slice());
        if (first) await halfway.promise;
      }
    })();
    await halfway.promise;
    // the upstream sent JOIN bytes; the last chunk may still be on its way into the fetch
    expect(f.received).toBeGreaterThanOrEqual(JOIN - CHUNK);
    const late = drain(f.reader((n) => (lateFromFile += n)));
    joined.resolve();
    const [a, b] = await Promise.all([slow, late]);
    await f.done;
    expect(a.equals(bytes)).toBe(true);
    expect(b.equals(bytes)).toBe(true);
    // both fell behind the window and read the file
    expect(slowFromFile).toBeGreaterThan(0);
    expect(lateFromFile).toBeGreaterThanOrEqual(JOIN - RELAY_WINDOW - WRITE_BATCH - 2 * CHUNK);
    // the window holds RELAY_WINDOW bytes plus what is received but not yet written
    expect(maxWindow).toBeLessThanOrEqual(RELAY_WINDOW + WRITE_BATCH + CHUNK);
    expect(f.windowBytes).toBe(0);
    expect(readFileSync(reg.store.blobs.path("lib/app", digest)).equals(bytes)).toBe(true);
    expect(readdirSync(reg.store.paths.uploads)).toEqual([]);
    // a reader that starts after the fetch is over reads the published blob
    expect((await drain(f.reader())).equals(bytes)).toBe(true);
  });

  test("a blob of one chunk, relayed and published", async () => {
    await using reg = await createTestRegistry({ hashing });
    const fetches = new BlobFetches(reg.store, unlimited(), silentLogger);
    const bytes = randomBytes(100_000);
    const digest = digestOf(bytes);
    const f = fetches.fetch("lib/app", digest, source(bytes), { background: false, upstream: "up" });
    expect((await drain(f.reader())).equals(bytes)).toBe(true);
    await f.done;
    expect(existsSync(reg.store.blobs.path("lib/app", digest))).toBe(true);
  });

  test("bytes that do not hash to the digest: every reader errors, nothing is published", async () => {
    await using reg = await createTestRegistry({ hashing });
    const fetches = new BlobFetches(reg.store, unlimited(), silentLogger);
    const bytes = randomBytes(6 << 20);
    const digest = digestOf(randomBytes(16));
    const f = fetches.fetch("lib/app", digest, source(bytes), { background: false, upstream: "up" });
    const results = await Promise.allSettled([drain(f.reader()), drain(f.reader(), 1)]);
    for (const r of results) {
      expect(r.status).toBe("rejected");
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(UpstreamError);
      expect(String((r as PromiseRejectedResult).reason.message)).toContain("hashing to sha256:");
    }
    expect(f.done).rejects.toBeInstanceOf(UpstreamError);
    await f.done.catch(() => {});
    expect(existsSync(reg.store.blobs.path("lib/app", digest))).toBe(false);
    expect(readdirSync(reg.store.paths.uploads)).toEqual([]);
  });

  test("an upstream body that breaks off: readers error, not end, and the next fetch starts afresh", async () => {
    await using reg = await createTestRegistry({ hashing });
    const fetches = new BlobFetches(reg.store, unlimited(), silentLogger);
    const bytes = randomBytes(8 << 20);
    const digest = digestOf(bytes);
    const f = fetches.fetch("lib/app", digest, source(bytes, (sent) => {
      if (sent >= 5 << 20) throw new Error("connection reset");
    }), { background: false, upstream: "up" });
    const read = drain(f.reader());
    expect(read).rejects.toThrow(/broke off/);
    await read.catch(() => {});
    await f.done.catch(() => {});
    expect(fetches.get("lib/app", digest)).toBeUndefined();
    expect(readdirSync(reg.store.paths.uploads)).toEqual([]);
    const again = fetches.fetch("lib/app", digest, source(bytes), { background: false, upstream: "up" });
    expect((await drain(again.reader())).equals(bytes)).toBe(true);
    await again.done;
  });
});

test("a flush that fails while a blob streams in fails the fetch, not the process", async () => {
  let syncs = 0;
  const disk: Disk = {
    ...realDisk,
    async openAppend(path) {
      const file = await realDisk.openAppend(path);
      return { ...file, write: (c) => file.write(c), truncate: (n) => file.truncate(n), close: () => file.close(), sync: async () => {
        syncs++;
        throw Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" });
      } };
    },
  };
  await using reg = await createTestRegistry({ disk });
  const fetches = new BlobFetches(reg.store, unlimited(), silentLogger);
  const bytes = randomBytes(12 << 20);
  const digest = digestOf(bytes);
  const f = fetches.fetch("lib/app", digest, source(bytes), { background: false, upstream: "up" });
  const read = drain(f.reader());
  expect(read).rejects.toThrow(/EIO/);
  await read.catch(() => {});
  await f.done.catch(() => {});
  expect(f.state).toBe("failed");
  expect(syncs).toBeGreaterThan(0);
  expect(existsSync(reg.store.blobs.path("lib/app", digest))).toBe(false);
  expect(readdirSync(reg.store.paths.uploads)).toEqual([]);
});

test("each failed fetch gets the log line of its cause: bytes that do not match, a broken transfer; a blob the upstream lacks none", async () => {
  await using reg = await createTestRegistry({ hashing: inlineHashing });
  const lines: { level: string; msg: string; upstream?: string; error?: string }[] = [];
  const fetches = new BlobFetches(reg.store, unlimited(), createLogger("info", "json", (line) => lines.push(JSON.parse(line))));
  const failed = async (bytes: Uint8Array, digest: Digest, src: () => Promise<Response>) => {
    await fetches.fetch("lib/app", digest, src, { background: false, upstream: "up" }).done.catch(() => {});
    const out = lines.map((l) => [l.level, l.msg, l.upstream]);
    lines.length = 0;
    return out;
  };
  const bytes = randomBytes(300_000);
  expect(await failed(bytes, digestOf(randomBytes(16)), source(bytes))).toEqual([["warn", "upstream sent a blob whose bytes do not match it; nothing was stored", "up"]]);
  const broken = source(bytes, (sent) => {
    if (sent > 0) throw new Error("connection reset");
  });
  expect(await failed(bytes, digestOf(bytes), broken)).toEqual([["warn", "an upstream blob transfer failed; nothing was stored", "up"]]);
  const missing = async () => {
    throw new UpstreamError("not-found", "up", "the blob is not there");
  };
  expect(await failed(bytes, digestOf(bytes), missing)).toEqual([]);
  expect(readdirSync(reg.store.paths.uploads)).toEqual([]);
});

test("a reader behind the relay window reads from the file only what has left the window, and is relayed the rest from memory", async () => {
  // The upstream sends pieces of 1.25 MiB (each one a write batch of its own) and pauses at
  // JOIN until the reader has caught up; by then every received byte is written, so the
  // window holds bytes that are both in memory and on file, and it starts off the reader's
  // 1 MiB read boundaries (at 6.25 MiB). The reader must read back exactly the bytes before
  // the window, not read on up to `written`.
  const PIECE = 1.25 * (1 << 20);
  const JOIN = 8 * PIECE;
  await using reg = await createTestRegistry({ hashing: inlineHashing });
  const fetches = new BlobFetches(reg.store, unlimited(), silentLogger);
  const bytes = randomBytes(10 * PIECE);
  const digest = digestOf(bytes);
  const paused = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  const f = fetches.fetch("lib/app", digest, source(bytes, async (sent) => {
    if (sent !== JOIN) return;
    paused.resolve();
    await release.promise;
  }, PIECE), { background: false, upstream: "up" });
  await paused.promise;
  await waitFor("every received byte written", () => f.received === JOIN && f.written === JOIN, 10_000);
  const windowStart = f.received - f.windowBytes;
  // the window is non-trivial: bytes before it are only on file, bytes in it are on file too
  expect(windowStart).toBeGreaterThan(0);
  expect(windowStart).toBeLessThan(f.written);
  expect(windowStart % (1 << 20)).not.toBe(0);
  let fromFile = 0;
  const reader = f.reader((n) => (fromFile += n)).getReader();
  const parts: Uint8Array[] = [];
  let got = 0;
  while (got < JOIN) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`the reader ended at ${got} bytes of a paused fetch`);
    parts.push(value.slice());
    got += value.byteLength;
  }
  expect(got).toBe(JOIN);
  expect(fromFile).toBe(windowStart);
  release.resolve();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value.slice());
  }
  await f.done;
  expect(Buffer.concat(parts).equals(bytes)).toBe(true);
});
