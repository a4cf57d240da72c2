/**
 * What one GC pass decides (issue 9, items 6 and 7, and the operator defects): a long
 * referrer chain goes in one pass, dry run and real run report the same, manifests that
 * cannot be parsed keep what they mention without stopping the rest of the repository,
 * the grace period's holdings are reported with a time, and manual passes log one line.
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../daemon/log";
import { realDisk } from "../../daemon/platform/disk";
import type { GcReport } from "../../daemon/lifecycle/gc";
import { OCI_INDEX, OCI_MANIFEST, REF_NAME } from "../../daemon/oci/mediatypes";
import { createLifecycleRegistry, testLifecycleOptions } from "../helpers/lifecycle";
import { imageManifest, pushBlob, pushImage, sha256 } from "../helpers/registry";

const EMPTY = "{}";
const gcOptions = (over: Partial<ReturnType<typeof testLifecycleOptions>["gc"]> = {}) => ({ gc: { ...testLifecycleOptions().gc, ...over } });

/** Writes a layout `repo` under `root` holding `blobs`, listing `entries` in index.json. */
function writeLayout(root: string, repo: string, blobs: string[], entries: object[]): void {
  const dir = join(root, repo, "blobs", "sha256");
  mkdirSync(dir, { recursive: true });
  for (const b of blobs) writeFileSync(join(dir, sha256(b).slice(7)), b);
  writeFileSync(join(root, repo, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(root, repo, "index.json"), JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries }));
}

const counts = (r: GcReport) => ({
  manifests: r.manifests.map((m) => `${m.repo}@${m.digest}`).sort(),
  blobs: r.blobs.map((b) => `${b.repo}@${b.digest}`).sort(),
  pool: r.pool.map((p) => p.digest).sort(),
  emptyRepositories: [...r.emptyRepositories].sort(),
  bytesFreed: r.bytesFreed,
});

