/**
 * Several storage roots with the real daemon: `[storage] root` on one directory and
 * `[[storage.subpaths]] prefix = "factory/"` on another. Pushes to each prefix land in their
 * own root's layouts and pool and pull back byte-exact; a cross-root mount is a copy (a new
 * file in the target root) while a mount within a root is a link (one inode); GC runs per
 * root and says so; a root missing at start-up stops berth naming it, or with
 * `required = false` its prefix answers 503 UNAVAILABLE while the rest serves; a read-only
 * root stops berth; skopeo pushes to both prefixes.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { startDaemon, tempDir } from "../helpers/daemon";
import { Skopeo, buildFixtures, catalog, errorsOf, getManifest, layoutTag, pushBlobTo, sha256, waitFor } from "../helpers/clients";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";

setDefaultTimeout(60_000);

const MAIN = resolve(import.meta.dir, "../../daemon/main.ts");

/** Pushes a one-layer image to `repo:tag`; returns the digests. */
async function pushImage(url: string, repo: string, tag: string, layerText: string) {
  const config = await pushBlobTo(url, repo, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`);
  const layer = await pushBlobTo(url, repo, layerText);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
  });
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: manifest, headers: { "Content-Type": OCI_MANIFEST } });
  expect(res.status).toBe(201);
  return { config: config.digest, layer: layer.digest, manifest: sha256(manifest) };
}

const poolFile = (root: string, digest: string) => join(root, ".berth", "pool", ...digest.split(":"));
const blobFile = (root: string, repo: string, digest: string) => join(root, repo, "blobs", ...digest.split(":"));

/** `berth serve` on a config that must not start: its exit code and stderr (bounded wait). */
async function serveFails(configPath: string): Promise<{ code: number; stderr: string }> {
  const proc = Bun.spawn([process.execPath, MAIN, "serve", "--config", configPath], { stdout: "ignore", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  clearTimeout(timer);
  return { code, stderr };
}

const config = (main: string, ssd: string, more = "") => `[http]\naddress = "127.0.0.1"\nport = 0\n[storage]\nroot = "${main}"\n[[storage.subpaths]]\nprefix = "factory/"\nroot = "${ssd}"\n${more}\n[gc]\ngrace = 0\ninterval = 0\n`;

describe("two roots on two directories", () => {
  test("pushes land in their root, pull back, mount across roots copies, within a root links, GC runs per root", async () => {
    using work = tempDir();
    const main = join(work.path, "sd");
    const ssd = join(work.path, "ssd");
    mkdirSync(ssd);
    await using d = await startDaemon({ config: config(main, ssd) });
    expect(d.logs()).toContain(`"roots":["(rest) ${main}","factory/ ${ssd}"]`);

    const lib = await pushImage(d.url, "library/app", "v1", "layer of the library image");
    const fac = await pushImage(d.url, "factory/app", "v1", "layer of the factory image");
    // each image in its own root's layout and pool, nothing of it in the other root
    expect(existsSync(join(main, "library/app/index.json"))).toBe(true);
    expect(existsSync(join(ssd, "factory/app/index.json"))).toBe(true);
    expect(existsSync(join(main, "factory"))).toBe(false);
    expect(existsSync(join(ssd, "library"))).toBe(false);
    expect(existsSync(poolFile(ssd, fac.layer))).toBe(true);
    expect(existsSync(poolFile(main, fac.layer))).toBe(false);
    expect(existsSync(poolFile(main, lib.layer))).toBe(true);
    // pulls
    for (const [repo, want] of [["library/app", lib], ["factory/app", fac]] as const) {
      const m = await getManifest(d.url, repo, "v1");
      expect(m.status).toBe(200);
      expect(m.digestHeader).toBe(want.manifest);
      const blob = await fetch(`${d.url}/v2/${repo}/blobs/${want.layer}`);
      expect(sha256(new Uint8Array(await blob.arrayBuffer()))).toBe(want.layer);
    }
    expect(await catalog(d.url)).toEqual(["factory/app", "library/app"]);

    // a mount from the other root: 201, a copy in the target root's pool (another file)
    const across = await fetch(`${d.url}/v2/factory/copy/blobs/uploads/?mount=${lib.layer}&from=library/app`, { method: "POST" });
    expect(across.status).toBe(201);
    expect(existsSync(poolFile(ssd, lib.layer))).toBe(true);
    expect(statSync(poolFile(ssd, lib.layer)).ino).not.toBe(statSync(poolFile(main, lib.layer)).ino);
    // a mount within the root: a link to the same file
    const within = await fetch(`${d.url}/v2/factory/other/blobs/uploads/?mount=${fac.layer}&from=factory/app`, { method: "POST" });
    expect(within.status).toBe(201);
    expect(statSync(blobFile(ssd, "factory/other", fac.layer)).ino).toBe(statSync(blobFile(ssd, "factory/app", fac.layer)).ino);
    const copied = await fetch(`${d.url}/v2/factory/copy/blobs/${lib.layer}`);
    expect(sha256(new Uint8Array(await copied.arrayBuffer()))).toBe(lib.layer);

    // GC per root: delete the factory image; only the factory root's pool loses its layer
    expect((await fetch(`${d.url}/v2/factory/app/manifests/${fac.manifest}`, { method: "DELETE" })).status).toBe(202);
    const gc = await fetch(`${d.url}/api/v1/storage/gc`, { method: "POST" });
    expect(gc.status).toBe(200);
    const report = (await gc.json()) as { roots: { prefix: string; report: { pool: { digest: string }[]; repositories: number } }[]; pool: { digest: string }[] };
    expect(report.roots.map((r) => r.prefix)).toEqual(["", "factory/"]);
    const freed = (prefix: string) => report.roots.find((r) => r.prefix === prefix)!.report.pool.map((p) => p.digest);
    expect(freed("")).toEqual([]);
    // factory/app's layer is still linked by factory/other (mounted): only the manifest goes; the
    // lone blobs of factory/copy and factory/other have no manifest either, so they go too
    expect(freed("factory/")).toContain(fac.manifest);
    expect(report.pool.map((p) => p.digest).sort()).toEqual(freed("factory/").sort());
    expect(existsSync(poolFile(main, lib.layer))).toBe(true);
    expect(existsSync(poolFile(ssd, fac.manifest))).toBe(false);
    expect((await getManifest(d.url, "library/app", "v1")).status).toBe(200);

    // the admin API and the metrics report per root
    const stats = (await (await fetch(`${d.url}/api/v1/storage`)).json()) as { roots: { prefix: string; root: string; available: boolean; stats: { gcPasses: number } }[] };
    expect(stats.roots.map((r) => [r.prefix, r.root, r.available, r.stats.gcPasses])).toEqual([["", main, true, 1], ["factory/", ssd, true, 1]]);
    const metrics = await (await fetch(`${d.url}/metrics`)).text();
    expect(metrics).toContain(`berth_storage_root_up{prefix="factory/",root="${ssd}"} 1`);
    expect(metrics).toContain(`berth_storage_root_gc_passes_total{prefix="",root="${main}"} 1`);
  });
});

test("each root has its own quota: a push or a cross-root mount over the factory root's max_bytes gets 507, the main root takes it", async () => {
  using work = tempDir();
  const main = join(work.path, "sd");
  const ssd = join(work.path, "ssd");
  mkdirSync(ssd);
  await using d = await startDaemon({ config: config(main, ssd, `max_bytes = 2000\nmin_free = 0`) });
  const big = "x".repeat(4096);
  const refused = await fetch(`${d.url}/v2/factory/app/blobs/uploads/?digest=${sha256(big)}`, { method: "POST", body: big });
  expect(refused.status).toBe(507);
  const lib = await pushBlobTo(d.url, "library/app", big);
  const mount = await fetch(`${d.url}/v2/factory/app/blobs/uploads/?mount=${lib.digest}&from=library/app`, { method: "POST" });
  expect(mount.status).toBe(507);
  expect((await errorsOf(mount))[0]!.detail).toContain("quota");
  expect(existsSync(poolFile(ssd, lib.digest))).toBe(false);
  // small enough for the factory root
  const small = await fetch(`${d.url}/v2/factory/app/blobs/uploads/?digest=${sha256("tiny")}`, { method: "POST", body: "tiny" });
  expect(small.status).toBe(201);
  const stats = (await (await fetch(`${d.url}/api/v1/storage`)).json()) as { quota: { maxBytes: number }; roots: { prefix: string; stats: { quota: { maxBytes: number; usedBytes: number } } }[] };
  expect(stats.quota.maxBytes).toBe(0);
  expect(stats.roots[1]!.stats.quota).toMatchObject({ maxBytes: 2000, usedBytes: 4 });
});

test("meta.db lives in state_dir, outside every root, and is rebuilt from both roots when lost", async () => {
  using work = tempDir();
  const main = join(work.path, "sd");
  const ssd = join(work.path, "ssd");
  const state = join(work.path, "state");
  mkdirSync(ssd);
  const text = config(main, ssd).replace(`root = "${main}"\n`, `root = "${main}"\nstate_dir = "${state}"\n`);
  {
    await using d = await startDaemon({ config: text });
    await pushImage(d.url, "library/app", "v1", "one");
    await pushImage(d.url, "factory/app", "v1", "two");
    expect(await d.stop()).toBe(0);
  }
  expect(existsSync(join(state, "meta.db"))).toBe(true);
  expect(existsSync(join(main, ".berth", "meta.db"))).toBe(false);
  expect(existsSync(join(ssd, ".berth", "meta.db"))).toBe(false);
  rmSync(state, { recursive: true, force: true });
  await using again = await startDaemon({ config: text });
  // re-indexed after listening, by the start-up sweep (meta/startup.ts)
  await waitFor("the start-up sweep", () => again.logs().includes("start-up sweep finished"));
  expect(again.logs()).toMatch(/"msg":"start-up sweep finished".*"reindexed":2/);
  expect(await catalog(again.url)).toEqual(["factory/app", "library/app"]);
  expect((await getManifest(again.url, "factory/app", "v1")).status).toBe(200);
});

test("offline berth gc collects every root, and refuses while a daemon holds a subpath root", async () => {
  using work = tempDir();
  const main = join(work.path, "sd");
  const ssd = join(work.path, "ssd");
  mkdirSync(ssd);
  const path = join(work.path, "berth.toml");
  await Bun.write(path, config(main, ssd));
  let fac: Awaited<ReturnType<typeof pushImage>>;
  {
    await using d = await startDaemon({ config: config(main, ssd) });
    await pushImage(d.url, "library/app", "v1", "kept");
    fac = await pushImage(d.url, "factory/app", "v1", "collected offline");
    expect((await fetch(`${d.url}/v2/factory/app/manifests/${fac.manifest}`, { method: "DELETE" })).status).toBe(202);
    // the subpath root is locked by the daemon: the offline pass refuses it
    mkdirSync(join(work.path, "elsewhere"));
    await Bun.write(join(work.path, "other.toml"), config(join(work.path, "elsewhere"), ssd));
    const held = Bun.spawnSync([process.execPath, MAIN, "gc", "--config", join(work.path, "other.toml")]);
    expect(held.exitCode).toBe(1);
    expect(held.stderr.toString()).toContain(`Storage root "${ssd}" is in use by berth process ${d.proc.pid}`);
    expect(await d.stop()).toBe(0);
  }
  const gc = Bun.spawnSync([process.execPath, MAIN, "gc", "--config", path]);
  expect(gc.exitCode).toBe(0);
  expect(gc.stdout.toString()).toContain(`removed pool entry ${fac.layer}`);
  expect(existsSync(poolFile(ssd, fac.layer))).toBe(false);
  expect(existsSync(join(main, "library/app/index.json"))).toBe(true);
});

describe("a root missing or read-only at start-up", () => {
  test("a missing required root stops berth with an error naming the key and the directory", async () => {
    using work = tempDir();
    const ssd = join(work.path, "ssd");
    const path = join(work.path, "berth.toml");
    await Bun.write(path, config(join(work.path, "sd"), ssd));
    const r = await serveFails(path);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`storage.subpaths[0].root: storage root for "factory/": "${ssd}" does not exist (is its disk mounted?)`);
    expect(existsSync(ssd)).toBe(false);
  });

  test("with required = false the rest serves and the prefix answers 503 UNAVAILABLE until a restart", async () => {
    using work = tempDir();
    const main = join(work.path, "sd");
    const ssd = join(work.path, "ssd");
    await using d = await startDaemon({ config: config(main, ssd, "required = false") });
    expect(d.logs()).toContain(`storage root for \\"factory/\\" is unavailable`);
    await pushImage(d.url, "library/app", "v1", "served");
    for (const res of [
      await fetch(`${d.url}/v2/factory/app/blobs/uploads/`, { method: "POST" }),
      await fetch(`${d.url}/v2/factory/app/manifests/v1`),
      await fetch(`${d.url}/v2/factory/app/tags/list`),
    ]) {
      expect(res.status).toBe(503);
      const [e] = await errorsOf(res);
      expect(e!.code).toBe("UNAVAILABLE");
      expect(e!.detail).toContain(`repositories under "factory/" is unavailable`);
      expect(e!.detail).not.toContain(ssd);
    }
    expect(await catalog(d.url)).toEqual(["library/app"]);
    const stats = (await (await fetch(`${d.url}/api/v1/storage`)).json()) as { roots: { prefix: string; available: boolean; problem?: string }[] };
    expect(stats.roots[1]).toMatchObject({ prefix: "factory/", available: false });
    expect(stats.roots[1]!.problem).toContain("does not exist");
    expect(await (await fetch(`${d.url}/metrics`)).text()).toContain(`berth_storage_root_up{prefix="factory/",root="${ssd}"} 0`);
    expect(existsSync(ssd)).toBe(false);
  });

  test("a read-only root stops berth naming it", async () => {
    using work = tempDir();
    const ssd = join(work.path, "ssd");
    mkdirSync(ssd);
    const bind = Bun.spawnSync(["mount", "--bind", ssd, ssd]);
    if (bind.exitCode !== 0) throw new Error(`this test needs a read-only bind mount (run as root): ${bind.stderr.toString()}`);
    try {
      const ro = Bun.spawnSync(["mount", "-o", "remount,ro,bind", ssd]);
      if (ro.exitCode !== 0) throw new Error(`this test needs a read-only bind mount (run as root): ${ro.stderr.toString()}`);
      const path = join(work.path, "berth.toml");
      await Bun.write(path, config(join(work.path, "sd"), ssd));
      const r = await serveFails(path);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`storage.subpaths[0].root: storage root for "factory/": "${ssd}" is on a read-only file system`);
      // berth verify says the same
      const v = Bun.spawnSync([process.execPath, MAIN, "verify", path]);
      expect(v.exitCode).toBe(1);
      expect(v.stderr.toString()).toContain(`"${ssd}" is on a read-only file system`);
    } finally {
      Bun.spawnSync(["umount", "-l", ssd]);
    }
  });
});

test("skopeo pushes to both prefixes, each image into its own root", async () => {
  using work = tempDir();
  const main = join(work.path, "sd");
  const ssd = join(work.path, "ssd");
  mkdirSync(ssd);
  using skopeo = new Skopeo();
  const [fx, d] = await Promise.all([buildFixtures(join(work.path, "fixtures")), startDaemon({ config: config(main, ssd) })]);
  await using _ = d;
  const tag = layoutTag(fx.single, "v1");
  for (const repo of ["library/single", "factory/single"]) {
    await skopeo.ok(["copy", "-q", "--dest-tls-verify=false", `oci:${fx.single}:v1`, `docker://${d.host}/${repo}:v1`]);
    const got = await getManifest(d.url, repo, "v1");
    expect(got.status).toBe(200);
    expect(got.digestHeader).toBe(tag.digest);
  }
  expect(JSON.parse(readFileSync(join(ssd, "factory/single/index.json"), "utf8")).manifests[0].digest).toBe(tag.digest);
  expect(JSON.parse(readFileSync(join(main, "library/single/index.json"), "utf8")).manifests[0].digest).toBe(tag.digest);
  expect(existsSync(join(main, "factory"))).toBe(false);
  // a copy between the prefixes on the registry itself (skopeo may mount across: berth copies)
  await skopeo.ok(["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", `docker://${d.host}/library/single:v1`, `docker://${d.host}/factory/again:v1`]);
  expect((await getManifest(d.url, "factory/again", "v1")).digestHeader).toBe(tag.digest);
  expect(existsSync(join(ssd, "factory/again/index.json"))).toBe(true);
  rmSync(join(work.path, "fixtures"), { recursive: true, force: true });
});
