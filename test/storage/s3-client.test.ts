/**
 * The S3 client (daemon/storage/s3/) against a real S3 server: the test helper's Ceph cluster
 * (RGW 16, started once per test process) or the endpoint named by BERTH_S3_ENDPOINT. Each
 * operation, conditional writes as RGW actually behaves (the quirks berth's S3 backend is
 * designed around are asserted, so a server upgrade that changes them shows up here), a
 * streamed multipart upload with bounded memory, ranged reads across part boundaries, and a
 * presigned URL fetched with plain fetch. Each run works in a bucket of its own.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { S3Client } from "../../daemon/storage/s3/client";
import { S3Error } from "../../daemon/storage/s3/errors";
import { uploadStream } from "../../daemon/storage/s3/multipart";
import { UNSIGNED_PAYLOAD, signHeaders } from "../../daemon/storage/s3/sigv4";
import { type S3Peer, dropBucket, s3Peer } from "../helpers/ceph";
import { byteAt, pattern } from "../helpers/s3-memory";

const MiB = 1024 * 1024;
const MEMORY_CHILD = join(import.meta.dir, "../helpers/s3-memory.ts");
let peer: S3Peer;
let s3: S3Client;

beforeAll(async () => {
  peer = await s3Peer();
  s3 = new S3Client({ ...peer, bucket: `berth-client-${crypto.randomUUID().slice(0, 8)}` });
  await s3.createBucket();
}, 180_000);

afterAll(async () => {
  if (s3) await dropBucket(s3);
}, 60_000);

/** The error a promise rejects with (fails the test when it resolves). */
async function failure(p: Promise<unknown>): Promise<S3Error> {
  const e = await p.then(
    () => new Error("expected the request to fail, it succeeded"),
    (e: unknown) => e,
  );
  if (!(e instanceof S3Error)) throw e;
  return e;
}

/** A signed request sent as-is (to see what the server does with headers the client would change). */
async function raw(method: string, key: string, headers: Record<string, string>, body?: string): Promise<number> {
  const url = new URL(`${peer.endpoint}/${s3.bucket}/${key}`);
  const h = new Headers(headers);
  signHeaders(peer, method, url, h, UNSIGNED_PAYLOAD);
  const res = await fetch(url, { method, headers: h, body });
  await res.body?.cancel();
  return res.status;
}

describe("objects", () => {
  test("put, head, get and delete round-trip bytes, type and metadata", async () => {
    const { etag } = await s3.put("a/b:c@d+e f.txt", "hello", { contentType: "text/plain", metadata: { Digest: "sha256:x" } });
    expect(etag).toMatch(/^[0-9a-f]{32}$/);
    const info = await s3.head("a/b:c@d+e f.txt");
    expect(info).toMatchObject({ size: 5, etag, contentType: "text/plain", metadata: { digest: "sha256:x" } });
    const got = await s3.get("a/b:c@d+e f.txt");
    expect(await new Response(got.body).text()).toBe("hello");
    expect(got.range).toEqual({ start: 0, end: 4, total: 5 });
    await s3.delete("a/b:c@d+e f.txt");
    expect(await s3.head("a/b:c@d+e f.txt")).toBeUndefined();
    expect((await failure(s3.get("a/b:c@d+e f.txt"))).kind).toBe("not-found");
    await s3.delete("a/b:c@d+e f.txt"); // absent: still fine
  });

  test("ranged reads answer the bytes asked for, and 416 past the end is invalid", async () => {
    await s3.put("range", "0123456789");
    const mid = await s3.get("range", { start: 3, end: 6 });
    expect(await new Response(mid.body).text()).toBe("3456");
    expect(mid.range).toEqual({ start: 3, end: 6, total: 10 });
    expect(mid.info.size).toBe(10);
    const tail = await s3.get("range", { start: 7 });
    expect(await new Response(tail.body).text()).toBe("789");
    const past = await failure(s3.get("range", { start: 10 }));
    expect([past.kind, past.status]).toEqual(["invalid", 416]);
  });

  test("listing pages through every key, and the delimiter groups prefixes", async () => {
    const keys = Array.from({ length: 25 }, (_, i) => `list/r${i % 3}/k${String(i).padStart(2, "0")}`);
    await Promise.all(keys.map((k) => s3.put(k, k)));
    const first = await s3.list({ prefix: "list/", maxKeys: 10 });
    expect(first.objects.length).toBe(10);
    expect(first.next).toBeDefined();
    const seen: string[] = [];
    for await (const { object } of s3.listAll({ prefix: "list/", pageSize: 10 })) seen.push(object!.key);
    expect(seen).toEqual([...keys].sort());
    const grouped = await s3.list({ prefix: "list/", delimiter: "/" });
    expect(grouped.prefixes).toEqual(["list/r0/", "list/r1/", "list/r2/"]);
    expect(grouped.objects).toEqual([]);
    expect(await s3.deleteMany([...keys, "list/never-there"])).toEqual([]);
    expect((await s3.list({ prefix: "list/" })).objects).toEqual([]);
  });

  test("server-side copy makes an equal object", async () => {
    await s3.put("copy/src", "payload", { contentType: "application/octet-stream" });
    const { etag } = await s3.copy("copy/src", "copy/dst");
    expect(etag).toBe((await s3.head("copy/src"))!.etag);
    expect(await new Response((await s3.get("copy/dst")).body).text()).toBe("payload");
  });

  test("a presigned GET works with plain fetch, and a tampered one is refused", async () => {
    await s3.put("presigned/blob", "signed bytes");
    const url = s3.presignGet("presigned/blob", 300);
    const res = await fetch(url);
    expect([res.status, await res.text()]).toEqual([200, "signed bytes"]);
    const tampered = await fetch(url.replace(/X-Amz-Signature=([0-9a-f])/, (_, c) => `X-Amz-Signature=${c === "0" ? "1" : "0"}`));
    await tampered.body?.cancel();
    expect(tampered.status).toBe(403);
  });

  test("wrong credentials are denied; an endpoint that is not there is unavailable after the retries", async () => {
    const wrong = new S3Client({ ...peer, secretKey: "not-the-secret", bucket: s3.bucket });
    expect((await failure(wrong.get("range"))).kind).toBe("denied");
    expect((await failure(wrong.head("range"))).kind).toBe("denied");
    const gone = new S3Client({ ...peer, endpoint: "http://127.0.0.1:9", bucket: "x", attempts: 2, backoffMs: 1 });
    expect((await failure(gone.put("k", "v"))).kind).toBe("unavailable");
  });
});

