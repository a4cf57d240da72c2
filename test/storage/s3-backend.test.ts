/**
 * What the S3 backend adds beyond the storage contract, on the real Ceph cluster (or
 * BERTH_S3_ENDPOINT), with two S3Storage instances on one bucket standing for two berth
 * processes: a transaction that lost the race to the other process's write is applied again
 * on the new index (deterministically interleaved, so both changes survive); the other
 * process's index change and blobs are seen; a dropped repository is a tombstone that either
 * process can revive; redirects are presigned URLs that fetch the bytes; a bucket of another
 * layout version is refused; young unlinked blobs are held from the pool sweep.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { createHash } from "node:crypto";
import { silentLogger } from "../../daemon/log";
import { requireDigest } from "../../daemon/oci/digest";
import type { Descriptor } from "../../daemon/oci/manifest";
import { S3Client } from "../../daemon/storage/s3/client";
import { type S3Peer, dropBucket, s3Peer } from "../helpers/ceph";
import { type TestS3Storage, openTestS3Storage } from "../helpers/s3store";
import { bodyBytes } from "./contract";

// generous: a test that times out makes bun kill spawned processes, the shared Ceph cluster among them
setDefaultTimeout(60_000);

const bucket = `berth-s3b-${crypto.randomUUID().slice(0, 8)}`;
let peer: S3Peer;
const opened: TestS3Storage[] = [];

beforeAll(async () => {
  peer = await s3Peer();
}, 180_000);

afterAll(async () => {
  for (const t of opened) t.close();
  if (peer) await dropBucket(new S3Client({ ...peer, bucket }));
}, 60_000);

/** Two "processes" on one prefix. */
async function pair(extra: Parameters<typeof openTestS3Storage>[1] extends infer O ? Partial<O> : never = {}): Promise<[TestS3Storage, TestS3Storage]> {
  const prefix = `t-${crypto.randomUUID().slice(0, 8)}`;
  const a = await openTestS3Storage(peer, { bucket, prefix, ...extra }, silentLogger);
  const b = await openTestS3Storage(peer, { bucket, prefix, ...extra }, silentLogger);
  opened.push(a, b);
  return [a, b];
}

const digestOf = (text: string) => requireDigest(`sha256:${createHash("sha256").update(text).digest("hex")}`);
const tagged = (text: string, tag: string): Descriptor => ({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: digestOf(text).value, size: text.length, annotations: { "org.opencontainers.image.ref.name": tag } });

async function put(t: TestS3Storage, repo: string, text: string) {
  const ingest = await t.storage.blobs.ingest(repo, "sha256");
  await ingest.write([new TextEncoder().encode(text)]);
  await ingest.commit(digestOf(text));
}

describe("two processes on one bucket", () => {
  test("a transaction that lost the race to the other process's write runs again on the new index; both changes survive", async () => {
    const [a, b] = await pair();
    await a.storage.indexes.ensure("r");
    let runs = 0;
    let releaseA!: () => void;
    const aRead = new Promise<void>((resolve) => (releaseA = resolve));
    let bDone!: () => void;
    const bWritten = new Promise<void>((resolve) => (bDone = resolve));
    const txA = a.storage.indexes.transaction("r", async (tx) => {
      runs++;
      const current = await tx.current();
      if (runs === 1) {
        releaseA();
        await bWritten; // the other process writes between this read and this write
      }
      return tx.write([...current.doc.manifests, tagged("from a", "a")]);
    });
    await aRead;
    await b.storage.indexes.update("r", (e) => [...e, tagged("from b", "b")]);
    bDone();
    const written = await txA;
    expect(runs).toBe(2);
    expect(written.sortedTags()).toEqual(["a", "b"]);
    expect((await b.storage.indexes.index("r"))!.sortedTags()).toEqual(["a", "b"]);
  });

  test("compare-and-swap with a stamp the other process has replaced is refused", async () => {
    const [a, b] = await pair();
    await a.storage.indexes.ensure("c");
    const v0 = (await a.storage.indexes.index("c"))!;
    expect(await b.storage.indexes.compareAndSwap("c", v0.stamp, [tagged("b", "b")])).toBeDefined();
    expect(await a.storage.indexes.compareAndSwap("c", v0.stamp, [tagged("a", "a")])).toBeUndefined();
    expect((await a.storage.indexes.index("c"))!.sortedTags()).toEqual(["b"]);
  });

  test("an unchanged index is revalidated without a transfer (304), and the other process's change is read", async () => {
    const [a, b] = await pair();
    await a.storage.indexes.ensure("v");
    const stamp = (await a.storage.indexes.index("v"))!.stamp;
    expect(await a.storage.s3.getIfChanged(a.storage.keys.index("v"), stamp)).toBeUndefined();
    await b.storage.indexes.update("v", (e) => [...e, tagged("m", "latest")]);
    const seen = (await a.storage.indexes.index("v"))!;
    expect(seen.stamp).not.toBe(stamp);
    expect(seen.tags.get("latest")?.digest).toBe(digestOf("m").value);
  });

  test("a blob pushed through the other process is found by lookup, and by stat once the index change is read", async () => {
    const [a, b] = await pair();
    await a.storage.indexes.ensure("x");
    await a.storage.indexes.index("x");
    await put(b, "x", "pushed through b");
    await b.storage.indexes.update("x", (e) => [...e, tagged("pushed through b", "t")]);
    const d = digestOf("pushed through b");
    expect(a.storage.blobs.stat("x", d)).toBeUndefined();
    expect((await a.storage.blobs.lookup("x", d))?.size).toBe("pushed through b".length);
    await put(b, "x", "second blob");
    await b.storage.indexes.update("x", (e) => [...e, tagged("second blob", "u")]);
    await a.storage.indexes.index("x"); // the changed index re-lists the repository's links
    expect(a.storage.blobs.stat("x", digestOf("second blob"))?.size).toBe("second blob".length);
  });

  test("a dropped repository is a tombstone: gone for both, revived by either", async () => {
    const [a, b] = await pair();
    await a.storage.indexes.ensure("gone");
    expect(await b.storage.indexes.exists("gone")).toBe(true);
    await a.storage.indexes.withLock("gone", () => a.storage.indexes.drop("gone"));
    expect(await b.storage.indexes.exists("gone")).toBe(false);
    expect(await b.storage.repositories()).not.toContain("gone");
    expect(await b.storage.s3.head(b.storage.keys.index("gone"))).toBeDefined();
    await b.storage.indexes.ensure("gone");
    expect(await a.storage.indexes.exists("gone")).toBe(true);
    expect((await a.storage.indexes.index("gone"))!.doc.manifests).toEqual([]);
  });
});

