/**
 * Start-up with the walk of the store deferred (meta/startup.ts): berth listens before it
 * sweeps temp files and reconciles its derived index, and answers right meanwhile. The
 * deferred work is held back by a tiny IO budget ([scheduler] read_ops_per_second = 1: one
 * directory or repository a second), so the requests below are answered while it still runs
 * (checked: its "finished" line is not logged until after them).
 */
import { describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startDaemon, tempDir } from "../helpers/daemon";
import { errorsOf, getManifest, pushBlobTo, sha256, waitFor } from "../helpers/clients";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";
import { OWN_TEMP_PREFIX, TEMP_PREFIX, realDisk } from "../../daemon/platform/disk";
import { Store } from "../../daemon/storage/store";
import { type TestRegistry, createTestRegistry, imageManifest, pushBlob } from "../helpers/registry";
import { createLogger } from "../../daemon/log";

const SLOW = "[scheduler]\nread_ops_per_second = 1\n";
const FINISHED = "start-up sweep finished";

async function pushImage(url: string, repo: string, tag: string, note: string, subject?: { digest: string; size: number }): Promise<{ digest: string; manifest: string }> {
  const config = await pushBlobTo(url, repo, JSON.stringify({ architecture: "arm64", os: "linux", note }));
  const layer = await pushBlobTo(url, repo, `layer ${note}`);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
    ...(subject ? { subject: { mediaType: OCI_MANIFEST, ...subject } } : {}),
  });
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: manifest, headers: { "Content-Type": OCI_MANIFEST } });
  expect(res.status).toBe(201);
  return { digest: sha256(manifest), manifest };
}

/** pushImage through the socketless handler of a test registry. */
async function pushTo(r: TestRegistry, repo: string, tag: string, note: string, subject?: { digest: string; size: number }): Promise<{ digest: string; manifest: string }> {
  const config = JSON.stringify({ architecture: "arm64", os: "linux", note });
  await pushBlob(r, repo, config);
  const manifest = imageManifest(config, [], subject ? { subject: { mediaType: OCI_MANIFEST, ...subject } } : {});
  expect((await r.call("PUT", `/v2/${repo}/manifests/${tag}`, { headers: { "Content-Type": OCI_MANIFEST }, body: manifest })).status).toBe(201);
  return { digest: sha256(manifest), manifest };
}

