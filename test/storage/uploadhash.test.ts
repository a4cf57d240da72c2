/**
 * Upload hashing in a worker thread must agree with inline hashing in every case the
 * uploads rely on: streaming, chunk rollback after a failed chunk (including one whose bytes
 * were already cut off before the thread read them), digest mismatch, another algorithm.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inlineHashing, workerHashing } from "../../daemon/platform/uploadhash";
import { tempDir } from "../helpers/daemon";
import { createTestRegistry, sha256, sha512 } from "../helpers/registry";

const worker = workerHashing();
afterAll(() => worker.shutdown());

const enc = (s: string) => new TextEncoder().encode(s);

test("release stops the thread only while no hasher is open on it; the next upload starts another", async () => {
  const hashing = workerHashing();
  try {
    using dir = tempDir();
    const path = join(dir.path, "data");
    writeFileSync(path, "");
    hashing.release(); // never started: nothing to do
    expect(hashing.running()).toBe(false);
    const open = hashing.create("sha256", path);
    appendFileSync(path, "kept ");
    open.advance([enc("kept ")], 5);
    hashing.release(); // an idle session's hash state lives in the thread: kept
    expect(hashing.running()).toBe(true);
    appendFileSync(path, "state");
    open.advance([enc("state")], 10);
    const digest = open.digest();
    hashing.release(); // a digest is pending: kept
    expect(hashing.running()).toBe(true);
    expect(`sha256:${await digest}`).toBe(sha256("kept state"));
    hashing.release(); // nothing open: stopped
    expect(hashing.running()).toBe(false);
    const again = hashing.create("sha256", path);
    expect(hashing.running()).toBe(true);
    again.advance([], 10);
    expect(`sha256:${await again.digest()}`).toBe(sha256("kept state"));
    await expect(again.digest()).rejects.toThrow(/already taken/); // asked twice: refused, not left pending
    const closed = hashing.create("sha256", path);
    closed.close();
    hashing.release();
    expect(hashing.running()).toBe(false);
  } finally {
    await hashing.shutdown();
  }
});

describe.each([
  ["inline", inlineHashing],
  ["worker", worker],
] as const)("%s hashing", (_name, hashing) => {
  test("advance, checkpoint, rollback, digest", async () => {
    using dir = tempDir();
    const path = join(dir.path, "data");
    writeFileSync(path, "");
    const h = hashing.create("sha256", path);
    appendFileSync(path, "hello ");
    h.advance([enc("hello ")], 6);
    h.checkpoint();
    appendFileSync(path, "garbage");
    h.advance([enc("garbage")], 13);
    truncateSync(path, 6); // the failed chunk is cut off, perhaps before the thread read it
    h.rollback();
    appendFileSync(path, "world");
    h.advance([enc("world")], 11);
    expect(`sha256:${await h.digest()}`).toBe(sha256("hello world"));
  });

  test("through the registry: a broken chunk, then the rest, then the digest", async () => {
    await using r = await createTestRegistry({ hashing });
    const post = await r.call("POST", "/v2/h/blobs/uploads/");
    const loc = post.headers.get("location")!;
    await r.call("PATCH", loc, { body: "first-" });
    let i = 0;
    const broken = new ReadableStream<Uint8Array>({
      pull(c) {
        if (i++ === 0) c.enqueue(new Uint8Array(3 << 20).fill(7));
        else c.error(new Error("gone"));
      },
    });
    expect((await r.call("PATCH", loc, { body: broken })).status).toBe(400);
    await r.call("PATCH", loc, { body: "second" });
    expect((await r.call("PUT", `${loc}?digest=${sha256("first-second")}`)).status).toBe(201);
    const wrong = await r.call("POST", "/v2/h/blobs/uploads/");
    await r.call("PATCH", wrong.headers.get("location")!, { body: "abc" });
    expect((await r.call("PUT", `${wrong.headers.get("location")}?digest=${sha256("abd")}`)).status).toBe(400);
    const other = await r.call("POST", "/v2/h/blobs/uploads/");
    await r.call("PATCH", other.headers.get("location")!, { body: "by sha512" });
    expect((await r.call("PUT", `${other.headers.get("location")}?digest=${sha512("by sha512")}`)).status).toBe(201);
  });
});
