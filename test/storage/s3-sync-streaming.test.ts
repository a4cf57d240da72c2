/**
 * Sync fetches on the S3 backend take the same streaming ingest as pushes: a real daemon on
 * S3 (Ceph, or BERTH_S3_ENDPOINT) pulls a layer of several parts through from a scripted
 * upstream; a client that reads along and one that joins late (behind the relay window, so
 * it reads back what the fetch already sent up in parts: it waits for the commit) both get
 * the exact bytes; the blob lands under its content-addressed key with no upload left behind
 * and nothing written to the local cache directory. Quota still applies on S3: a layer over
 * `[quota] max_bytes` is refused and leaves neither a blob nor a multipart upload.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { S3Client } from "../../daemon/storage/s3/client";
import { type S3Peer, dropBucket, s3Peer, s3StorageToml, writeS3Credentials, localBytes } from "../helpers/ceph";
import { syncView, waitFor } from "../helpers/clients";
import { startDaemon } from "../helpers/daemon";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fakeupstream";

setDefaultTimeout(120_000);

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const layer = randomBytes(14 * MiB);
const digest = sha(layer);
const bucket = `berth-s3y-${crypto.randomUUID().slice(0, 8)}`;
let peer: S3Peer;
let s3: S3Client;
let fake: FakeUpstream;
let work: string;
let creds: string;

beforeAll(async () => {
  peer = await s3Peer();
  work = mkdtempSync(join(tmpdir(), "berth-s3-sync-"));
  creds = writeS3Credentials(work, peer);
  s3 = new S3Client({ ...peer, bucket });
  await s3.createBucket();
  fake = startFakeUpstream((_req, path) => (path === `/v2/lib/big/blobs/${digest}` ? new Response(layer) : undefined));
}, 180_000);

afterAll(async () => {
  await fake?.[Symbol.asyncDispose]();
  if (s3) await dropBucket(s3);
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

/** A daemon on the bucket under `prefix`, pulling lib/big through from the fake upstream. */
function daemonOn(prefix: string, extra = "") {
  return startDaemon({
    storage: s3StorageToml(peer, bucket, prefix, creds, `part_size = ${5 * MiB}\n`),
    extra: `${extra}[[sync.registries]]\nname = "fake"\nurls = ["${fake.url}"]\nrepos = ["lib/big"]\ntimeout_ms = 10000\nretries = 0\non_demand = true\n`,
  });
}

async function readAll(res: Response): Promise<Uint8Array> {
  return new Uint8Array(await res.arrayBuffer());
}

describe("pull-through on the S3 backend", () => {
  test("a layer of several parts is fetched through the streaming ingest; a reader along and a late joiner get its exact bytes", async () => {
    await using d = await daemonOn("sync");
    const first = await fetch(`${d.url}/v2/lib/big/blobs/${digest}`);
    expect(first.status).toBe(200);
    const reader = first.body!.getReader();
    const head: Uint8Array[] = [];
    let got = 0;
    while (got < 6 * MiB) {
      const r = await reader.read();
      if (r.done) break;
      head.push(r.value);
      got += r.value.byteLength;
    }
    // joins after 6 MiB went by: behind the relay window, it reads back from byte 0
    const late = await fetch(`${d.url}/v2/lib/big/blobs/${digest}`);
    expect(late.status).toBe(200);
    const lateBytes = await readAll(late);
    const rest = await readAll(new Response(new ReadableStream({ pull: async (c) => {
      const r = await reader.read();
      if (r.done) c.close();
      else c.enqueue(r.value);
    } })));
    expect(sha(new Uint8Array(Buffer.concat([...head, rest])))).toBe(digest);
    expect(sha(lateBytes)).toBe(digest);
    await waitFor("the fetch to settle", async () => (await syncView(d.url)).fetches.length === 0, 10_000);
    expect((await s3.head(`sync/blobs/sha256/${digest.slice(7)}`))?.size).toBe(layer.byteLength);
    expect(await s3.listMultipartUploads("sync/")).toEqual([]);
    expect((await s3.list({ prefix: "sync/uploads/" })).objects).toEqual([]);
    expect(localBytes(d.root)).toBeLessThan(MiB);
  });

  test("a layer over the quota is refused on S3 too, leaving no blob and no multipart upload", async () => {
    await using d = await daemonOn("quota", `[quota]\nmax_bytes = ${MiB}\nmin_free = "0%"\n`);
    const res = await fetch(`${d.url}/v2/lib/big/blobs/${digest}`, { signal: AbortSignal.timeout(8_000) });
    if (res.ok) expect(sha(await readAll(res).catch(() => new Uint8Array(0)))).not.toBe(digest);
    else await res.body?.cancel();
    await waitFor("the fetch to settle", async () => (await syncView(d.url)).fetches.length === 0, 10_000);
    expect(await s3.head(`quota/blobs/sha256/${digest.slice(7)}`)).toBeUndefined();
    expect(await s3.listMultipartUploads("quota/")).toEqual([]);
    expect(d.logs()).toMatch(/storage quota exceeded/);
  });
});
