/** Scrub: a corrupted blob is found, quarantined, never served again, and can be pushed again. */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createLifecycleRegistry } from "../helpers/lifecycle";
import { pushBlob, pushImage, sha256 } from "../helpers/registry";

describe("scrub", () => {
  test("a blob whose bytes changed on disk is quarantined, unlinked everywhere, counted, and re-push works", async () => {
    await using r = await createLifecycleRegistry();
    const img = await pushImage(r, "a", "v1", "scrubbed");
    await pushBlob(r, "b", img.layer); // the same inode linked into a second repository
    const layer = sha256(img.layer);
    const clean = await r.lifecycle.scrub();
    expect(clean.quarantined).toEqual([]);
    expect(clean.blobsChecked).toBe(3); // config, layer, manifest: each inode once

    // Bit rot: overwrite the pool inode in place (all hard links see it).
    const pool = join(r.root, ".berth/pool/sha256", layer.slice(7));
    const rotten = img.layer.replace("layer", "LAYER");
    writeFileSync(pool, rotten);
    const report = await r.lifecycle.scrub();
    expect(report.quarantined.map((q) => q.digest)).toEqual([layer]);
    const q = report.quarantined[0]!;
    expect(q.actual).toBe(sha256(rotten));
    expect(q.repositories.sort()).toEqual(["a", "b"]);
    expect(readFileSync(q.file, "utf8")).toBe(rotten);
    expect(existsSync(pool)).toBe(false);
    for (const repo of ["a", "b"]) expect((await r.call("GET", `/v2/${repo}/blobs/${layer}`)).status).toBe(404);
    expect(r.lifecycle.scrubber.counters.mismatches).toBe(1);
    expect(r.lifecycle.scrubber.quarantine().map((e) => e.digest)).toEqual([layer]);
    // Everything else is still served; the blob can be pushed again and is served intact.
    expect(await (await r.call("GET", "/v2/a/manifests/v1")).text()).toBe(img.manifest);
    await pushBlob(r, "a", img.layer);
    expect(await (await r.call("GET", `/v2/a/blobs/${layer}`)).text()).toBe(img.layer);
    expect((await r.lifecycle.scrub()).quarantined).toEqual([]);
  });

  test("a corrupted manifest blob is not served from the manifest cache either", async () => {
    await using r = await createLifecycleRegistry();
    const img = await pushImage(r, "a", "v1", "manifest rot");
    expect((await r.call("GET", "/v2/a/manifests/v1")).status).toBe(200); // now cached
    writeFileSync(join(r.root, "a/blobs/sha256", img.digest.slice(7)), "{}");
    expect((await r.lifecycle.scrub()).quarantined.map((x) => x.digest)).toEqual([img.digest]);
    expect((await r.call("GET", "/v2/a/manifests/v1")).status).toBe(404);
  });
});
