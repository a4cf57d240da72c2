/**
 * A real daemon on the S3 backend (Ceph, or BERTH_S3_ENDPOINT) receives a blob larger than
 * its memory budget in one streamed PATCH: while the body is being sent, the local cache
 * directory never holds more than a sliver of it (nothing is spooled), the client is never
 * more than 24 MiB ahead of the parts in the bucket's multipart upload, the daemon's RSS
 * grows far less than the blob, and the blob pulled back is byte-identical; a wrong digest over HTTP is
 * DIGEST_INVALID and leaves no upload behind.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { S3Client } from "../../daemon/storage/s3/client";
import { type S3Peer, dropBucket, s3Peer, s3StorageToml, writeS3Credentials, localBytes } from "../helpers/ceph";
import { type Daemon, startDaemon } from "../helpers/daemon";

setDefaultTimeout(120_000);

const MiB = 1024 * 1024;
const BLOB = 160 * MiB;
const bucket = `berth-s3p-${crypto.randomUUID().slice(0, 8)}`;
const prefix = "push";
let peer: S3Peer;
let s3: S3Client;
let work: string;
let daemon: Daemon;

beforeAll(async () => {
  peer = await s3Peer();
  work = mkdtempSync(join(tmpdir(), "berth-s3-push-"));
  const creds = writeS3Credentials(work, peer);
  s3 = new S3Client({ ...peer, bucket });
  await s3.createBucket();
  daemon = await startDaemon({
    storage: s3StorageToml(peer, bucket, prefix, creds, `part_size = ${5 * MiB}\nupload_memory = ${16 * MiB}\n`),
  });
}, 180_000);

afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
  if (s3) await dropBucket(s3);
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Deterministic content, each MiB different. */
function chunkAt(i: number): Uint8Array {
  return new Uint8Array(MiB).fill((i * 37 + 11) & 0xff);
}

/** MiB of parts the bucket holds for the one upload in flight. */
async function partsInBucket(): Promise<number> {
  const [u] = await s3.listMultipartUploads(`${prefix}/uploads/`);
  if (!u) return 0;
  let bytes = 0;
  for (const p of await s3.listParts(u.key, u.uploadId)) bytes += p.size ?? 0;
  return Math.floor(bytes / MiB);
}

async function location(res: Response): Promise<string> {
  expect(res.status).toBe(202);
  return new URL(res.headers.get("location")!, daemon.url).toString();
}

describe("a push on the S3 backend streams to the bucket", () => {
  test("a 160 MiB PATCH with a 16 MiB budget: the cache directory stays near empty, parts reach the bucket while the client sends (it never runs 24 MiB ahead), RSS grows far less than the blob", async () => {
    const hash = createHash("sha256");
    for (let i = 0; i < BLOB / MiB; i++) hash.update(chunkAt(i));
    const digest = `sha256:${hash.digest("hex")}`;
    // a first push of two parts loads and warms the upload path, so the figure is what the big one adds
    const warm = new Uint8Array(12 * MiB).fill(1);
    const first = await location(await fetch(`${daemon.url}/v2/big/warm/blobs/uploads/`, { method: "POST" }));
    const warmed = await fetch(`${first}${first.includes("?") ? "&" : "?"}digest=sha256:${createHash("sha256").update(warm).digest("hex")}`, { method: "PUT", body: warm });
    expect(warmed.status).toBe(201);
    const upload = await location(await fetch(`${daemon.url}/v2/big/blob/blobs/uploads/`, { method: "POST" }));
    const rssBefore = rssOf(daemon.proc.pid);
    let peakCache = 0;
    let peakRss = rssBefore;
    // the client stays at most WINDOW ahead of what the bucket holds in parts (Bun's server
    // reads request bodies ahead of the handler, so an unpaced client would measure that)
    const WINDOW = 24;
    let inBucketMiB = 0;
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        peakCache = Math.max(peakCache, localBytes(daemon.root));
        peakRss = Math.max(peakRss, rssOf(daemon.proc.pid));
        for (let tries = 0; tries < 500 && i - inBucketMiB > WINDOW; tries++) {
          inBucketMiB = await partsInBucket();
          if (i - inBucketMiB > WINDOW) await Bun.sleep(20);
        }
        if (i - inBucketMiB > WINDOW) return c.error(new Error(`the bucket holds ${inBucketMiB} MiB of parts after ${i} MiB were sent`));
        if (i === BLOB / MiB) return c.close();
        c.enqueue(chunkAt(i++));
      },
    });
    const patched = await fetch(upload, { method: "PATCH", body, headers: { "content-type": "application/octet-stream" } });
    expect(patched.status).toBe(202);
    expect(patched.headers.get("range")).toBe(`0-${BLOB - 1}`);
    const put = await fetch(`${upload}${upload.includes("?") ? "&" : "?"}digest=${digest}`, { method: "PUT" });
    expect(put.status).toBe(201);
    expect(inBucketMiB).toBeGreaterThanOrEqual(BLOB / MiB - WINDOW - 1);
    expect(peakCache).toBeLessThan(4 * MiB);
    console.log(`rss growth ${((peakRss - rssBefore) / MiB).toFixed(1)} MiB, cache peak ${(peakCache / MiB).toFixed(2)} MiB`);
    expect(peakRss - rssBefore).toBeLessThan(BLOB / 2);
    // pulled back byte-identical
    const got = await fetch(`${daemon.url}/v2/big/blob/blobs/${digest}`);
    expect(got.status).toBe(200);
    const back = createHash("sha256");
    for await (const chunk of got.body as unknown as AsyncIterable<Uint8Array>) back.update(chunk);
    expect(`sha256:${back.digest("hex")}`).toBe(digest);
    expect(await s3.listMultipartUploads(`${prefix}/`)).toEqual([]);
    expect((await s3.list({ prefix: `${prefix}/uploads/` })).objects).toEqual([]);
  });

  test("a monolithic PUT of a wrong digest answers DIGEST_INVALID and leaves no multipart upload nor object", async () => {
    const upload = await location(await fetch(`${daemon.url}/v2/big/bad/blobs/uploads/`, { method: "POST" }));
    const bytes = new Uint8Array(12 * MiB).fill(3);
    const wrong = `sha256:${"0".repeat(64)}`;
    const res = await fetch(`${upload}${upload.includes("?") ? "&" : "?"}digest=${wrong}`, { method: "PUT", body: bytes });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("DIGEST_INVALID");
    expect(await s3.listMultipartUploads(`${prefix}/`)).toEqual([]);
    expect((await s3.list({ prefix: `${prefix}/uploads/` })).objects).toEqual([]);
    expect(await s3.head(`${prefix}/blobs/sha256/${"0".repeat(64)}`)).toBeUndefined();
  });
});
