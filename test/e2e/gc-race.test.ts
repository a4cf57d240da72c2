/**
 * Issue 9, item 1, against the real daemon: with `[gc] grace = 0` and untagged manifests
 * kept (the configuration in which acknowledged images lost blobs), several clients push
 * over HTTP while GC passes run back to back through the admin API. Every image
 * acknowledged with 201 must be complete afterwards, and a refused manifest push must be
 * MANIFEST_BLOB_UNKNOWN, never a 500.
 */
import { describe, expect, test } from "bun:test";
import { startDaemon } from "../helpers/daemon";
import { runGcStress } from "../helpers/gcstress";

describe("GC passes racing real pushes over HTTP", () => {
  test("grace 0: every acknowledged image is complete, refusals are MANIFEST_BLOB_UNKNOWN", async () => {
    await using d = await startDaemon({ storage: "\n[gc]\ninterval = 0\ngrace = 0\nuntagged = false\n[scrub]\ninterval = 0" });
    const r = await runGcStress({ url: d.url, clients: 6, durationMs: 3000, gcGapMs: 20 });
    expect(r.errors).toEqual([]);
    expect(r.broken).toEqual([]);
    // The run did what it is for: many pushes and passes overlapped, and GC did collect garbage.
    expect(r.acknowledged).toBeGreaterThan(20);
    expect(r.indexes).toBeGreaterThan(0);
    expect(r.gcPasses).toBeGreaterThan(5);
    expect(r.blobsCollected).toBeGreaterThan(0);
    expect(r.blobsChecked).toBeGreaterThan(r.acknowledged * 3);
    // Manual passes are logged, one line each.
    expect(d.logs()).toContain('"msg":"gc: pass done"');
  }, 30_000);
});
