/**
 * The warm set against a real upstream: a tag a local client pulled through berth is kept
 * fresh by the background freshness task (every `tag_check_interval`), so when the tag
 * moves upstream, berth's tag follows (complete image, digest as the upstream serves it)
 * without another client pull. A tag nobody pulled is left alone. A tag the upstream no
 * longer has (or never had) is not a sync failure retried on every run.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startDaemon } from "../helpers/daemon";
import { localTags, makeTemp, Skopeo, syncView, waitFor } from "../helpers/clients";
import { type BuiltImage, type UpstreamRegistry, buildLayout, startUpstream } from "../helpers/upstream";
import { launchChromium, screenshot, watchProblems } from "../helpers/browser";

let upstream: UpstreamRegistry;
let skopeo: Skopeo;
let work: string;

async function push(dir: string, repo: string, tag: string): Promise<BuiltImage> {
  const img = buildLayout(join(work, dir), tag, ["linux/amd64"], [2000]);
  await skopeo.ok(["copy", "--dest-tls-verify=false", `oci:${join(work, dir)}:${tag}`, `docker://${upstream.host}/${repo}:${tag}`]);
  return img;
}

/** Local tags of `repo`, read from the store's index.json (no request that could trigger a re-check). */
beforeAll(async () => {
  work = makeTemp("berth-warm-");
  upstream = await startUpstream();
  skopeo = new Skopeo();
}, 30_000);

afterAll(async () => {
  await upstream?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  rmSync(work, { recursive: true, force: true });
});

describe("warm set", () => {
  test("a tag pulled through berth follows the upstream without another pull", async () => {
    const v1 = await push("v1", "apps/warm", "stable");
    const cold1 = await push("c1", "apps/cold", "stable");
    await using berth = await startDaemon({
      extra: `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\nwarm_window = 3600\ntag_check_interval = 1\n`,
    });
    // a client pulls apps/warm:stable; apps/cold is fetched only by digest (not a tag pull: not warm)
    await skopeo.ok(["copy", "--src-tls-verify=false", `docker://${berth.host}/apps/warm:stable`, `oci:${join(work, "out")}:stable`]);
    // the pulled manifest is stored with its tag once its blobs are in
    await waitFor("the pulled tag to be stored", () => localTags(berth.root, "apps/warm").stable === v1.digest, 10_000);
    await skopeo.ok(["copy", "--src-tls-verify=false", `docker://${berth.host}/apps/cold@${cold1.digest}`, `oci:${join(work, "out-cold")}:x`]);
    const coldBlob = cold1.platforms["linux/amd64"]!.blobs[1]!;
    await waitFor("the cold image to be stored", () => existsSync(join(berth.root, "apps/cold/blobs/sha256", coldBlob.slice(7))), 10_000);

    const v2 = await push("v2", "apps/warm", "stable");
    await push("c2", "apps/cold", "stable");
    expect(v2.digest).not.toBe(v1.digest);
    await waitFor("berth's tag to follow the upstream", () => localTags(berth.root, "apps/warm").stable === v2.digest, 20_000, 50);
    // the whole new image is stored, so a client pull now is served locally
    for (const d of v2.platforms["linux/amd64"]!.blobs) expect(existsSync(join(berth.root, "apps/warm/blobs/sha256", d.slice(7)))).toBe(true);
    // no client asked: the freshness task re-checked the tag (HEAD) and copied the new image
    const s = (await syncView(berth.url)).registries[0]!;
    expect(s.lastRun!.error).toBeUndefined();
    // the admin API shows the warm set (the web UI's sync page lists it per upstream): the pulled tag only
    expect(s.warmWindowSeconds).toBe(3600);
    expect(s.warm!.map((w) => `${w.repo}:${w.tag}`)).toEqual(["apps/warm:stable"]);
    expect(upstream.requests().some((r) => r.method === "HEAD" && r.uri === "/v2/apps/warm/manifests/stable")).toBe(true);
    // the tag-less pull of apps/cold is not in the warm set: no tag, and never asked upstream by tag
    expect(localTags(berth.root, "apps/cold")).toEqual({});
    expect(upstream.requests().some((r) => r.method !== "PUT" && r.uri === "/v2/apps/cold/manifests/stable")).toBe(false);
    {
      // the web UI's sync page, in Chromium, lists the warm set under its upstream (a full sync run copies, it does not pull: the set stays)
      await using browser = await launchChromium();
      const page = await browser.newPage();
      const problems = watchProblems(page);
      await page.goto(`${berth.url}/#/sync`);
      await page.waitForSelector('#warm-set [data-upstream="up"]');
      expect(await page.$$eval('#warm-set [data-upstream="up"] tr[data-kind="warm"] td:first-child', (tds) => tds.map((td) => td.textContent))).toEqual(["apps/warm:stable"]);
      await screenshot(page, "sync-warm-set");
      // a sync run started from the page is followed as a task to its end, with its report
      await page.click('[data-sync="up"]');
      await page.click("dialog[open] [data-confirm]");
      await page.waitForSelector('#status .progress[data-state="succeeded"]');
      expect(await page.textContent("#status")).toContain("Sync run: done.");
      expect(await page.textContent("#status")).toContain("upstream");
      expect(problems.take()).toEqual([]);
    }
  }, 60_000);

  test("a pulled tag deleted upstream, and a pulled miss, are not failures retried on every run", async () => {
    const img = await push("g1", "apps/gone", "stable");
    await using berth = await startDaemon({
      extra: `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\nwarm_window = 3600\ntag_check_interval = 1\nnegative_cache_ttl = 0\n`,
    });
    await skopeo.ok(["copy", "--src-tls-verify=false", `docker://${berth.host}/apps/gone:stable`, `oci:${join(work, "out-gone")}:stable`]);
    await waitFor("the pulled tag to be stored", () => localTags(berth.root, "apps/gone").stable === img.digest, 10_000);
    // a client asks for a tag the upstream never had
    expect((await fetch(`${berth.url}/v2/apps/gone/manifests/never`)).status).toBe(404);
    // the upstream drops the pulled tag
    const del = await fetch(`${upstream.url}/v2/apps/gone/manifests/${img.digest}`, { method: "DELETE" });
    expect(del.status).toBe(202);
    const lastRun = async () => (await syncView(berth.url)).registries[0]!.lastRun;
    const nextRun = async () => {
      const at = (await lastRun())?.at;
      await waitFor("another freshness run", async () => (await lastRun())?.at !== at, 20_000, 50);
      return await lastRun();
    };
    await nextRun();
    // this run started after the delete: it finds the tag gone, and that is not a failure
    const found = await nextRun();
    expect(found!.report).toMatchObject({ failed: 0 });
    const asked = () => upstream.requests().filter((r) => r.uri === "/v2/apps/gone/manifests/stable").length;
    const before = asked();
    const after = await nextRun();
    expect(after!.report).toMatchObject({ failed: 0, gone: 0 });
    // the gone tag left the warm set: it is not asked for again
    expect(asked()).toBe(before);
    expect(upstream.requests().some((r) => r.uri === "/v2/apps/gone/manifests/never" && r.method === "HEAD")).toBe(false);
    expect(berth.logs()).not.toContain("sync of a tag failed");
    // the image stays served locally; only its freshness checks stopped
    expect(localTags(berth.root, "apps/gone").stable).toBe(img.digest);
  }, 60_000);
});
