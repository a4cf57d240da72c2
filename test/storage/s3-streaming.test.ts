/**
 * Uploads on the S3 backend stream into multipart uploads (daemon/storage/s3/spool.ts) with
 * part buffers from one byte budget, on the real Ceph cluster (or BERTH_S3_ENDPOINT): chunk
 * boundaries that do not fall on part boundaries, a chunk that fails half-way after sending a
 * part, a wrong digest, cancel and expiry (each leaves no multipart upload and no object), the
 * budget's refusal and its HTTP answer, dedupe against a stored blob (no copy), small blobs
 * in one PUT, the ranged server-side copy past the single-copy limit, and nothing written to
 * the local cache directory.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { silentLogger } from "../../daemon/log";
import { type Digest, requireDigest } from "../../daemon/oci/digest";
import { RegistryError } from "../../daemon/oci/errors";
import { translate } from "../../daemon/registry/translate";
import { StorageError } from "../../daemon/storage/errors";
import { S3Client } from "../../daemon/storage/s3/client";
import { type S3Peer, dropBucket, s3Peer } from "../helpers/ceph";
import { type TestS3Storage, openTestS3Storage } from "../helpers/s3store";

setDefaultTimeout(60_000);

const MiB = 1024 * 1024;
const bucket = `berth-s3s-${crypto.randomUUID().slice(0, 8)}`;
let peer: S3Peer;
const opened: TestS3Storage[] = [];

beforeAll(async () => {
  peer = await s3Peer();
}, 180_000);

afterAll(async () => {
  for (const t of opened) t.close();
  if (peer) await dropBucket(new S3Client({ ...peer, bucket }));
}, 60_000);

type Opts = Parameters<typeof openTestS3Storage>[1];

/** A store on a fresh prefix, with S3 calls counted. */
async function store(extra: Partial<Opts> = {}) {
  const t = await openTestS3Storage(peer, { bucket, prefix: `t-${crypto.randomUUID().slice(0, 8)}`, partSize: 5 * MiB, ...extra }, silentLogger);
  opened.push(t);
  const s3 = t.storage.s3;
  const calls = { create: 0, part: 0, complete: 0, copy: 0, partCopy: 0, put: 0 };
  const count = <K extends keyof typeof calls, F extends (...a: never[]) => Promise<unknown>>(k: K, f: F): F => (async (...a: Parameters<F>) => {
    calls[k]++;
    return f(...a);
  }) as F;
  s3.createMultipart = count("create", s3.createMultipart.bind(s3));
  s3.uploadPart = count("part", s3.uploadPart.bind(s3));
  s3.completeMultipart = count("complete", s3.completeMultipart.bind(s3));
  s3.copy = count("copy", s3.copy.bind(s3));
  s3.uploadPartCopy = count("partCopy", s3.uploadPartCopy.bind(s3));
  s3.put = count("put", s3.put.bind(s3));
  const prefix = t.storage.keys.prefix;
  return {
    t,
    s: t.storage,
    calls,
    /** Multipart uploads in progress under the store's prefix. */
    multiparts: async () => (await s3.listMultipartUploads(prefix)).length,
    /** Objects under uploads/ and blobs/. */
    objects: async (under: "uploads/" | "blobs/") => (await s3.list({ prefix: `${prefix}${under}` })).objects.length,
  };
}

/** Deterministic bytes (each MiB different, so a part sent twice or out of order would show). */
function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 4096) out.fill((i / 4096 + seed) & 0xff, i, Math.min(n, i + 4096));
  return out;
}

const digestOf = (b: Uint8Array): Digest => requireDigest(`sha256:${createHash("sha256").update(b).digest("hex")}`);

/** A request body of `b` in chunks of `chunk` bytes. */
function body(b: Uint8Array, chunk = 256 * 1024): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= b.byteLength) return c.close();
      c.enqueue(b.slice(at, at + chunk));
      at += chunk;
    },
  });
}

/** Files under a directory, recursively, with their bytes. */
function filesUnder(dir: string): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = [];
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const st = statSync(join(dir, name));
    if (st.isFile()) out.push({ path: name, size: st.size });
  }
  return out;
}

async function stored(s: TestS3Storage["storage"], repo: string, d: Digest): Promise<Uint8Array> {
  return s.blobs.read(repo, d);
}

