import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Xxh64 } from "../../daemon/platform/xxh64";

// The JavaScript XXH64 (the Node.js build's) must agree with Bun's native one on every
// length class (under 4, 4-7, 8-31, 32 and over) and however the input is split.
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

test("equals Bun.hash.xxHash64 for lengths 0..200, fed whole", () => {
  for (let n = 0; n <= 200; n++) {
    const data = bytes(n, n);
    expect(new Xxh64().update(data).digest()).toBe(Bun.hash.xxHash64(data));
  }
});

test("equals Bun.hash.xxHash64 for 1 MiB + 13 bytes fed in uneven pieces", () => {
  const data = bytes((1 << 20) + 13, 7);
  const h = new Xxh64();
  let at = 0;
  for (const size of [1, 3, 31, 32, 33, 4096, 7, 65_537]) {
    h.update(data.subarray(at, at + size));
    at += size;
  }
  h.update(data.subarray(at));
  expect(h.digest()).toBe(Bun.hash.xxHash64(data));
});

test("the published test vector: the empty input", () => {
  expect(new Xxh64().digest().toString(16)).toBe("ef46db3751d8e999");
});

test("xxh64File streams a file to the same value", async () => {
  const dir = mkdtempSync(join(tmpdir(), "berth-xxh-"));
  try {
    const data = bytes(300_001, 3);
    writeFileSync(join(dir, "f"), data);
    const { xxh64File } = await import("../../daemon/platform/hash");
    expect(await xxh64File(join(dir, "f"))).toBe(Bun.hash.xxHash64(data).toString(16).padStart(16, "0"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