test("a server that never answers times out as unavailable, retried a bounded number of times; a caller's abort stops at once", async () => {
  let requests = 0;
  const silent = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => (requests++, new Promise<Response>(() => {})) });
  try {
    const slow = new S3Client({ ...peer, endpoint: silent.url.origin, bucket: "b", timeoutMs: 200, attempts: 3, backoffMs: 1 });
    const e = await failure(slow.head("k"));
    expect([e.kind, e.message]).toEqual(["unavailable", 'S3 HEAD "k" had no answer within 200 ms']);
    expect(requests).toBe(3);
    const ac = new AbortController();
    const patient = new S3Client({ ...peer, endpoint: silent.url.origin, bucket: "b", timeoutMs: 60_000 });
    const pending = patient.put("k", "v", { signal: ac.signal }).then(
      () => "resolved",
      (err: unknown) => (err as Error).name,
    );
    ac.abort();
    expect(await pending).toBe("AbortError");
  } finally {
    silent.stop(true);
  }
});

describe("conditional writes", () => {
  test("If-None-Match: * creates once; later creates fail with precondition-failed", async () => {
    await s3.put("cond/create", "first", { ifNoneMatch: "*" });
    expect((await failure(s3.put("cond/create", "second", { ifNoneMatch: "*" }))).kind).toBe("precondition-failed");
    expect(await new Response((await s3.get("cond/create")).body).text()).toBe("first");
  });

  test("If-Match replaces only the current ETag (given quoted or not)", async () => {
    const { etag: v1 } = await s3.put("cond/swap", "v1");
    const { etag: v2 } = await s3.put("cond/swap", "v2", { ifMatch: v1 });
    expect((await failure(s3.put("cond/swap", "v3", { ifMatch: v1 }))).kind).toBe("precondition-failed");
    await s3.put("cond/swap", "v3", { ifMatch: `"${v2}"` }); // the client strips the quotes
    expect((await failure(s3.put("cond/absent", "v", { ifMatch: v1 }))).kind).not.toBe("conflict");
    expect(await new Response((await s3.get("cond/swap")).body).text()).toBe("v3");
  });

  test("of concurrent writers with the same condition exactly one wins", async () => {
    const creates = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => s3.put("cond/race-create", `w${i}`, { ifNoneMatch: "*" })));
    expect(creates.filter((r) => r.status === "fulfilled").length).toBe(1);
    for (const r of creates) if (r.status === "rejected") expect(["precondition-failed", "conflict"]).toContain((r.reason as S3Error).kind);
    const { etag } = (await s3.head("cond/race-create"))!;
    const swaps = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => s3.put("cond/race-create", `s${i}`, { ifMatch: etag })));
    expect(swaps.filter((r) => r.status === "fulfilled").length).toBe(1);
    for (const r of swaps) if (r.status === "rejected") expect(["precondition-failed", "conflict"]).toContain((r.reason as S3Error).kind);
  });

  test("RGW quirks: a quoted current ETag in If-Match is refused; CompleteMultipartUpload ignores If-None-Match", async () => {
    if (!peer.ceph) return expect(peer.ceph).toBe(false); // another server's quirks are its own; the tests above hold everywhere
    const { etag } = await s3.put("quirk/etag", "x");
    expect(await raw("PUT", "quirk/etag", { "if-match": `"${etag}"` }, "y")).toBe(412);
    expect(await raw("PUT", "quirk/etag", { "if-match": etag }, "y")).toBe(200);
    // A multipart completion over an existing key, asked to create only, overwrites.
    const id = await s3.createMultipart("quirk/etag");
    const part = await s3.uploadPart("quirk/etag", id, 1, new TextEncoder().encode("multipart"));
    const url = new URL(`${peer.endpoint}/${s3.bucket}/quirk/etag?uploadId=${encodeURIComponent(id)}`);
    const h = new Headers({ "if-none-match": "*" });
    signHeaders(peer, "POST", url, h, UNSIGNED_PAYLOAD);
    const res = await fetch(url, { method: "POST", headers: h, body: `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"${part}"</ETag></Part></CompleteMultipartUpload>` });
    await res.body?.cancel();
    expect(res.status).toBe(200);
    expect(await new Response((await s3.get("quirk/etag")).body).text()).toBe("multipart");
  });
});