describe("referrer chains", () => {
  test("a chain of 2,000 referrers whose root is gone is dropped whole in one pass; the dry run says the same", async () => {
    const root = mkdtempSync(join(tmpdir(), "berth-chain-"));
    try {
      const subject = imageManifest(JSON.stringify({ os: "linux" }), ["gone subject layer"]);
      const manifests: string[] = [];
      let previous = { mediaType: OCI_MANIFEST, digest: sha256(subject), size: subject.length };
      for (let i = 0; i < 2000; i++) {
        const m = imageManifest(EMPTY, [], { artifactType: "application/x.sig", subject: previous, annotations: { n: String(i) } });
        manifests.push(m);
        previous = { mediaType: OCI_MANIFEST, digest: sha256(m), size: m.length };
      }
      const kept = imageManifest(EMPTY, [], { annotations: { kept: "yes" } });
      // The subject's manifest was deleted: the chain's first link names a digest that is not there.
      writeLayout(root, "chain", [...manifests, EMPTY, kept], [
        { mediaType: OCI_MANIFEST, digest: sha256(kept), size: kept.length, annotations: { [REF_NAME]: "kept" } },
        ...manifests.map((m) => ({ mediaType: OCI_MANIFEST, digest: sha256(m), size: m.length })),
      ]);
      await using r = await createLifecycleRegistry({}, { root });
      const dry = await r.lifecycle.gc({ dryRun: true });
      const real = await r.lifecycle.gc();
      expect(real.manifests.length).toBe(2000);
      expect(new Set(real.manifests.map((m) => m.digest))).toEqual(new Set(manifests.map(sha256)));
      expect(counts(dry)).toEqual(counts(real));
      expect(real.blobs.length).toBe(2000); // the referrers' own blobs; the empty config stays with "kept"
      const again = await r.lifecycle.gc();
      expect(again.manifests.length + again.blobs.length).toBe(0);
      expect((await r.call("GET", `/v2/chain/manifests/${sha256(manifests[1999]!)}`)).status).toBe(404);
      expect((await r.call("GET", "/v2/chain/manifests/kept")).status).toBe(200);
      const referrers = (await (await r.call("GET", `/v2/chain/referrers/${sha256(manifests[0]!)}`)).json()) as { manifests: unknown[] };
      expect(referrers.manifests).toEqual([]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 30_000);
});

describe("dry run and real run", () => {
  test("report the same over the same store: untagged manifests, orphan referrers, shared and unshared blobs, held-back ones", async () => {
    const graceMs = 400;
    await using r = await createLifecycleRegistry(gcOptions({ graceMs, untagged: true }));
    const img = await pushImage(r, "a", "v1", "kept");
    const loose = await pushImage(r, "a", "loose", "untagged later");
    expect((await r.call("DELETE", "/v2/a/manifests/loose")).status).toBe(202);
    await pushBlob(r, "a", EMPTY);
    const ref = imageManifest(EMPTY, [], { subject: { mediaType: OCI_MANIFEST, digest: loose.digest, size: loose.manifest.length } });
    expect((await r.call("PUT", `/v2/a/manifests/${sha256(ref)}`, { headers: { "Content-Type": OCI_MANIFEST }, body: ref })).status).toBe(201);
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: loose.digest, size: loose.manifest.length }] });
    expect((await r.call("PUT", `/v2/a/manifests/${sha256(index)}`, { headers: { "Content-Type": OCI_INDEX }, body: index })).status).toBe(201);
    await pushBlob(r, "a", "unshared garbage");
    // One inode, unreferenced in two repositories: unlinking it from one must not make the other look young.
    await pushBlob(r, "b", "shared garbage");
    await pushBlob(r, "c", "shared garbage");
    await pushBlob(r, "b", img.layer);
    // Wait (bounded) until everything is past the grace period, as a dry run sees it.
    let dry = await r.lifecycle.gc({ dryRun: true });
    for (let i = 0; i < 200 && dry.heldBack.blobs + dry.heldBack.manifests > 0; i++) {
      await Bun.sleep(25);
      dry = await r.lifecycle.gc({ dryRun: true });
    }
    expect(dry.heldBack.blobs + dry.heldBack.manifests).toBe(0);
    const real = await r.lifecycle.gc();
    expect(counts(real)).toEqual(counts(dry));
    expect(counts(real).manifests).toEqual([`a@${loose.digest}`, `a@${sha256(ref)}`, `a@${sha256(index)}`].sort());
    expect(counts(real).emptyRepositories).toEqual(["b", "c"]);
    expect(real.pool.map((p) => p.digest).sort()).toEqual([sha256("unshared garbage"), sha256("shared garbage"), sha256(loose.layer), sha256(loose.config), sha256(EMPTY), loose.digest, sha256(ref), sha256(index)].sort());
    for (const b of [img.manifest, img.config, img.layer]) expect((await r.call("GET", `/v2/a/blobs/${sha256(b)}`)).status).toBe(200);
  });

  test("with retention: a dry run that treats what retention would delete as gone reports what the real retention + GC remove", async () => {
    const policy = { repositories: ["app"], keepLast: 1, keepTags: [], keepWithinMs: 0, untaggedAfterMs: 0 };
    await using r = await createLifecycleRegistry({ ...gcOptions(), retention: { intervalMs: 0, dryRun: false, policies: [policy] } });
    const old = await pushImage(r, "app", "v1", "old");
    await pushBlob(r, "app", EMPTY);
    const ref = imageManifest(EMPTY, [], { subject: { mediaType: OCI_MANIFEST, digest: old.digest, size: old.manifest.length } });
    expect((await r.call("PUT", `/v2/app/manifests/${sha256(ref)}`, { headers: { "Content-Type": OCI_MANIFEST }, body: ref })).status).toBe(201);
    await pushImage(r, "app", "v2", "new");
    const plan = await r.lifecycle.retention({ dryRun: true });
    expect(plan.manifests.map((m) => m.digest).sort()).toEqual([old.digest, sha256(ref)].sort()); // the image and its referrer
    const dry = await r.lifecycle.gc({ dryRun: true, excluded: new Map([["app", new Set(plan.manifests.map((m) => m.digest))]]) });
    expect((await r.lifecycle.retention()).manifests.length).toBe(2);
    const real = await r.lifecycle.gc();
    expect(counts(real).blobs).toEqual([sha256(old.config), sha256(old.layer), sha256(EMPTY)].map((d) => `app@${d}`).sort());
    expect(counts(dry)).toEqual(counts(real));
  });
});

