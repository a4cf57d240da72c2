/**
 * Scheduled sync against a real upstream: content filters (repository globs, tag regex and
 * exclude, semver, platforms, prefixes), pins recorded for eviction, and an upstream that
 * is stopped mid-sync (no partial image visible; the next run completes it).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import { startDaemon } from "../helpers/daemon";
import { hasBlob, localTags, makeTemp, Skopeo, syncView, waitFor } from "../helpers/clients";
import { type BuiltImage, type UpstreamRegistry, buildLayout, startUpstream } from "../helpers/upstream";

let upstream: UpstreamRegistry;
let skopeo: Skopeo;
let work: string;
const images: Record<string, BuiltImage> = {};

async function push(name: string, repo: string, tag: string, platforms: string[], sizes: number[]) {
  const dir = join(work, name);
  images[`${repo}:${tag}`] = buildLayout(dir, tag, platforms, sizes);
  await skopeo.ok(["copy", ...(platforms.length > 1 ? ["--all"] : []), "--dest-tls-verify=false", `oci:${dir}:${tag}`, `docker://${upstream.host}/${repo}:${tag}`]);
}


beforeAll(async () => {
  work = makeTemp("berth-sched-");
  upstream = await startUpstream();
  skopeo = new Skopeo();
  await push("a1", "apps/web", "1.2.0", ["linux/amd64", "linux/arm64"], [2000]);
  await push("a2", "apps/web", "2.0.0", ["linux/amd64"], [2000]);
  await push("a3", "apps/web", "1.3.0-debug", ["linux/amd64"], [2000]);
  await push("a4", "apps/web", "latest", ["linux/amd64"], [2000]);
  await push("b1", "apps/api", "1.0.1", ["linux/amd64"], [2000]);
  await push("c1", "other/thing", "1.0.0", ["linux/amd64"], [2000]);
  await push("d1", "big/blob", "1.0.0", ["linux/amd64"], [48 << 20]);
}, 60_000);

afterAll(async () => {
  await upstream?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  rmSync(work, { recursive: true, force: true });
});

describe("scheduled sync", () => {
  test("mirrors what the filters admit, only the configured platforms, under dest_prefix", async () => {
    await using berth = await startDaemon({
      extra: `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\nrepos = ["apps/*"]\n` +
        `tags = "^\\\\d"\nexclude_tags = "debug"\nsemver = "^1.0.0"\nplatforms = ["linux/arm64"]\ndest_prefix = "mirror"\ninterval = 3600\non_demand = false\npinned = ["apps/web:latest"]\n`,
    });
    await waitFor("the first sync to finish", async () => {
      const s = await syncView(berth.url);
      return s.registries[0]!.lastRun?.report !== undefined;
    }, 30_000);
    const web = localTags(berth.root, "mirror/apps/web");
    // 1.2.0 (semver ^1 and the tag regex), latest (pinned, filters do not apply); not 2.0.0 (semver), not 1.3.0-debug (exclude)
    expect(Object.keys(web).sort()).toEqual(["1.2.0", "latest"]);
    expect(web["1.2.0"]).toBe(images["apps/web:1.2.0"]!.digest);
    expect(Object.keys(localTags(berth.root, "mirror/apps/api"))).toEqual(["1.0.1"]);
    expect(existsSync(join(berth.root, "mirror/other"))).toBe(false);
    // only arm64 of the index
    const idx = images["apps/web:1.2.0"]!;
    for (const d of [idx.platforms["linux/arm64"]!.manifest, ...idx.platforms["linux/arm64"]!.blobs]) expect(hasBlob(berth.root, "mirror/apps/web", d)).toBe(true);
    for (const d of [idx.platforms["linux/amd64"]!.manifest, ...idx.platforms["linux/amd64"]!.blobs]) expect(hasBlob(berth.root, "mirror/apps/web", d)).toBe(false);
    // pins are recorded for eviction
    const db = new Database(join(berth.root, ".berth/meta.db"), { readonly: true });
    expect(db.query("SELECT repo, tag FROM sync_pins").all()).toEqual([{ repo: "mirror/apps/web", tag: "latest" }]);
    db.close();
    // scheduler state is visible
    const sched = (await (await fetch(`${berth.url}/api/v1/scheduler`)).json()) as { recent: { name: string; outcome: string }[]; queue: { name: string }[] };
    expect(sched.recent.some((r: { name: string; outcome: string }) => r.name === "sync:up" && r.outcome === "ok")).toBe(true);
    expect(sched.queue.some((q: { name: string }) => q.name === "sync:up")).toBe(true);
  }, 60_000);

  // The wind-down after the upstream dies is not berth waiting on anything: the bytes the
  // upstream wrote before it died are still in flight (its orphaned socket's send buffer,
  // berth's receive buffer, Bun's body buffer: ~6 MiB on loopback, measured), and a
  // background fetch drains them at the IO budget's pace before it reads the truncated end.
  // With the old 12 MiB layer at 4 MiB/s that drain was up to 3 s (the rest of the layer),
  // longer when timers lag on a loaded machine, and the wait had been raised to 45 s. Here
  // the layer is 48 MiB at 16 MiB/s: the fetch is still under way for ~3 s, but what is in
  // flight drains in under a second. The waits add up to well under the test's timeout.
  test("an upstream stopped mid-sync leaves no partial image; the next run completes it", async () => {
    await using berth = await startDaemon({
      extra: `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\nrepos = ["big/blob"]\n` +
        `interval = 3600\non_demand = false\nbytes_per_second = 16777216\nretries = 0\nbreaker_failures = 1\nprobe_interval_ms = 100\n`,
    });
    const img = images["big/blob:1.0.0"]!;
    const layer = img.platforms["linux/amd64"]!.blobs[1]!;
    await waitFor("the layer fetch to be under way", async () => {
      const s = await syncView(berth.url);
      return s.fetches.some((f: { digest: string; written: number }) => f.digest === layer && f.written > 0);
    }, 15_000, 10);
    await upstream.stop();
    await waitFor("the sync run to fail", async () => {
      const s = await syncView(berth.url);
      return s.registries[0]!.lastRun !== null;
    }, 10_000);
    const run = (await syncView(berth.url)).registries[0]!.lastRun!;
    expect(run.report).toMatchObject({ images: 0, failed: 1 });
    expect(localTags(berth.root, "big/blob")).toEqual({});
    expect(hasBlob(berth.root, "big/blob", layer)).toBe(false);
    expect((await fetch(`${berth.url}/v2/big/blob/manifests/1.0.0`)).status).toBe(404);
    // nothing half-written is left in the uploads area
    await waitFor("temp files to be gone", () => readdirSync(join(berth.root, ".berth/uploads")).length === 0, 5_000);
    await upstream.restart();
    await waitFor("the upstream to be marked up", async () => (await syncView(berth.url)).registries[0]!.state === "up", 10_000);
    expect((await fetch(`${berth.url}/api/v1/sync/up/run`, { method: "POST" })).status).toBe(202);
    await waitFor("the image to be complete", () => localTags(berth.root, "big/blob")["1.0.0"] === img.digest, 20_000);
    expect(hasBlob(berth.root, "big/blob", layer)).toBe(true);
  }, 75_000);

  test("a tag whose manifest is here but a layer is not counts as incomplete: the next run fetches the layer", async () => {
    await using berth = await startDaemon({
      extra: `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\nrepos = ["apps/api"]\ninterval = 3600\non_demand = false\n`,
    });
    const img = images["apps/api:1.0.1"]!;
    await waitFor("the first sync to finish", async () => (await syncView(berth.url)).registries[0]!.lastRun?.report !== undefined, 30_000);
    const layer = img.platforms["linux/amd64"]!.blobs.at(-1)!;
    expect(hasBlob(berth.root, "apps/api", layer)).toBe(true);
    expect((await fetch(`${berth.url}/v2/apps/api/blobs/${layer}`, { method: "DELETE" })).status).toBe(202);
    expect(hasBlob(berth.root, "apps/api", layer)).toBe(false);
    const first = (await syncView(berth.url)).registries[0]!.lastRun!.at;
    expect((await fetch(`${berth.url}/api/v1/sync/up/run`, { method: "POST" })).status).toBe(202);
    await waitFor("the second run to finish", async () => {
      const run = (await syncView(berth.url)).registries[0]!.lastRun;
      return run !== null && run.at !== first && run.report !== undefined;
    }, 30_000);
    expect(hasBlob(berth.root, "apps/api", layer)).toBe(true);
  }, 60_000);
});
