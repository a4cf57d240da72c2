/**
 * A blob past 4 GiB through the real daemon (issue 15): pushed as one streamed PATCH of a
 * generated body (zeros, with marker bytes at chosen offsets past 2^32, so 32-bit
 * truncation of an offset shows), hashed by the client as it streams, verified by the
 * daemon (201 to the digest the client computed), with the daemon's peak RSS (VmHWM)
 * growing by a bounded amount; then served: `Range` requests at offsets past 4 GiB return
 * the markers with the right Content-Range, a suffix range and an unsatisfiable one are
 * answered as RFC 9110 says, and the whole blob streams back with its full length and the
 * markers in place, the daemon's RSS still bounded. One daemon and one blob for the file.
 *
 * Wall time (2 shared cores, idle-ish): ~20-40 s, most of it hashing 4 GiB twice (client
 * and daemon, ~1.5 s/GiB each here, in parallel) and the daemon's fsync of the file.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { type Daemon, startDaemon } from "../helpers/daemon";

const MiB = 1 << 20;
const CHUNKS = 4096 + 3; // 4 GiB + 3 MiB ...
const TAIL = 123; // ... + 123 bytes, so the size is not a multiple of anything
const SIZE = CHUNKS * MiB + TAIL;
/** RSS the daemon may gain over the whole push or pull of the blob. */
const RSS_BOUND = 192 * MiB;

/** The byte at `offset`: zero, but for the first 8 bytes of each whole MiB chunk from 4 GiB on (markers). */
function marker(offset: number): number {
  const chunk = Math.floor(offset / MiB);
  const at = offset % MiB;
  return chunk >= 4096 && chunk < CHUNKS && at < 8 ? ((chunk - 4095) * 16 + at) & 255 : 0;
}
const zero = new Uint8Array(MiB);
function chunk(i: number): Uint8Array {
  if (i === CHUNKS) return new Uint8Array(TAIL);
  if (i < 4096) return zero;
  const c = new Uint8Array(MiB);
  for (let k = 0; k < 8; k++) c[k] = marker(i * MiB + k);
  return c;
}

/** VmRSS and VmHWM of a process, in bytes. */
function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)![1]) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

let d: Daemon;
let digest: string;
let pushHwm: { before: number; after: number };

beforeAll(async () => {
  d = await startDaemon({ storage: "hash_thread = true" });
  // warm up the upload path (and the hashing thread) so its one-off allocations are not counted
  const warm = new Uint8Array(4 * MiB).fill(1);
  const warmDigest = `sha256:${new Bun.CryptoHasher("sha256").update(warm).digest("hex")}`;
  expect((await fetch(`${d.url}/v2/big/warm/blobs/uploads/?digest=${warmDigest}`, { method: "POST", body: warm })).status).toBe(201);
  const before = memory(d.proc.pid).hwm;
  const hasher = new Bun.CryptoHasher("sha256");
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (i > CHUNKS) return c.close();
      const b = chunk(i++);
      hasher.update(b);
      c.enqueue(b);
    },
  });
  const post = await fetch(`${d.url}/v2/big/app/blobs/uploads/`, { method: "POST" });
  expect(post.status).toBe(202);
  const patch = await fetch(new URL(post.headers.get("location")!, d.url), { method: "PATCH", body, headers: { "Content-Type": "application/octet-stream" } });
  expect(patch.status).toBe(202);
  expect(patch.headers.get("range")).toBe(`0-${SIZE - 1}`);
  digest = `sha256:${hasher.digest("hex")}`;
  const put = new URL(patch.headers.get("location")!, d.url);
  put.searchParams.set("digest", digest);
  const done = await fetch(put, { method: "PUT" });
  expect(done.status).toBe(201);
  pushHwm = { before, after: memory(d.proc.pid).hwm };
}, 180_000);

afterAll(async () => {
  await d?.[Symbol.asyncDispose]();
});

describe("a blob past 4 GiB", () => {
  test("the push streamed with bounded RSS and the daemon verified the client's digest", async () => {
    expect(pushHwm.after - pushHwm.before).toBeLessThan(RSS_BOUND);
    const head = await fetch(`${d.url}/v2/big/app/blobs/${digest}`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(SIZE));
    expect(head.headers.get("docker-content-digest")).toBe(digest);
  });

  test("Range at offsets past 4 GiB returns the bytes there, with the right Content-Range", async () => {
    const spans: [number, number][] = [
      [2 ** 32 - 4, 2 ** 32 + 11], // across the 4 GiB line
      [2 ** 32 + MiB, 2 ** 32 + MiB + 7], // the markers of chunk 4097
      [2 ** 32 + 2 * MiB + 3, 2 ** 32 + 2 * MiB + 5],
      [SIZE - 10, SIZE - 1],
    ];
    for (const [start, end] of spans) {
      const res = await fetch(`${d.url}/v2/big/app/blobs/${digest}`, { headers: { Range: `bytes=${start}-${end}` } });
      expect(res.status).toBe(206);
      expect(res.headers.get("content-range")).toBe(`bytes ${start}-${end}/${SIZE}`);
      const got = [...new Uint8Array(await res.arrayBuffer())];
      expect(got).toEqual(Array.from({ length: end - start + 1 }, (_, k) => marker(start + k)));
      expect(got.some((b) => b !== 0) || start >= SIZE - 200).toBe(true);
    }
    const suffix = await fetch(`${d.url}/v2/big/app/blobs/${digest}`, { headers: { Range: "bytes=-5" } });
    expect(suffix.status).toBe(206);
    expect(suffix.headers.get("content-range")).toBe(`bytes ${SIZE - 5}-${SIZE - 1}/${SIZE}`);
    const past = await fetch(`${d.url}/v2/big/app/blobs/${digest}`, { headers: { Range: `bytes=${SIZE}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get("content-range")).toBe(`bytes */${SIZE}`);
  });

  test("the whole blob streams back: full length, markers in place, RSS bounded", async () => {
    const before = memory(d.proc.pid).hwm;
    const res = await fetch(`${d.url}/v2/big/app/blobs/${digest}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(SIZE));
    let offset = 0;
    const wrong: number[] = [];
    for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
      // check the bytes that are markers, and a sample of the others
      for (let k = 0; k < part.byteLength; k += part.byteLength > 4096 ? 4093 : 1) if (part[k] !== marker(offset + k)) wrong.push(offset + k);
      const first = Math.ceil(offset / MiB) * MiB;
      for (let c = first; c < offset + part.byteLength; c += MiB) for (let k = 0; k < 8 && c + k < offset + part.byteLength; k++) if (part[c + k - offset] !== marker(c + k)) wrong.push(c + k);
      offset += part.byteLength;
    }
    expect(offset).toBe(SIZE);
    expect(wrong.slice(0, 5)).toEqual([]);
    expect(memory(d.proc.pid).hwm - before).toBeLessThan(RSS_BOUND);
  }, 120_000);
});
