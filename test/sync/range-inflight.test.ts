/**
 * `Range` on a pull-through blob that is still streaming in (issue 15). The fake upstream
 * sends the first MiB of a layer and then holds the rest back until the test opens a gate,
 * so the fetch is in flight for certain when the ranged request arrives. The ranged client
 * must be answered while the fetch is in flight, and with either the exact span (206 and its
 * Content-Range) or the whole blob (200, which RFC 9110 allows a server to answer instead),
 * never a 206 with other bytes nor a 200 cut short; the first client gets the whole blob; and
 * once the blob is stored, the same Range is a 206 with exactly those bytes.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { waitFor } from "../helpers/clients";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fakeupstream";

const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const layer = new Uint8Array(randomBytes(3 << 20));
const digest = sha(layer);
let openGate!: () => void;
const gate = new Promise<void>((res) => (openGate = res));
let sent = 0;

let fake: FakeUpstream;
let d: Daemon;
beforeAll(async () => {
  fake = startFakeUpstream((req, path) => {
    if (path !== `/v2/lib/app/blobs/${digest}`) return undefined;
    // a HEAD announces the size, as a registry's must (a whole body: Bun sends its length, not the bytes)
    if (req.method === "HEAD") return new Response(layer);
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (sent === 1 << 20) await gate;
        const part = layer.subarray(sent, Math.min(sent + (256 << 10), layer.byteLength));
        sent += part.byteLength;
        c.enqueue(part);
        if (sent === layer.byteLength) c.close();
      },
    });
    return new Response(body, { headers: { "content-length": String(layer.byteLength) } });
  });
  d = await startDaemon({ extra: `[[sync.registries]]\nname = "fake"\nurls = ["${fake.url}"]\nrepos = ["lib/**"]\ntimeout_ms = 10000\nretries = 0\n` });
});
afterAll(async () => {
  openGate();
  await d?.[Symbol.asyncDispose]();
  await fake?.[Symbol.asyncDispose]();
});

test("a Range request while the blob streams in gets the exact span or the whole blob; afterwards, the exact span", async () => {
  const guard = AbortSignal.timeout(8_000);
  const first = await fetch(`${d.url}/v2/lib/app/blobs/${digest}`, { signal: guard });
  expect(first.status).toBe(200);
  const firstBody = first.arrayBuffer();
  await waitFor("the upstream to hold at 1 MiB", () => sent === 1 << 20, 4_000, 5);
  const [start, end] = [(2 << 20) + 17, (2 << 20) + 4112]; // bytes the upstream has not sent yet
  const ranged = await fetch(`${d.url}/v2/lib/app/blobs/${digest}`, { headers: { Range: `bytes=${start}-${end}` }, signal: guard });
  expect(sent).toBe(1 << 20); // answered while the fetch is still in flight
  // a HEAD meanwhile is answered from the fetch in flight, not by asking the upstream again
  const head = await fetch(`${d.url}/v2/lib/app/blobs/${digest}`, { method: "HEAD", signal: guard });
  expect(head.status).toBe(200);
  expect(head.headers.get("docker-content-digest")).toBe(digest);
  // the size, even though Bun's upstream streamed the body without announcing it (Bun drops
  // Content-Length on streamed bodies): never Content-Length 0 for a blob that is not empty
  expect(head.headers.get("content-length")).toBe(String(layer.byteLength));
  openGate();
  const got = new Uint8Array(await ranged.arrayBuffer());
  if (ranged.status === 206) {
    expect(ranged.headers.get("content-range")).toBe(`bytes ${start}-${end}/${layer.byteLength}`);
    expect(sha(got)).toBe(sha(layer.subarray(start, end + 1)));
  } else {
    expect(ranged.status).toBe(200);
    expect(got.byteLength).toBe(layer.byteLength);
    expect(sha(got)).toBe(digest);
  }
  expect(sha(new Uint8Array(await firstBody))).toBe(digest);
  expect(fake.hits(`/v2/lib/app/blobs/${digest}`)).toBe(2); // one fetch for both clients, and the HEAD that asked the size
  await waitFor("the blob to be stored", async () => (await fetch(`${d.url}/v2/lib/app/blobs/${digest}`, { method: "HEAD" })).headers.get("accept-ranges") === "bytes", 4_000);
  const asked = fake.hits(`/v2/lib/app/blobs/${digest}`); // (HEADs while it streamed in asked the upstream for the size)
  const after = await fetch(`${d.url}/v2/lib/app/blobs/${digest}`, { headers: { Range: `bytes=${start}-${end}` } });
  expect(after.status).toBe(206);
  expect(after.headers.get("content-range")).toBe(`bytes ${start}-${end}/${layer.byteLength}`);
  expect(sha(new Uint8Array(await after.arrayBuffer()))).toBe(sha(layer.subarray(start, end + 1)));
  expect(fake.hits(`/v2/lib/app/blobs/${digest}`)).toBe(asked); // stored: served locally
}, 15_000);