describe("manifests that cannot be parsed", () => {
  test("keep every digest they mention; the rest of the repository is still collected, and they are reported", async () => {
    await using r = await createLifecycleRegistry(gcOptions(), {});
    const img = await pushImage(r, "app", "v1", "good");
    const pinnedByCorrupt = await pushBlob(r, "app", "named only by a corrupt manifest");
    const pinnedByLayer = await pushBlob(r, "app", "named only by a layer listed as a manifest");
    const garbage = await pushBlob(r, "app", "named by nobody");
    // A layer (not JSON) that an index lists as its child, the way issue 9 item 7 found it.
    const layerAsChild = `tar bytes that happen to name ${pinnedByLayer}`;
    await pushBlob(r, "app", layerAsChild);
    const badIndex = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(layerAsChild), size: layerAsChild.length }] });
    const corrupt = `{"schemaVersion":2,"config":{"digest":"${pinnedByCorrupt}"`; // truncated JSON
    await pushBlob(r, "app", badIndex);
    await pushBlob(r, "app", corrupt);
    // Listed without the registry's checks, as a layout dropped into the root would be.
    await r.store.indexes.update("app", (entries) => [
      ...entries,
      { mediaType: OCI_INDEX, digest: sha256(badIndex), size: badIndex.length, annotations: { [REF_NAME]: "bad" } },
      { mediaType: OCI_MANIFEST, digest: sha256(corrupt), size: corrupt.length, annotations: { [REF_NAME]: "corrupt" } },
    ]);
    const dry = await r.lifecycle.gc({ dryRun: true });
    const report = await r.lifecycle.gc();
    expect(counts(dry)).toEqual(counts(report));
    expect(report.skipped).toEqual([]);
    expect(report.blobs.map((b) => b.digest)).toEqual([garbage]);
    expect(report.unreadable.map((u) => u.digest).sort()).toEqual([sha256(layerAsChild), sha256(corrupt)].sort());
    for (const u of report.unreadable) expect(u.reason).toMatch(/not JSON/);
    for (const d of [pinnedByCorrupt, pinnedByLayer, sha256(layerAsChild), sha256(badIndex), sha256(corrupt), img.digest, sha256(img.layer)]) {
      expect((await r.call("HEAD", `/v2/app/blobs/${d}`)).status).toBe(200);
    }
  });

  test("a manifest too large to read holds its repository back (reported), unless it is named as a blob or declared as one", async () => {
    await using r = await createLifecycleRegistry({ ...gcOptions(), maxManifestBytes: 2048 });
    const big = `{"schemaVersion":2,"layers":[],"pad":"${"x".repeat(4096)}"}`;
    for (const repo of ["opaque", "named"]) {
      await pushBlob(r, repo, big);
      await pushBlob(r, repo, `garbage of ${repo}`);
    }
    const img = await pushImage(r, "named", "v1", "names the big blob", {});
    const naming = imageManifest(JSON.stringify({ os: "linux" }), [big]);
    await pushBlob(r, "named", JSON.stringify({ os: "linux" }));
    expect((await r.call("PUT", "/v2/named/manifests/v2", { headers: { "Content-Type": OCI_MANIFEST }, body: naming })).status).toBe(201);
    for (const repo of ["opaque", "named"]) {
      await r.store.indexes.update(repo, (entries) => [...entries, { mediaType: OCI_MANIFEST, digest: sha256(big), size: big.length }]);
    }
    // An index whose child descriptor declares a layer type for the large blob (issue 9 item 7).
    await pushBlob(r, "child", big);
    await pushBlob(r, "child", "garbage of child");
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha256(big), size: big.length }] });
    await pushBlob(r, "child", index);
    await r.store.indexes.update("child", (entries) => [...entries, { mediaType: OCI_INDEX, digest: sha256(index), size: index.length, annotations: { [REF_NAME]: "v1" } }]);
    const report = await r.lifecycle.gc();
    expect(report.skipped).toEqual(["opaque"]);
    expect(report.blobs.map((b) => `${b.repo}@${b.digest}`).sort()).toEqual([`child@${sha256("garbage of child")}`, `named@${sha256("garbage of named")}`]);
    expect(report.unreadable.map((u) => `${u.repo}@${u.digest}`).sort()).toEqual([`child@${sha256(big)}`, `named@${sha256(big)}`, `opaque@${sha256(big)}`]);
    expect((await r.call("HEAD", `/v2/child/blobs/${sha256(big)}`)).status).toBe(200);
    expect((await r.call("HEAD", `/v2/opaque/blobs/${sha256("garbage of opaque")}`)).status).toBe(200);
    expect((await r.call("GET", `/v2/named/manifests/${img.digest}`)).status).toBe(200);
  });
});

describe("a pass that cannot write index.json", () => {
  test("keeps the manifests it would drop, still frees what nothing references, and finishes", async () => {
    let full = false;
    const disk = {
      ...realDisk,
      writeAtomic(path: string, bytes: Uint8Array | string) {
        if (full && path.endsWith("index.json")) return Promise.reject(Object.assign(new Error(`ENOSPC: no space left on device, write '${path}'`), { code: "ENOSPC" }));
        return realDisk.writeAtomic(path, bytes);
      },
    };
    await using r = await createLifecycleRegistry(gcOptions({ untagged: true }), { disk });
    const kept = await pushImage(r, "app", "v1", "kept");
    const loose = await pushImage(r, "app", "loose", "untagged");
    expect((await r.call("DELETE", "/v2/app/manifests/loose")).status).toBe(202);
    const garbage = await pushBlob(r, "app", "garbage");
    full = true;
    const report = await r.lifecycle.gc();
    expect(report.manifests).toEqual([]);
    expect(report.blobs.map((b) => b.digest)).toEqual([garbage]);
    for (const d of [kept.digest, loose.digest]) expect((await r.call("GET", `/v2/app/manifests/${d}`)).status).toBe(200);
    for (const b of [loose.config, loose.layer]) expect((await r.call("HEAD", `/v2/app/blobs/${sha256(b)}`)).status).toBe(200);
    full = false;
    expect((await r.lifecycle.gc()).manifests.map((m) => m.digest)).toEqual([loose.digest]);
  });
});

