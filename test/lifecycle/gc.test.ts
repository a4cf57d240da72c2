/**
 * Garbage collection: what it removes and keeps, dry runs, untagged manifests and orphan
 * referrers, empty repositories, idle uploads — and a GC racing real concurrent pushes.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { createLifecycleRegistry } from "../helpers/lifecycle";
import { imageManifest, pushBlob, pushImage, sha256 } from "../helpers/registry";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";

const hex = (d: string) => d.slice(7);

describe("garbage collection", () => {
  test("removes blobs no manifest references and orphaned pool entries; keeps everything referenced; dry run changes nothing", async () => {
    await using r = await createLifecycleRegistry();
    const img = await pushImage(r, "app", "v1", "kept");
    const orphan = await pushBlob(r, "app", "orphan bytes");
    const shared = await pushBlob(r, "other", img.layer); // same bytes as a kept layer, unreferenced in "other"
    const dry = await r.lifecycle.gc({ dryRun: true });
    expect(dry.blobs.map((b) => `${b.repo}@${b.digest}`).sort()).toEqual([`app@${orphan}`, `other@${shared}`].sort());
    expect(dry.pool.map((p) => p.digest)).toEqual([orphan]);
    expect(dry.emptyRepositories).toEqual(["other"]);
    expect(existsSync(join(r.root, "app/blobs/sha256", hex(orphan)))).toBe(true);

    const real = await r.lifecycle.gc();
    expect(real.blobs.length).toBe(2);
    expect(real.pool.map((p) => p.digest)).toEqual([orphan]);
    expect(real.bytesFreed).toBe("orphan bytes".length);
    expect(existsSync(join(r.root, ".berth/pool/sha256", hex(orphan)))).toBe(false);
    expect(existsSync(join(r.root, "other"))).toBe(false);
    expect((await r.call("GET", `/v2/app/blobs/${orphan}`)).status).toBe(404);
    expect(await (await r.call("GET", "/v2/app/manifests/v1")).text()).toBe(img.manifest);
    for (const b of [img.config, img.layer]) expect(await (await r.call("GET", `/v2/app/blobs/${sha256(b)}`)).text()).toBe(b);
    expect(statSync(join(r.root, ".berth/pool/sha256", hex(sha256(img.layer)))).nlink).toBe(2);
    // A second pass finds nothing: collection is idempotent.
    const again = await r.lifecycle.gc();
    expect(again.blobs.length + again.pool.length + again.manifests.length).toBe(0);
  });

  test("the grace period protects recently linked blobs", async () => {
    await using r = await createLifecycleRegistry({ gc: { intervalMs: 0, graceMs: 3_600_000, untagged: false, orphanReferrers: true, emptyRepositories: true } });
    const orphan = await pushBlob(r, "app", "fresh orphan");
    const report = await r.lifecycle.gc();
    expect(report.blobs).toEqual([]);
    expect((await r.call("HEAD", `/v2/app/blobs/${orphan}`)).status).toBe(200);
  });

  test("referrers whose subject is gone are collected; untagged manifests only when configured", async () => {
    await using r = await createLifecycleRegistry();
    const img = await pushImage(r, "app", "v1", "subject");
    await pushBlob(r, "app", "{}");
    const referrer = imageManifest("{}", [], { subject: { mediaType: OCI_MANIFEST, digest: img.digest, size: img.manifest.length } });
    expect((await r.call("PUT", `/v2/app/manifests/${sha256(referrer)}`, { headers: { "Content-Type": OCI_MANIFEST }, body: referrer })).status).toBe(201);
    const loose = await pushImage(r, "app", "loose", "untagged later");
    expect((await r.call("DELETE", "/v2/app/manifests/loose")).status).toBe(202); // manifest stays, untagged

    expect((await r.lifecycle.gc()).manifests).toEqual([]); // subject present; untagged kept by default
    expect((await r.call("DELETE", `/v2/app/manifests/${img.digest}`)).status).toBe(202);
    const report = await r.lifecycle.gc();
    expect(report.manifests.map((m) => m.digest)).toEqual([sha256(referrer)]);
    expect((await r.call("GET", `/v2/app/manifests/${sha256(referrer)}`)).status).toBe(404);
    expect((await r.call("GET", `/v2/app/manifests/${loose.digest}`)).status).toBe(200);

    await using u = await createLifecycleRegistry({ gc: { intervalMs: 0, graceMs: 0, untagged: true, orphanReferrers: true, emptyRepositories: true } }, { root: r.root });
    const second = await u.lifecycle.gc();
    expect(second.manifests.map((m) => m.digest)).toEqual([loose.digest]);
    expect((await u.call("GET", `/v2/app/manifests/${loose.digest}`)).status).toBe(404);
    expect((await u.call("GET", `/v2/app/blobs/${sha256(loose.layer)}`)).status).toBe(404);
  });

  test("a pass leaves upload sessions alone: they expire on their own timer (storage/sessions.ts)", async () => {
    await using r = await createLifecycleRegistry();
    const res = await r.call("POST", "/v2/app/blobs/uploads/");
    const location = res.headers.get("location")!;
    await r.lifecycle.gc();
    expect((await r.call("GET", location)).status).toBe(204);
    expect(r.store.uploads.list().length).toBe(1);
  });
});

describe("GC racing pushes", () => {
  test("concurrent pushes while GC passes run: every acknowledged push is intact, old garbage is collected", async () => {
    const graceMs = 1500;
    await using r = await createLifecycleRegistry({ gc: { intervalMs: 0, graceMs, untagged: true, orphanReferrers: true, emptyRepositories: true } });
    // Old garbage: blobs in repositories with no manifest. Some will be reused by pushes below
    // (found by HEAD and not uploaded again, as clients do), the rest must be collected.
    const reused: string[] = [];
    const garbage: string[] = [];
    for (let i = 0; i < 6; i++) reused.push(await pushBlob(r, `race/r${i}`, `shared layer ${i}`));
    for (let i = 0; i < 6; i++) garbage.push(await pushBlob(r, `race/r${i}`, `garbage ${i}`));
    // Wait (bounded) until the garbage is older than the grace period, as a dry run sees it.
    for (let i = 0; i < 200; i++) {
      const dry = await r.lifecycle.gc({ dryRun: true });
      if (dry.blobs.length === 12) break;
      await Bun.sleep(25);
    }
    let stop = false;
    let passes = 0;
    const collected = new Set<string>();
    const gcLoop = (async () => {
      while (!stop) {
        const report = await r.lifecycle.gc();
        for (const b of report.blobs) collected.add(b.digest);
        passes++;
        await Bun.sleep(1);
      }
    })();
    const push = async (i: number) => {
      const repo = `race/r${i % 6}`;
      const config = JSON.stringify({ architecture: "amd64", os: "linux", n: i });
      const own = `own layer ${i} `.repeat(200);
      await pushBlob(r, repo, config);
      await pushBlob(r, repo, own);
      const shared = `shared layer ${i % 6}`;
      const head = await r.call("HEAD", `/v2/${repo}/blobs/${sha256(shared)}`);
      if (head.status !== 200) await pushBlob(r, repo, shared);
      await Bun.sleep(5); // the window a client spends between its blobs and its manifest
      const manifest = imageManifest(config, [own, shared]);
      const res = await r.call("PUT", `/v2/${repo}/manifests/t${i}`, { headers: { "Content-Type": OCI_MANIFEST }, body: manifest });
      if (res.status !== 201) console.error(`push ${i}: ${res.status} ${await res.text()}`);
      return { repo, tag: `t${i}`, status: res.status, manifest, blobs: [config, own, shared] };
    };
    // Waves of 30 concurrent pushes until several GC passes have overlapped them (bounded).
    const results: Awaited<ReturnType<typeof push>>[] = [];
    for (let wave = 0; wave < 6 && (wave === 0 || passes <= 2); wave++) {
      results.push(...(await Promise.all(Array.from({ length: 30 }, (_, i) => push(wave * 30 + i)))));
    }
    stop = true;
    await gcLoop;
    const final = await r.lifecycle.gc();
    expect(passes).toBeGreaterThan(2);
    expect(results.map((x) => x.status)).toEqual(results.map(() => 201));
    for (const x of results) {
      expect(await (await r.call("GET", `/v2/${x.repo}/manifests/${x.tag}`)).text()).toBe(x.manifest);
      for (const b of x.blobs) expect(await (await r.call("GET", `/v2/${x.repo}/blobs/${sha256(b)}`)).text()).toBe(b);
    }
    for (const g of garbage) {
      expect(collected.has(g) || final.blobs.some((b) => b.digest === g)).toBe(true);
      expect(existsSync(join(r.root, ".berth/pool/sha256", hex(g)))).toBe(false);
    }
  }, 30_000);
});