describe("client upload sessions on S3", () => {
  test("PATCH chunks whose boundaries are not part boundaries become parts of one multipart upload; the blob is byte-identical and nothing is spooled locally", async () => {
    const { t, s, calls, multiparts, objects } = await store();
    const blob = bytes(13 * MiB + 12345);
    const d = digestOf(blob);
    const session = await s.uploads.start("chunked", "sha256");
    const cuts = [0, 3 * MiB, 7 * MiB + 1, 11 * MiB + 500_000, 13 * MiB + 12344, blob.byteLength];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const chunk = blob.subarray(cuts[i]!, cuts[i + 1]!);
      await s.uploads.append("chunked", session.id, body(chunk, 100_000), { range: { start: cuts[i]!, end: cuts[i + 1]! - 1 } });
      expect(s.uploads.get("chunked", session.id).size).toBe(cuts[i + 1]!);
      // between requests: parts sent, less than one part held, and no byte in the cache directory
      expect(s.budget.inUse).toBeLessThan(5 * MiB);
      expect(filesUnder(t.cacheRoot).filter((f) => f.size > 0 && !f.path.includes("meta.db"))).toEqual([]);
    }
    expect(await multiparts()).toBe(1);
    await s.uploads.complete("chunked", session.id, d);
    expect(calls.part).toBe(3); // 5 + 5 MiB while receiving, the rest as the last part
    expect(calls.complete).toBe(1);
    expect(calls.copy).toBe(1);
    expect(await stored(s, "chunked", d)).toEqual(blob);
    expect(s.blobs.stat("chunked", d)?.size).toBe(blob.byteLength);
    expect(await multiparts()).toBe(0);
    expect(await objects("uploads/")).toBe(0);
    expect(s.budget.inUse).toBe(0);
  });

  test("a chunk that fails half-way after a part went up is undone; the session resumes at its last good size and completes byte-identical", async () => {
    const { s } = await store();
    const blob = bytes(12 * MiB, 7);
    const d = digestOf(blob);
    const session = await s.uploads.start("resume", "sha256");
    await s.uploads.append("resume", session.id, body(blob.subarray(0, 2 * MiB)));
    // 7 MiB of the next chunk arrive (a part of 5 MiB goes up), then the connection breaks
    let sent = 0;
    const broken = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= 7 * MiB) return c.error(new Error("connection reset"));
        c.enqueue(blob.slice(2 * MiB + sent, 2 * MiB + sent + MiB));
        sent += MiB;
      },
    });
    await expect(s.uploads.append("resume", session.id, broken)).rejects.toMatchObject({ fault: "client-aborted" });
    expect(s.uploads.get("resume", session.id).size).toBe(2 * MiB);
    // the client resumes from 2 MiB with different chunking
    await s.uploads.append("resume", session.id, body(blob.subarray(2 * MiB, 9 * MiB), 3 * MiB), { range: { start: 2 * MiB, end: 9 * MiB - 1 } });
    await s.uploads.append("resume", session.id, body(blob.subarray(9 * MiB)));
    await s.uploads.complete("resume", session.id, d);
    expect(await stored(s, "resume", d)).toEqual(blob);
    expect(s.budget.inUse).toBe(0);
  });

  test("a monolithic upload of a wrong digest aborts the multipart upload: DIGEST_INVALID and no object left", async () => {
    const { s, multiparts, objects } = await store();
    const blob = bytes(11 * MiB, 3);
    const wrong = digestOf(bytes(10, 9));
    const session = await s.uploads.start("bad", "sha256");
    await s.uploads.append("bad", session.id, body(blob), { length: blob.byteLength });
    expect(await multiparts()).toBe(1);
    const err = await s.uploads.complete("bad", session.id, wrong).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(() => translate(err)).toThrow(expect.objectContaining({ code: "DIGEST_INVALID" }));
    expect(await multiparts()).toBe(0);
    expect(await objects("uploads/")).toBe(0);
    expect(await objects("blobs/")).toBe(0);
    expect(s.blobs.stat("bad", wrong)).toBeUndefined();
    expect(s.budget.inUse).toBe(0);
  });

  test("a final digest in another algorithm than the session's is checked by reading the bytes back (in parts and small), a wrong one refused", async () => {
    const { s, multiparts, objects } = await store();
    const sha512 = (b: Uint8Array): Digest => requireDigest(`sha512:${createHash("sha512").update(b).digest("hex")}`);
    for (const [repo, size] of [["big512", 11 * MiB + 7], ["small512", 4000]] as const) {
      const blob = bytes(size, 5);
      const session = await s.uploads.start(repo, "sha256");
      await s.uploads.append(repo, session.id, body(blob), { length: blob.byteLength });
      await s.uploads.complete(repo, session.id, sha512(blob));
      expect(await stored(s, repo, sha512(blob))).toEqual(blob);
      const wrong = await s.uploads.start(repo, "sha256");
      await s.uploads.append(repo, wrong.id, body(blob), { length: blob.byteLength });
      const err = await s.uploads.complete(repo, wrong.id, sha512(bytes(10, 9))).catch((e: unknown) => e);
      expect(() => translate(err)).toThrow(expect.objectContaining({ code: "DIGEST_INVALID" }));
    }
    expect(await multiparts()).toBe(0);
    expect(await objects("uploads/")).toBe(0);
    expect(s.budget.inUse).toBe(0);
  });

  test("cancelling a session (DELETE) and expiring one abort their multipart uploads", async () => {
    const { s, multiparts } = await store({ uploadLimits: { maxSessions: 10, maxPerClient: 10, expiryMs: 200 } });
    const a = await s.uploads.start("gone", "sha256");
    await s.uploads.append("gone", a.id, body(bytes(6 * MiB)));
    expect(await multiparts()).toBe(1);
    await s.uploads.cancel("gone", a.id);
    expect(await multiparts()).toBe(0);
    expect(s.budget.inUse).toBe(0);
    const b = await s.uploads.start("gone", "sha256");
    await s.uploads.append("gone", b.id, body(bytes(6 * MiB)));
    expect(await multiparts()).toBe(1);
    for (let i = 0; i < 500 && s.uploads.count() > 0; i++) await Bun.sleep(20);
    expect(s.uploads.count()).toBe(0);
    for (let i = 0; i < 100 && (await multiparts()) > 0; i++) await Bun.sleep(20);
    expect(await multiparts()).toBe(0);
    expect(s.budget.inUse).toBe(0);
  });

  test("when the upload memory budget is spent, a request waits its bound and is refused 429 TOOMANYREQUESTS with Retry-After; the session stays usable", async () => {
    const { s } = await store({ uploadMemory: 5 * MiB, uploadMemoryWaitMs: 200 });
    // a part buffer of another upload's request, held while it sends
    await s.budget.acquire(1 * MiB);
    const a = { release: () => s.budget.release(1 * MiB) };
    expect(s.budget.inUse).toBe(1 * MiB);
    const blob = bytes(6 * MiB, 2);
    const b = await s.uploads.start("busy", "sha256");
    const err = await s.uploads.append("busy", b.id, body(blob)).catch((e: unknown) => e);
    expect(err).toMatchObject({ fault: "too-many-uploads" });
    let answered: unknown;
    try {
      translate(err, s.uploads.get("busy", b.id));
    } catch (e) {
      answered = e;
    }
    expect(answered).toBeInstanceOf(RegistryError);
    expect(answered).toMatchObject({ code: "TOOMANYREQUESTS", status: 429 });
    expect((answered as RegistryError).retryAfter).toBeGreaterThan(0);
    expect(s.uploads.get("busy", b.id).size).toBe(0);
    expect(s.budget.inUse).toBe(1 * MiB);
    // once the other upload is gone, the retried request goes through
    a.release();
    await s.uploads.append("busy", b.id, body(blob));
    await s.uploads.complete("busy", b.id, digestOf(blob));
    expect(await stored(s, "busy", digestOf(blob))).toEqual(blob);
    expect(s.budget.inUse).toBe(0);
  });

  test("idle sessions' tails do not hold the budget from a sending upload: they are spilled to the bucket and read back by their next request", async () => {
    // (a part and a tail: a session's request that fills a part holds both for a moment)
    const { s, t, objects, multiparts } = await store({ uploadMemory: 6 * MiB, uploadMemoryWaitMs: 2_000 });
    // an attacker's sessions, each left with a tail under one part (together the whole budget)
    const idle: { id: string; data: Uint8Array }[] = [];
    for (let i = 0; i < 6; i++) {
      const data = bytes(1 * MiB, 10 + i);
      const u = await s.uploads.start("busy", "sha256");
      await s.uploads.append("busy", u.id, body(data));
      idle.push({ id: u.id, data });
    }
    expect(s.budget.inUse).toBe(6 * MiB);
    // another client's push goes through (it was refused 429 after the wait)
    const blob = bytes(6 * MiB, 3);
    const b = await s.uploads.start("busy", "sha256");
    await s.uploads.append("busy", b.id, body(blob));
    await s.uploads.complete("busy", b.id, digestOf(blob));
    expect(await stored(s, "busy", digestOf(blob))).toEqual(blob);
    expect((await t.storage.s3.list({ prefix: `${t.storage.keys.prefix}uploads/` })).objects.some((o) => o.key.endsWith(".tail"))).toBe(true);
    // the idle sessions resume: the one with more bytes, the small one published from its spilled tail
    const more = bytes(5 * MiB, 20);
    await s.uploads.append("busy", idle[0]!.id, body(more));
    const whole = new Uint8Array([...idle[0]!.data, ...more]);
    await s.uploads.complete("busy", idle[0]!.id, digestOf(whole));
    expect(await stored(s, "busy", digestOf(whole))).toEqual(whole);
    await s.uploads.complete("busy", idle[1]!.id, digestOf(idle[1]!.data));
    expect(await stored(s, "busy", digestOf(idle[1]!.data))).toEqual(idle[1]!.data);
    for (const u of idle.slice(2)) await s.uploads.cancel("busy", u.id);
    expect(s.budget.inUse).toBe(0);
    expect(await objects("uploads/")).toBe(0);
    expect(await multiparts()).toBe(0);
  });

  test("a blob the bucket already has is not completed nor copied again: the upload is aborted and the repository linked", async () => {
    const { s, calls, multiparts, objects } = await store();
    const blob = bytes(7 * MiB, 5);
    const d = digestOf(blob);
    const first = await s.uploads.start("one", "sha256");
    await s.uploads.append("one", first.id, body(blob));
    await s.uploads.complete("one", first.id, d);
    expect(calls.copy).toBe(1);
    const second = await s.uploads.start("two", "sha256");
    await s.uploads.append("two", second.id, body(blob));
    await s.uploads.complete("two", second.id, d);
    expect(calls.complete).toBe(1);
    expect(calls.copy).toBe(1);
    expect(await multiparts()).toBe(0);
    expect(await objects("blobs/")).toBe(1);
    expect(await objects("uploads/")).toBe(0);
    expect(await stored(s, "two", d)).toEqual(blob);
    expect(s.blobs.stat("two", d)?.size).toBe(blob.byteLength);
  });

  test("a blob smaller than one part is one PUT from memory, with no multipart upload", async () => {
    const { s, calls, objects } = await store();
    const blob = bytes(3 * MiB, 4);
    const session = await s.uploads.start("small", "sha256");
    await s.uploads.append("small", session.id, body(blob, 700_000));
    await s.uploads.append("small", session.id, body(bytes(1, 1)));
    const whole = new Uint8Array([...blob, ...bytes(1, 1)]);
    await s.uploads.complete("small", session.id, digestOf(whole));
    expect(calls.create).toBe(0);
    expect(calls.copy).toBe(0);
    expect(await objects("uploads/")).toBe(0);
    expect(await stored(s, "small", digestOf(whole))).toEqual(whole);
  });

  test("past the single-copy limit the completed upload is copied in UploadPartCopy ranges", async () => {
    const { s, calls, objects } = await store({ copy: { maxSingle: 6 * MiB, rangeSize: 5 * MiB } });
    const blob = bytes(12 * MiB + 3, 6);
    const ingest = await s.blobs.ingest("big", "sha256");
    await ingest.write([blob.subarray(0, 4 * MiB)]);
    await ingest.write([blob.subarray(4 * MiB)]);
    await ingest.commit(digestOf(blob));
    expect(calls.copy).toBe(0);
    expect(calls.partCopy).toBe(3);
    expect(await stored(s, "big", digestOf(blob))).toEqual(blob);
    expect(await objects("uploads/")).toBe(0);
  });

  test("an ingest (sync fetch, bundle import) streams the same way; bytes still in memory are read back before the commit", async () => {
    const { t, s, calls, multiparts } = await store();
    const blob = bytes(9 * MiB, 8);
    const ingest = await s.blobs.ingest("fetched", "sha256", { expectedSize: blob.byteLength });
    await ingest.write([blob.subarray(0, 6 * MiB)]);
    expect(await ingest.readBack(5 * MiB + 10, 100)).toEqual(blob.subarray(5 * MiB + 10, 5 * MiB + 110));
    await ingest.write([blob.subarray(6 * MiB)]);
    // bytes that went up in a part are read back once the blob is stored
    const early = ingest.readBack(0, 1000);
    expect(await multiparts()).toBe(1);
    expect(filesUnder(t.cacheRoot).filter((f) => f.size > 0 && !f.path.includes("meta.db"))).toEqual([]);
    await ingest.commit(digestOf(blob));
    expect(await early).toEqual(blob.subarray(0, 1000));
    expect(calls.part).toBe(2);
    expect(await stored(s, "fetched", digestOf(blob))).toEqual(blob);
  });
});