describe("the grace period's holdings", () => {
  test("a pass that frees nothing because of grace says what it held back and from when it is collectable", async () => {
    const graceMs = 3_600_000;
    await using r = await createLifecycleRegistry(gcOptions({ graceMs }));
    const before = Date.now();
    await pushBlob(r, "app", "young garbage");
    await pushBlob(r, "app", "more young garbage");
    const after = Date.now();
    const report = await r.lifecycle.gc();
    expect(report.blobs).toEqual([]);
    expect(report.heldBack.blobs).toBe(2);
    expect(report.heldBack.bytes).toBe("young garbage".length + "more young garbage".length);
    const earliest = Date.parse(report.heldBack.earliest!);
    expect(earliest).toBeGreaterThanOrEqual(before + graceMs - 1000);
    expect(earliest).toBeLessThanOrEqual(after + graceMs + 1000);
    expect(Date.parse(report.heldBack.latest!)).toBeGreaterThanOrEqual(earliest);
  });
});

describe("the grace period's holdings in the pool", () => {
  test("a pool entry whose digest a client touched is held back, its bytes counted once, until the touch expires", async () => {
    const graceMs = 3_600_000;
    await using r = await createLifecycleRegistry(gcOptions({ graceMs }));
    const body = "pool bytes a client just looked at";
    const digest = await pushBlob(r, "app", body);
    const before = Date.now();
    // the HEAD marks the digest; the DELETE leaves the bytes in the pool only
    expect((await r.call("HEAD", `/v2/app/blobs/${digest}`)).status).toBe(200);
    expect((await r.call("DELETE", `/v2/app/blobs/${digest}`)).status).toBe(202);
    const after = Date.now();
    const report = await r.lifecycle.gc();
    expect(report.pool).toEqual([]);
    expect(report.heldBack).toMatchObject({ blobs: 0, pool: 1, bytes: body.length });
    const until = Date.parse(report.heldBack.earliest!);
    expect(until).toBeGreaterThanOrEqual(before + graceMs - 1000);
    expect(until).toBeLessThanOrEqual(after + graceMs + 1000);
  });
});

describe("the derived index after a pass", () => {
  test("is current once a pass unlisted manifests: its stamp is index.json's, so no rebuild follows", async () => {
    await using r = await createLifecycleRegistry(gcOptions({ untagged: true }));
    const img = await pushImage(r, "app", "v1", "untagged soon");
    await pushImage(r, "app", "kept", "tagged image");
    expect((await r.call("DELETE", "/v2/app/manifests/v1")).status).toBe(202);
    const report = await r.lifecycle.gc();
    expect(report.manifests.map((m) => m.digest)).toEqual([img.digest]);
    expect(r.meta.stampOf("app")).toBe((await r.store.indexes.index("app"))!.stamp);
  });
});

describe("manual passes", () => {
  test("log one info line with their summary; a scheduled pass that did nothing logs none", async () => {
    const lines: string[] = [];
    const log = createLogger("info", "json", (line) => lines.push(line));
    await using r = await createLifecycleRegistry(gcOptions({ graceMs: 3_600_000 }), { log });
    await pushBlob(r, "app", "young garbage");
    const at = lines.length;
    await r.lifecycle.gc();
    await r.lifecycle.gc({ dryRun: true });
    await r.lifecycle.scrub();
    await r.lifecycle.retention();
    const found = lines.slice(at).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(found.map((l) => l.msg)).toEqual(["gc: pass done", "gc: dry run done (nothing changed)", "scrub: done", "retention: pass done"]);
    expect(found[0]!.heldBack).toMatchObject({ blobs: 1 });
    expect(found[0]!.trigger).toBe("manual");
    // Scheduled: with something held back it says so; with nothing at all it is quiet.
    await using quiet = await createLifecycleRegistry(gcOptions(), { log });
    const mark = lines.length;
    await quiet.lifecycle.gc({ scheduled: true });
    expect(lines.length).toBe(mark);
  });
});
