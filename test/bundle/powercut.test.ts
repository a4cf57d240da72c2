/**
 * A power cut in the middle of a bundle import (the simulator, test/helpers/simdisk.ts),
 * at every point of the import in turn: on restart no tag points at a partial image, and a
 * rerun of the same import completes, skipping what was committed. (The invariants of the
 * cut itself, for random cuts, are the "bundle" workload of test/storage/powercut.test.ts.)
 */
import { describe, expect, test } from "bun:test";
import { openRegistry, ROOT } from "../helpers/powercut";
import { BUNDLE_IMAGES, importTestBundle } from "../helpers/powercut-workloads";
import { sha256 } from "../helpers/registry";
import { SimDisk } from "../helpers/simdisk";
import { parseDigest } from "../../daemon/oci/digest";

async function freshDisk(): Promise<SimDisk> {
  const disk = new SimDisk();
  await disk.mountPoint(ROOT);
  return disk;
}

describe("power cut mid-import", () => {
  test("cut at every 7th disk operation: partial images are never tagged; the rerun completes and skips committed blobs", async () => {
    // the operations of a whole import
    const whole = await freshDisk();
    const base = whole.counts.ops;
    let total = 0;
    {
      const r = await openRegistry(whole);
      const first = await importTestBundle(r);
      expect(first.manifestsPut).toBe(BUNDLE_IMAGES.length);
      total = first.blobsUploaded;
      await r[Symbol.asyncDispose]();
    }
    const ops = whole.counts.ops - base;
    expect(ops).toBeGreaterThan(20);
    let resumedWithLess = 0;
    let cuts = 0;
    for (let cut = 1; cut < ops; cut += 7) {
      const disk = await freshDisk();
      const r = await openRegistry(disk);
      disk.cutAt = disk.counts.ops + cut;
      await importTestBundle(r).then(
        () => undefined,
        () => undefined,
      );
      await Promise.resolve(r[Symbol.asyncDispose]()).catch(() => {});
      if (!disk.dead) continue; // the cut fell after the import's last operation (closing the registry)
      cuts++;
      const after = await openRegistry(disk.survivors());
      try {
        for (const b of BUNDLE_IMAGES) {
          const res = await after.call("GET", `/v2/${b.repo}/manifests/${b.tag}`);
          if (res.status !== 200) continue;
          expect(await res.text()).toBe(b.img.manifest);
          for (const blob of [b.img.config, ...b.img.layers]) expect((await after.call("HEAD", `/v2/${b.repo}/blobs/${sha256(blob)}`)).status).toBe(200);
        }
        const rerun = await importTestBundle(after);
        if (rerun.blobsUploaded < total) resumedWithLess++;
        for (const b of BUNDLE_IMAGES) {
          const res = await after.call("GET", `/v2/${b.repo}/manifests/${b.tag}`);
          expect(res.status).toBe(200);
          expect(await res.text()).toBe(b.img.manifest);
          for (const blob of [b.img.config, ...b.img.layers]) {
            // read through the storage seam (a GET's body would be a real file, which the simulator has not)
            const got = await after.store.blobs.read(b.repo, parseDigest(sha256(blob))!);
            expect(new TextDecoder().decode(got)).toBe(blob);
          }
        }
      } finally {
        await Promise.resolve(after[Symbol.asyncDispose]()).catch(() => {});
      }
    }
    expect(cuts).toBeGreaterThan(ops / 7 - 3);
    // later cuts leave committed blobs behind that the rerun skipped
    expect(resumedWithLess).toBeGreaterThan(0);
  });
});