describe("one process", () => {
  test("with redirects on, a whole blob is a presigned URL that fetches its bytes; a range is streamed", async () => {
    const [a] = await pair({ redirectSeconds: 60 });
    const text = "redirect me ".repeat(100);
    await put(a, "red", text);
    const body = a.storage.blobs.open("red", digestOf(text));
    expect(body.kind).toBe("redirect");
    expect(new TextDecoder().decode(await bodyBytes(body))).toBe(text);
    const ranged = a.storage.blobs.open("red", digestOf(text), { start: 3, end: 9 });
    expect(ranged.kind).toBe("stream");
    expect(new TextDecoder().decode(await bodyBytes(ranged))).toBe(text.slice(3, 10));
  });

  test("a bucket holding another layout version is refused at open", async () => {
    const prefix = `v2-${crypto.randomUUID().slice(0, 8)}`;
    const s3 = new S3Client({ ...peer, bucket });
    await s3.createBucket();
    await s3.put(`${prefix}/berth-layout`, '{"version":2}');
    const err = await openTestS3Storage(peer, { bucket, prefix }, silentLogger).then(() => undefined, (e: Error) => e);
    expect(err?.message).toContain('layout version "2"');
  });

  test("a young blob no repository links is held from the pool sweep (it may be a push in flight elsewhere); with no grace it is not", async () => {
    for (const [graceMs, held] of [[3_600_000, true], [0, false]] as const) {
      const [a] = await pair({ blobGraceMs: graceMs });
      await put(a, "g", "young");
      await a.storage.sweep.unlink("g", digestOf("young").value);
      await a.storage.sweep.settle();
      const entries: { digest: string; links?: number }[] = [];
      for await (const e of a.storage.storedBlobs()) entries.push(e);
      expect(entries.map((e) => e.links)).toEqual([held ? 2 : 1]);
    }
  });

  test("part buffers of many ingests at once stay within the upload memory budget; each blob goes up in parts", async () => {
    const [a] = await pair({ partSize: 5 * 1024 * 1024, uploadMemory: 10 * 1024 * 1024 });
    const s3 = a.storage.s3;
    let parts = 0;
    const part = s3.uploadPart.bind(s3);
    s3.uploadPart = async (...args) => {
      parts++;
      return part(...args);
    };
    const blobs = Array.from({ length: 8 }, (_, i) => new Uint8Array(6 * 1024 * 1024).fill(i + 1));
    await Promise.all(blobs.map(async (bytes) => {
      const ingest = await a.storage.blobs.ingest("many", "sha256");
      await ingest.write([bytes]);
      await ingest.commit(requireDigest(`sha256:${createHash("sha256").update(bytes).digest("hex")}`));
    }));
    expect(a.storage.budget.peak).toBeLessThanOrEqual(10 * 1024 * 1024);
    expect(a.storage.budget.peak).toBeGreaterThanOrEqual(5 * 1024 * 1024);
    expect(a.storage.budget.inUse).toBe(0);
    expect(parts).toBe(blobs.length * 2);
    expect(a.storage.meter.figures().repositories.get("many")?.blobs).toBe(blobs.length);
    expect(await s3.listMultipartUploads(`${a.storage.keys.prefix}uploads/`)).toEqual([]);
  }, 60_000);

  test("multipart uploads and temporary upload objects a crashed process left are removed when the store opens", async () => {
    const prefix = `mp-${crypto.randomUUID().slice(0, 8)}`;
    const s3 = new S3Client({ ...peer, bucket });
    await s3.createBucket();
    await s3.createMultipart(`${prefix}/blobs/sha256/${"ab".repeat(32)}`);
    await s3.createMultipart(`${prefix}/uploads/${crypto.randomUUID()}`);
    await s3.put(`${prefix}/uploads/${crypto.randomUUID()}`, "completed, not yet copied");
    expect((await s3.listMultipartUploads(`${prefix}/`)).length).toBe(2);
    const t = await openTestS3Storage(peer, { bucket, prefix, staleUploadMs: 0 }, silentLogger);
    opened.push(t);
    expect(await s3.listMultipartUploads(`${prefix}/`)).toEqual([]);
    expect((await s3.list({ prefix: `${prefix}/uploads/` })).objects).toEqual([]);
  });
});