describe("multipart", () => {
  test("a 64 MiB stream goes up in 8 MiB parts with bounded memory and reads back across part boundaries", async () => {
    // Measured in a process of its own (test/helpers/s3-memory.ts), so other tests' garbage
    // does not count: 3 parts of 8 MiB at most, plus fetch's copies and uncollected garbage.
    const child = Bun.spawn([process.execPath, MEMORY_CHILD, JSON.stringify({ ...peer, bucket: s3.bucket, key: "mp/big", total: 64 * MiB, partSize: 8 * MiB })], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    expect({ code, err: code ? err : "" }).toEqual({ code: 0, err: "" });
    const m = JSON.parse(out) as { size: number; parts: number; upMiB: number; downMiB: number; sha256: string; readSha256: string };
    expect([m.size, m.parts, m.readSha256]).toEqual([64 * MiB, 8, m.sha256]);
    expect(m.upMiB).toBeLessThan(56); // 30-41 MiB measured; buffering the object whole measured 128
    expect(m.downMiB).toBeLessThan(48); // 12-14 MiB measured for the streamed read
    expect((await s3.head("mp/big"))!.size).toBe(64 * MiB);
    const edge = 8 * MiB;
    const r = await s3.get("mp/big", { start: edge - 3, end: edge + 2 });
    const bytes = new Uint8Array(await new Response(r.body).arrayBuffer());
    expect([...bytes]).toEqual(Array.from({ length: 6 }, (_, k) => byteAt(edge - 3 + k)));
    expect(r.range).toEqual({ start: edge - 3, end: edge + 2, total: 64 * MiB });
  }, 60_000); // a timed-out test makes bun kill the spawned processes, the shared Ceph cluster among them

  test("a body shorter than a part is one plain PUT", async () => {
    const { stream, sha256 } = pattern(3 * MiB);
    const result = await uploadStream(s3, "mp/small", stream, { partSize: 5 * MiB });
    expect([result.size, result.parts]).toEqual([3 * MiB, 0]);
    expect(result.etag).toMatch(/^[0-9a-f]{32}$/);
    const h = createHash("sha256");
    for await (const c of (await s3.get("mp/small")).body as unknown as AsyncIterable<Uint8Array>) h.update(c);
    expect(h.digest("hex")).toBe(sha256);
  });

  test("a source that breaks off aborts the upload and leaves no parts or object", async () => {
    const { stream } = pattern(40 * MiB, 12 * MiB);
    await expect(uploadStream(s3, "mp/broken", stream, { partSize: 5 * MiB })).rejects.toThrow("Source broke off");
    expect(await s3.head("mp/broken")).toBeUndefined();
    expect((await s3.listMultipartUploads("mp/broken")).filter((u) => u.key === "mp/broken")).toEqual([]);
  });

  test("create, parts, list parts, complete; abort drops an upload", async () => {
    const id = await s3.createMultipart("mp/manual", { contentType: "application/x-test" });
    const five = new Uint8Array(5 * MiB).fill(7);
    const e1 = await s3.uploadPart("mp/manual", id, 1, five);
    const e2 = await s3.uploadPart("mp/manual", id, 2, new TextEncoder().encode("tail"));
    expect((await s3.listParts("mp/manual", id)).map((p) => [p.partNumber, p.etag, p.size])).toEqual([
      [1, e1, 5 * MiB],
      [2, e2, 4],
    ]);
    expect((await s3.listMultipartUploads("mp/manual")).map((u) => u.uploadId)).toContain(id);
    const done = await s3.completeMultipart("mp/manual", id, [
      { partNumber: 1, etag: e1 },
      { partNumber: 2, etag: e2 },
    ]);
    expect(typeof done.etag).toBe("string"); // RGW 16 may answer an empty one
    expect((await s3.head("mp/manual"))!.size).toBe(5 * MiB + 4);
    const id2 = await s3.createMultipart("mp/aborted");
    await s3.uploadPart("mp/aborted", id2, 1, new TextEncoder().encode("x"));
    await s3.abortMultipart("mp/aborted", id2);
    expect((await s3.listMultipartUploads("mp/aborted")).map((u) => u.uploadId)).not.toContain(id2);
    expect((await failure(s3.listParts("mp/aborted", id2))).kind).toBe("not-found");
  });
});
