/** Per-repository memory is bounded by bytes: the index.json cache and the registry's stamp memo evict. */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { INDEX_ENTRY_OVERHEAD, IndexCache } from "../../daemon/storage/indexcache";
import { StampMemo } from "../../daemon/registry/stamps";
import { ParseCache, weighParsed } from "../../daemon/lifecycle/refs";
import type { RepoIndex } from "../../daemon/storage/api";
import { Layouts } from "../../daemon/storage/layouts";
import { Paths } from "../../daemon/storage/paths";
import { realDisk } from "../../daemon/platform/disk";
import { createLogger } from "../../daemon/log";

const fake = (stamp: string) => ({ stamp }) as unknown as RepoIndex;

test("the index cache keeps at most its budget, evicting the least recently used", () => {
  const cache = new IndexCache(3 * (100 + INDEX_ENTRY_OVERHEAD));
  for (const name of ["a", "b", "c"]) cache.set(name, fake(name), 100);
  expect(cache.count()).toBe(3);
  expect(cache.get("a")?.stamp).toBe("a"); // a is now the most recently used
  cache.set("d", fake("d"), 100);
  expect(cache.count()).toBe(3);
  expect(cache.get("b")).toBeUndefined(); // b was the least recently used
  expect(cache.get("a")?.stamp).toBe("a");
  expect(cache.size()).toBeLessThanOrEqual(3 * (100 + INDEX_ENTRY_OVERHEAD));
  cache.set("big", fake("big"), 10_000); // larger than the whole budget: not kept, nothing evicted for it
  expect(cache.get("big")).toBeUndefined();
  expect(cache.count()).toBe(3);
  cache.set("a", fake("a2"), 100); // replacing an entry does not count it twice
  expect(cache.size()).toBe(3 * (100 + INDEX_ENTRY_OVERHEAD));
  cache.delete("a");
  expect(cache.size()).toBe(2 * (100 + INDEX_ENTRY_OVERHEAD));
  cache.clear(); // an idle registry over its memory limit
  expect([cache.count(), cache.size(), cache.get("c")]).toEqual([0, 0, undefined]);
  cache.set("e", fake("e"), 100); // and it fills again
  expect(cache.size()).toBe(100 + INDEX_ENTRY_OVERHEAD);
});

test("the stamp memo keeps at most its budget, evicting the least recently used", () => {
  const memo = new StampMemo(1000);
  for (let i = 0; i < 100; i++) memo.set(`repo/${i}`, `stamp-${i}`);
  expect(memo.size()).toBeLessThanOrEqual(1000);
  expect(memo.get("repo/0")).toBeUndefined();
  expect(memo.get("repo/99")).toBe("stamp-99");
  memo.delete("repo/99");
  expect(memo.get("repo/99")).toBeUndefined();
});

test("layouts serve every repository right while keeping only what the budget holds parsed", async () => {
  const root = mkdtempSync(join(tmpdir(), "berth-indexcache-"));
  try {
    const log = createLogger("error", "json", () => {});
    const budget = 4 * 1024;
    const layouts = new Layouts(new Paths(root), realDisk, log, undefined, undefined, budget);
    const digest = (i: number) => `sha256:${i.toString(16).padStart(64, "0")}`;
    for (let i = 0; i < 50; i++) {
      await layouts.ensure(`r/${i}`);
      await layouts.update(`r/${i}`, () => [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: digest(i), size: i, annotations: { "org.opencontainers.image.ref.name": `t${i}` } }]);
    }
    const held = (layouts as unknown as { cache: IndexCache }).cache;
    expect(held.size()).toBeLessThanOrEqual(budget);
    expect(held.count()).toBeLessThan(50);
    for (let i = 0; i < 50; i++) expect((await layouts.index(`r/${i}`))?.tags.get(`t${i}`)?.digest).toBe(digest(i));
    expect(held.size()).toBeLessThanOrEqual(budget);
    expect(layouts.stamp("r/7")).toBe((await layouts.index("r/7"))!.stamp);
    expect(layouts.stamp("r/none")).toBeUndefined();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("garbage collection's parse cache keeps at most its budget, evicting the oldest", () => {
  const cache = new ParseCache(10_000);
  const d = (i: number) => `sha256:${i.toString(16).padStart(64, "0")}`;
  for (let i = 0; i < 200; i++) cache.set(d(i), { blobs: [d(i + 1000), d(i + 2000)], children: [] });
  expect(cache.size()).toBeLessThanOrEqual(10_000);
  expect(cache.get(d(0))).toBeUndefined();
  expect(cache.get(d(199))?.blobs).toEqual([d(1199), d(2199)]);
  expect(weighParsed(d(1), { blobs: [d(2)], children: [] })).toBeGreaterThan(2 * 2 * 71);
});

test("the manifest cache charges each entry its overhead, so small manifests cannot hold many times its budget", async () => {
  const { MANIFEST_ENTRY_OVERHEAD, ManifestCache } = await import("../../daemon/storage/cache");
  const budget = 64 * 1024;
  const cache = new ManifestCache(budget);
  const body = new Uint8Array(400); // a typical image manifest's size
  for (let i = 0; i < 1000; i++) cache.set(`sha256:${i.toString(16).padStart(64, "0")}`, { bytes: body, mediaType: "m" });
  const held = Array.from({ length: 1000 }, (_, i) => cache.get(`sha256:${i.toString(16).padStart(64, "0")}`)).filter(Boolean).length;
  // counting bodies alone kept 163 of them (64 KiB / 400 B): ~1.4 KiB of memory each
  expect(held).toBe(Math.floor(budget / (400 + MANIFEST_ENTRY_OVERHEAD)));
  expect(cache.size()).toBe(held * (400 + MANIFEST_ENTRY_OVERHEAD));
  expect(cache.size()).toBeLessThanOrEqual(budget);
  cache.delete("sha256:" + (999).toString(16).padStart(64, "0"));
  expect(cache.size()).toBe((held - 1) * (400 + MANIFEST_ENTRY_OVERHEAD));
});
