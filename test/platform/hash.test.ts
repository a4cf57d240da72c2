/**
 * Hashing files (platform/hash.ts): a small file, by the caller's size hint, is read
 * synchronously into one shared buffer (a scrub hashes 100,000s of tiny blobs, and a trip
 * through the thread pool per read made garbage faster than it was collected); a file that
 * turns out larger than its hint, or one given no hint, is streamed. The digests are the
 * same either way.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SYNC_HASH_BYTES, hashFile } from "../../daemon/platform/hash";

const dir = mkdtempSync(join(tmpdir(), "berth-hash-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bytesOf = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);
const expected = (alg: "sha256" | "sha512", b: Uint8Array) => createHash(alg).update(b).digest("hex");
let files = 0;
const fileOf = (b: Uint8Array) => {
  const path = join(dir, `f${files++}`);
  writeFileSync(path, b);
  return path;
};

describe("hashFile", () => {
  for (const size of [0, 1, 4096, SYNC_HASH_BYTES - 1, SYNC_HASH_BYTES, SYNC_HASH_BYTES + 1, 3 * 256 * 1024 + 5]) {
    test(`${size} bytes: the same digest with the true size as hint, without a hint, and with a hint too small (the file grew)`, async () => {
      const b = bytesOf(size);
      const path = fileOf(b);
      for (const alg of ["sha256", "sha512"] as const) {
        expect(await hashFile(alg, path, size)).toBe(expected(alg, b));
        expect(await hashFile(alg, path)).toBe(expected(alg, b));
        expect(await hashFile(alg, path, 0)).toBe(expected(alg, b));
      }
    });
  }

  test("a small file is hashed without a trip through the thread pool: its promise settles within microtasks", async () => {
    const b = bytesOf(1000);
    const path = fileOf(b);
    let hex: string | undefined;
    void hashFile("sha256", path, b.length).then((h) => (hex = h));
    for (let i = 0; i < 5; i++) await Promise.resolve();
    expect(hex).toBe(expected("sha256", b));
    // a large one still goes through asynchronous reads (the event loop keeps turning)
    let big: string | undefined;
    const large = bytesOf(SYNC_HASH_BYTES + 1);
    const done = hashFile("sha256", fileOf(large), large.length).then((h) => (big = h));
    for (let i = 0; i < 5; i++) await Promise.resolve();
    expect(big).toBeUndefined();
    await done;
    expect(big).toBe(expected("sha256", large));
  });

  test("a missing file rejects with ENOENT on either path (scrub reads that as removed meanwhile)", async () => {
    const gone = join(dir, "missing");
    await expect(hashFile("sha256", gone, 10)).rejects.toMatchObject({ code: "ENOENT" });
    await expect(hashFile("sha256", gone)).rejects.toMatchObject({ code: "ENOENT" });
  });
});
