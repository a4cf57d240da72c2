/**
 * Air-gap bundles between two real daemons and skopeo (1.9.3): berth's bundles are read by
 * `skopeo copy oci-archive:FILE:REPO:TAG` byte-exact, skopeo-made archives (single and
 * multi-arch with --all) are imported by berth, signatures (cosign tags) and referrers
 * (SBOMs) travel with their images, an incremental export is smaller and sufficient, a
 * rerun changes nothing, and --dry-run writes nothing.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { type Fixtures, Skopeo, buildFixtures, getManifest, headBlob, layoutBlob, layoutBlobs, layoutTag, listTags, makeTemp, sha256 } from "../helpers/clients";
import { shown } from "../helpers/cli";
import { scanTar } from "../../daemon/bundle/tar";
import { bundle, pushImage, pushReferrer, pushSignature } from "./helpers";

setDefaultTimeout(90_000);

let source: Daemon;
let work: string;
let fx: Fixtures;
let skopeo: Skopeo;
let app: { digest: string; layer: string };
let sig: string;
let sbom: string;

async function copy(src: string, dest: string, ...flags: string[]): Promise<void> {
  await skopeo.ok(["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", ...flags, src, dest]);
}

beforeAll(async () => {
  work = makeTemp("berth-bundle-");
  skopeo = new Skopeo();
  [fx, source] = await Promise.all([buildFixtures(join(work, "fixtures")), startDaemon()]);
  await copy(`oci:${fx.single}:v1`, `docker://${source.host}/fx/single:v1`);
  await copy(`oci:${fx.multi}:v1`, `docker://${source.host}/fx/multi:v1`, "--all");
  app = await pushImage(source.url, "edge/app", "1.0", 300_000);
  sig = await pushSignature(source.url, "edge/app", app.digest);
  const m = await getManifest(source.url, "edge/app", app.digest);
  sbom = await pushReferrer(source.url, "edge/app", { digest: app.digest, size: m.bytes.length });
});

afterAll(async () => {
  await source?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("export", () => {
  test("skopeo reads every image of a berth bundle byte-exact, single and multi-arch", async () => {
    const file = join(work, "all.tar");
    const r = await bundle(work, source.url, ["export", "-o", file, "fx/single:v1", "fx/multi:v1", "edge/app:1.0"]);
    expect(r.code, shown(r)).toBe(0);
    // single-arch: into an OCI layout, blobs identical to the fixture's
    const out1 = join(work, "out-single");
    await copy(`oci-archive:${file}:fx/single:v1`, `oci:${out1}:v1`);
    expect(layoutTag(out1, "v1").digest).toBe(layoutTag(fx.single, "v1").digest);
    for (const [digest, hash] of layoutBlobs(out1)) expect(hash).toBe(digest);
    expect([...layoutBlobs(out1).keys()].sort()).toEqual([...layoutBlobs(fx.single).keys()].sort());
    // multi-arch with --all: the index and both platforms
    const out2 = join(work, "out-multi");
    await copy(`oci-archive:${file}:fx/multi:v1`, `oci:${out2}:v1`, "--all");
    expect(layoutTag(out2, "v1").digest).toBe(layoutTag(fx.multi, "v1").digest);
    expect([...layoutBlobs(out2).keys()].sort()).toEqual([...layoutBlobs(fx.multi).keys()].sort());
    // a pushed image, into a dir: the layer's bytes
    const out3 = join(work, "out-app");
    await copy(`oci-archive:${file}:edge/app:1.0`, `dir:${out3}`);
    expect(sha256(readFileSync(join(out3, app.layer.slice(7))))).toBe(app.layer);
    // the cosign tag and the SBOM referrer came along
    const text = readFileSync(file);
    const index = JSON.parse(new TextDecoder().decode(layoutFile(file, "index.json", text))) as { manifests: { digest: string; annotations: Record<string, string> }[] };
    const names = index.manifests.map((m) => m.annotations["org.opencontainers.image.ref.name"] ?? `(${m.annotations["io.berth.bundle.repository"]}@${m.digest})`);
    expect(names).toContain(`edge/app:${app.digest.replace(":", "-")}.sig`);
    expect(names).toContain(`(edge/app@${sbom})`);
    expect(index.manifests.find((m) => m.digest === sig)).toBeDefined();
  });

  test("--platform narrows an index to one platform's manifest", async () => {
    const file = join(work, "arm64.tar");
    const r = await bundle(work, source.url, ["export", "-o", file, "--platform", "linux/arm64", "fx/multi:v1"]);
    expect(r.code, shown(r)).toBe(0);
    const index = JSON.parse(new TextDecoder().decode(layoutFile(file, "index.json"))) as { manifests: { digest: string }[] };
    const multi = JSON.parse(new TextDecoder().decode(layoutBlob(fx.multi, layoutTag(fx.multi, "v1").digest))) as { manifests: { digest: string; platform: { architecture: string } }[] };
    expect(index.manifests.map((m) => m.digest)).toEqual([multi.manifests.find((m) => m.platform.architecture === "arm64")!.digest]);
    const out = join(work, "out-arm64");
    await copy(`oci-archive:${file}:fx/multi:v1`, `oci:${out}:v1`);
    const amd64 = multi.manifests.find((m) => m.platform.architecture === "amd64")!.digest;
    expect(layoutBlobs(out).has(amd64)).toBe(false);
  });
});

describe("import", () => {
  test("a berth bundle into an empty berth: tags, signature, referrer; a rerun changes nothing; a dry run writes nothing", async () => {
    await using target = await startDaemon();
    const file = join(work, "app.tar");
    expect((await bundle(work, source.url, ["export", "-o", file, "edge/app:1.0", "fx/multi:v1"])).code).toBe(0);
    const dry = await bundle(work, target.url, ["import", file, "--dry-run", "--json"]);
    expect(dry.code, shown(dry)).toBe(0);
    const plan = JSON.parse(dry.stdout) as { entries: { repo: string; tag?: string; state: string }[] };
    expect(plan.entries.every((e) => e.state === "new")).toBe(true);
    expect(plan.entries.map((e) => `${e.repo}:${e.tag ?? "-"}`).sort()).toEqual(["edge/app:-", "edge/app:1.0", `edge/app:${app.digest.replace(":", "-")}.sig`, "fx/multi:v1"].sort());
    expect(await headBlob(target.url, "edge/app", app.layer)).toBe(404);
    expect((await fetch(`${target.url}/v2/_catalog`).then((r) => r.json()) as { repositories: string[] }).repositories).toEqual([]);

    const r = await bundle(work, target.url, ["import", file, "--json"]);
    expect(r.code, shown(r)).toBe(0);
    const done = JSON.parse(r.stdout) as { blobsUploaded: number; manifestsPut: number };
    expect(done.blobsUploaded).toBeGreaterThan(0);
    for (const [repo, ref] of [["edge/app", "1.0"], ["edge/app", `${app.digest.replace(":", "-")}.sig`], ["edge/app", sbom], ["fx/multi", "v1"]] as const) {
      const a = await getManifest(source.url, repo, ref);
      const b = await getManifest(target.url, repo, ref);
      expect(b.status).toBe(200);
      expect(sha256(b.bytes)).toBe(sha256(a.bytes));
    }
    const refs = (await fetch(`${target.url}/v2/edge/app/referrers/${app.digest}`).then((x) => x.json())) as { manifests: { digest: string }[] };
    expect(refs.manifests.map((m) => m.digest)).toContain(sbom);
    // skopeo pulls the imported multi-arch image whole
    const out = join(work, "from-target");
    await copy(`docker://${target.host}/fx/multi:v1`, `oci:${out}:v1`, "--all");
    expect([...layoutBlobs(out).keys()].sort()).toEqual([...layoutBlobs(fx.multi).keys()].sort());

    const again = await bundle(work, target.url, ["import", file, "--json"]);
    expect(again.code, shown(again)).toBe(0);
    const second = JSON.parse(again.stdout) as { entries: { state: string }[]; blobsUploaded: number; manifestsPut: number };
    expect(second.entries.every((e) => e.state === "unchanged")).toBe(true);
    expect([second.blobsUploaded, second.manifestsPut]).toEqual([0, 0]);
  });

  test("skopeo-made archives: REPO:TAG names, a bare tag with --repo, multi-arch with --all", async () => {
    await using target = await startDaemon();
    const named = join(work, "skopeo-named.tar");
    await copy(`docker://${source.host}/fx/single:v1`, `oci-archive:${named}:fx/single:v1`);
    const bare = join(work, "skopeo-bare.tar");
    await copy(`docker://${source.host}/fx/multi:v1`, `oci-archive:${bare}:v1`, "--all");
    expect((await bundle(work, target.url, ["import", named])).code).toBe(0);
    const noRepo = await bundle(work, target.url, ["import", bare]);
    expect(noRepo.code).toBe(2);
    expect(noRepo.stderr).toContain("--repo");
    const r = await bundle(work, target.url, ["import", bare, "--repo", "copied/multi"]);
    expect(r.code, shown(r)).toBe(0);
    expect(await listTags(target.url, "fx/single")).toEqual(["v1"]);
    expect(await listTags(target.url, "copied/multi")).toEqual(["v1"]);
    expect((await getManifest(target.url, "copied/multi", "v1")).digestHeader).toBe(layoutTag(fx.multi, "v1").digest);
    const out = join(work, "copied-multi");
    await copy(`docker://${target.host}/copied/multi:v1`, `oci:${out}:v1`, "--all");
    expect([...layoutBlobs(out).keys()].sort()).toEqual([...layoutBlobs(fx.multi).keys()].sort());
  });

  test("incremental: an export for a target's inventory is smaller and enough to bring the target up to date", async () => {
    await using target = await startDaemon();
    const v1 = join(work, "v1.tar");
    expect((await bundle(work, source.url, ["export", "-o", v1, "edge/app:1.0"])).code).toBe(0);
    expect((await bundle(work, target.url, ["import", v1])).code).toBe(0);
    // a new version shares the big layer of 1.0 (same blobs, new config)
    const base = await getManifest(source.url, "edge/app", "1.0");
    const doc = JSON.parse(new TextDecoder().decode(base.bytes)) as { config: { digest: string; size: number; mediaType: string } };
    const cfg = await fetch(`${source.url}/v2/edge/app/blobs/uploads/?digest=${sha256('{"v":2}')}`, { method: "POST", body: '{"v":2}' });
    expect(cfg.status).toBe(201);
    const v2doc = { ...doc, config: { ...doc.config, digest: sha256('{"v":2}'), size: 7 } };
    const put = await fetch(`${source.url}/v2/edge/app/manifests/2.0`, { method: "PUT", body: JSON.stringify(v2doc), headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
    expect(put.status).toBe(201);

    const have = await bundle(work, target.url, ["have"]);
    expect(have.code, shown(have)).toBe(0);
    const haveFile = join(work, "have.json");
    await Bun.write(haveFile, have.stdout);
    const full = join(work, "full2.tar");
    const inc = join(work, "inc2.tar");
    expect((await bundle(work, source.url, ["export", "-o", full, "edge/app:2.0"])).code).toBe(0);
    const r = await bundle(work, source.url, ["export", "-o", inc, "--have", haveFile, "edge/app:2.0"]);
    expect(r.code, shown(r)).toBe(0);
    expect(statSync(inc).size).toBeLessThan(statSync(full).size - 250_000);
    const files = await scanTar(inc);
    expect(files.has(`blobs/sha256/${app.layer.slice(7)}`)).toBe(false);
    const imp = await bundle(work, target.url, ["import", inc]);
    expect(imp.code, shown(imp)).toBe(0);
    expect(sha256((await getManifest(target.url, "edge/app", "2.0")).bytes)).toBe(sha256((await getManifest(source.url, "edge/app", "2.0")).bytes));
    // the same incremental bundle on a target that lacks the layer: a clear error, no tag
    await using other = await startDaemon();
    const bad = await bundle(work, other.url, ["import", inc]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`lacks blob ${app.layer}`);
    expect((await getManifest(other.url, "edge/app", "2.0")).status).toBe(404);
  });
});

/** One file of an oci-archive, read with the test's own tar walk (independent of daemon/bundle/tar.ts). */
function layoutFile(archive: string, name: string, bytes: Uint8Array = readFileSync(archive)): Uint8Array {
  for (let pos = 0; pos + 512 <= bytes.length; ) {
    const h = bytes.subarray(pos, pos + 512);
    if (h.every((b) => b === 0)) break;
    const entryName = new TextDecoder().decode(h.subarray(0, 100)).replace(/\0.*$/s, "").replace(/^\.\//, "");
    const size = parseInt(new TextDecoder().decode(h.subarray(124, 136)).replace(/\0.*$/s, "").trim() || "0", 8);
    if (entryName === name) return bytes.subarray(pos + 512, pos + 512 + size);
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`no ${name} in ${archive}`);
}
