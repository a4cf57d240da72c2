/**
 * Touch marks and settling: a blob referenced by a deleted manifest loses its mark and
 * its file's age stops protecting it; a later touch or a later change of its file protects it
 * again; another repository's later touch of the digest keeps the digest's mark.
 */
import { expect, test } from "bun:test";
import { Touches } from "../../daemon/lifecycle/touches";

test("settle drops the marks and lets the file's age go, until the blob is touched or linked again", () => {
  let now = 1_000;
  const t = new Touches(3_600_000, () => now);
  t.touch("a", "sha256:1");
  expect(t.blobIsFresh("a", "sha256:1")).toBe(true);
  expect(t.digestIsFresh("sha256:1")).toBe(true);
  now = 2_000;
  t.settle("a", ["sha256:1"]);
  expect(t.blobIsFresh("a", "sha256:1")).toBe(false);
  expect(t.digestIsFresh("sha256:1")).toBe(false);
  expect(t.settledAfter("a", "sha256:1", 1_500)).toBe(true); // file last changed before the manifest
  expect(t.settledAfter("a", "sha256:1", 2_500)).toBe(false); // linked again afterwards
  expect(t.settledAfter("b", "sha256:1", 0)).toBe(false); // another repository
  now = 3_000;
  t.touch("a", "sha256:1");
  expect(t.settledAfter("a", "sha256:1", 1_500)).toBe(false);
  expect(t.blobIsFresh("a", "sha256:1")).toBe(true);
});

test("another repository's later touch of the digest survives a settle", () => {
  let now = 1_000;
  const t = new Touches(3_600_000, () => now);
  t.touch("a", "sha256:2");
  now = 1_500;
  t.touch("b", "sha256:2");
  now = 2_000;
  t.settle("a", ["sha256:2"]);
  expect(t.digestIsFresh("sha256:2")).toBe(true);
  expect(t.blobIsFresh("b", "sha256:2")).toBe(true);
});