async function referrers(url: string, repo: string, digest: string): Promise<string[]> {
  const res = await fetch(`${url}/v2/${repo}/referrers/${digest}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest).sort();
}

describe("start-up work after listening", () => {
  test("a repository changed while berth was stopped is answered right while the deferred reconcile runs", async () => {
    using work = tempDir("berth-startup-");
    const root = join(work.path, "root");
    let base: { digest: string; manifest: string };
    let changed: { digest: string; manifest: string };
    let ref: { digest: string; manifest: string };
    {
      await using d = await startDaemon({ root });
      base = await pushImage(d.url, "app", "v1", "base");
      // pushed into a scratch repository, then moved into app's layout by hand while stopped
      changed = await pushImage(d.url, "scratch", "v2", "changed");
      ref = await pushImage(d.url, "scratch", "sig", "signature", { digest: changed.digest, size: changed.manifest.length });
      expect(await d.stop()).toBe(0);
    }
    // while stopped: app's index.json gains v2 and a referrer of it, blobs copied in; and
    // twenty layouts dropped in, so the deferred work has plenty to do at one op a second
    const index = JSON.parse(readFileSync(join(root, "scratch/index.json"), "utf8"));
    cpSync(join(root, "scratch/blobs"), join(root, "app/blobs"), { recursive: true });
    const appIndex = JSON.parse(readFileSync(join(root, "app/index.json"), "utf8"));
    appIndex.manifests.push(...index.manifests);
    writeFileSync(join(root, "app/index.json"), JSON.stringify(appIndex));
    for (let i = 0; i < 20; i++) cpSync(join(root, "scratch"), join(root, `dropped/copy${i}`), { recursive: true });
    writeFileSync(join(root, "app/blobs/sha256", `${TEMP_PREFIX}123-1`), "a killed run's torn copy");

    await using d = await startDaemon({ root, extra: SLOW });
    // served from the layout at once
    const v2 = await getManifest(d.url, "app", "v2");
    expect(v2.status).toBe(200);
    expect(new TextDecoder().decode(v2.bytes)).toBe(changed.manifest);
    expect((await getManifest(d.url, "dropped/copy7", "sig")).status).toBe(200);
    // a push to the changed repository first brings its rows up to index.json: the referrer
    // that came with the change is still listed after the push moved index.json's stamp
    await pushImage(d.url, "app", "v3", "pushed during the sweep");
    expect(await referrers(d.url, "app", changed.digest)).toEqual([ref.digest]);
    // a tag deleted by the same path
    expect((await fetch(`${d.url}/v2/app/manifests/v1`, { method: "DELETE" })).status).toBe(202);
    expect(await referrers(d.url, "dropped/copy3", changed.digest)).toEqual([ref.digest]);
    expect((await getManifest(d.url, "app", "v1")).status).toBe(404);
    expect((await getManifest(d.url, "app", base.digest)).status).toBe(200);
    // all of the above was answered while the deferred work still ran
    expect(d.logs()).not.toContain(FINISHED);
  });

  test("a killed run's temp files are removed after listening; GC waits for the sweep", async () => {
    using work = tempDir("berth-startup-");
    const root = join(work.path, "root");
    {
      await using d = await startDaemon({ root });
      await pushImage(d.url, "app", "v1", "one");
      expect(await d.stop()).toBe(0);
    }
    const temps = [join(root, "app", `${TEMP_PREFIX}123-1`), join(root, "app/blobs/sha256", `${TEMP_PREFIX}123-2`), join(root, ".berth/pool/sha256", `${TEMP_PREFIX}123-3`)];
    for (const t of temps) writeFileSync(t, "torn");
    await using d = await startDaemon({ root });
    const gc = await fetch(`${d.url}/api/v1/storage/gc`, { method: "POST" });
    expect(gc.status).toBe(200);
    await gc.arrayBuffer();
    // GC answered only once the sweep had finished: its line is logged already
    expect(d.logs()).toContain(FINISHED);
    expect(d.logs()).toMatch(/"msg":"start-up sweep finished".*"tempFilesRemoved":3/);
    for (const t of temps) expect(existsSync(t)).toBe(false);
    expect((await getManifest(d.url, "app", "v1")).status).toBe(200);
  });

  test("search answers a retryable 503 when the start-up reconcile outlasts the query's 5 s deadline", async () => {
    using work = tempDir("berth-startup-");
    const root = join(work.path, "root");
    {
      await using d = await startDaemon({ root });
      await pushImage(d.url, "app", "v1", "one");
      expect(await d.stop()).toBe(0);
    }
    for (let i = 0; i < 20; i++) cpSync(join(root, "app"), join(root, `dropped/copy${i}`), { recursive: true });
    await using d = await startDaemon({ root, extra: SLOW });
    const query = JSON.stringify({ query: '{ GlobalSearch(query: "copy") { Repos { Name } } }' });
    const res = await fetch(`${d.url}/v2/_zot/ext/search`, { method: "POST", body: query, headers: { "Content-Type": "application/json" } });
    expect(res.status).toBe(503);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    const [e] = await errorsOf(res);
    expect(e!.code).toBe("UNAVAILABLE");
    expect(e!.detail).toContain("still reconciling");
    expect(d.logs()).not.toContain(FINISHED);
  }, 30_000);
});

describe("deferred work beside live requests", () => {
  test("removes a killed run's temp files and leaves this process's own", async () => {
    using work = tempDir("berth-startup-");
    const store = new Store(realDisk, { root: work.path, dedupe: true, maxBlobBytes: 0, manifestCacheBytes: 0 }, createLogger("error", "json"));
    await store.prepare();
    const dir = join(work.path, "app");
    mkdirSync(join(dir, "blobs/sha256"), { recursive: true });
    writeFileSync(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [] }));
    const theirs = join(dir, `${TEMP_PREFIX}${process.pid}-7`); // same pid, another run (PID 1 in a container)
    const mine = join(dir, "blobs/sha256", `${OWN_TEMP_PREFIX}7`);
    writeFileSync(theirs, "torn");
    writeFileSync(mine, "being written by this process");
    const swept = await store.sweepTemps();
    expect(swept).toEqual({ repositories: ["app"], tempFilesRemoved: 1 });
    expect(existsSync(theirs)).toBe(false);
    expect(existsSync(mine)).toBe(true);
  });

  test("a repository pushed after the paced walk listed the store keeps its derived rows", async () => {
    await using r = await createTestRegistry();
    const img = await pushTo(r, "fresh/app", "v1", "subject");
    const sig = await pushTo(r, "fresh/app", "sig", "signature", { digest: img.digest, size: img.manifest.length });
    const refs = async () => ((await (await r.call("GET", `/v2/fresh/app/referrers/${img.digest}`)).json()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest);
    expect(await refs()).toEqual([sig.digest]);
    // the start-up reconcile with a list from before the push (the walk had passed "fresh/")
    await r.registry.reconcileAll([]);
    expect(await refs()).toEqual([sig.digest]);
  });
});
