/** Retention policies: keep_last, keep_tags, keep_within, untagged_after, dry run, pull times. */
import { describe, expect, test } from "bun:test";
import { createLifecycleRegistry, testLifecycleOptions } from "../helpers/lifecycle";
import { pushImage, sha256 } from "../helpers/registry";
import type { RetentionPolicy } from "../../daemon/lifecycle/retention";
import { openDatabase } from "../../daemon/platform/sqlite";

const policy = (p: Partial<RetentionPolicy>): RetentionPolicy => ({ repositories: ["**"], keepLast: 0, keepTags: [], keepWithinMs: 0, untaggedAfterMs: 0, ...p });
const tagsOf = async (r: { call: (m: string, p: string) => Promise<Response> }, repo: string) =>
  ((await (await r.call("GET", `/v2/${repo}/tags/list`)).json()) as { tags: string[] }).tags;

/** Pushes tags t0..t(n-1) with push times one hour apart, oldest first. */
async function pushTags(r: Awaited<ReturnType<typeof createLifecycleRegistry>>, repo: string, n: number) {
  const base = Date.now() - n * 3_600_000;
  const images = [];
  for (let i = 0; i < n; i++) {
    const img = await pushImage(r, repo, `t${i}`, `${repo}-${i}`);
    for (const ref of [`t${i}`, img.digest]) r.lifecycle.usage.get(repo, ref)!.pushedAt = base + i * 3_600_000;
    images.push(img);
  }
  return images;
}

describe("retention", () => {
  test("keep_last keeps the most recently pushed or pulled tags; the rest and their blobs go", async () => {
    await using r = await createLifecycleRegistry({ retention: { intervalMs: 0, dryRun: false, policies: [policy({ repositories: ["edge/*"], keepLast: 2 })] } });
    const imgs = await pushTags(r, "edge/app", 5);
    await pushTags(r, "other", 3); // no policy matches: untouched
    expect((await r.call("GET", "/v2/edge/app/manifests/t0")).status).toBe(200); // t0 pulled now: most recent use
    const dry = await r.lifecycle.retention({ dryRun: true });
    expect(dry.tags.map((t) => t.tag).sort()).toEqual(["t1", "t2", "t3"]);
    expect(await tagsOf(r, "edge/app")).toEqual(["t0", "t1", "t2", "t3", "t4"]);
    const real = await r.lifecycle.retention();
    expect(real.tags.map((t) => t.tag).sort()).toEqual(["t1", "t2", "t3"]);
    expect(real.manifests.length).toBe(3);
    expect(await tagsOf(r, "edge/app")).toEqual(["t0", "t4"]);
    expect(await tagsOf(r, "other")).toEqual(["t0", "t1", "t2"]);
    await r.lifecycle.gc();
    expect((await r.call("GET", `/v2/edge/app/blobs/${sha256(imgs[1]!.layer)}`)).status).toBe(404);
    expect(await (await r.call("GET", `/v2/edge/app/blobs/${sha256(imgs[4]!.layer)}`)).text()).toBe(imgs[4]!.layer);
  });

  test("keep_tags and keep_within keep what they match; untagged_after removes old untagged manifests", async () => {
    await using r = await createLifecycleRegistry({
      retention: { intervalMs: 0, dryRun: false, policies: [policy({ keepTags: ["t[01]"], keepWithinMs: 90 * 60_000, untaggedAfterMs: 60_000 })] },
    });
    await pushTags(r, "app", 5); // t4 is 1 h old, t3 2 h
    const loose = await pushImage(r, "app", "loose", "untagged");
    await r.call("DELETE", "/v2/app/manifests/loose");
    r.lifecycle.usage.get("app", loose.digest)!.pushedAt = Date.now() - 120_000;
    const report = await r.lifecycle.retention();
    expect(report.tags.map((t) => t.tag).sort()).toEqual(["t2", "t3"]);
    expect(report.manifests.map((m) => m.digest)).toContain(loose.digest);
    expect(await tagsOf(r, "app")).toEqual(["t0", "t1", "t4"]);
    expect((await r.call("GET", `/v2/app/manifests/${loose.digest}`)).status).toBe(404);
  });

  test("a configured dry run deletes nothing", async () => {
    await using r = await createLifecycleRegistry({ retention: { intervalMs: 0, dryRun: true, policies: [policy({ keepLast: 1 })] } });
    await pushTags(r, "app", 3);
    const report = await r.lifecycle.retention();
    expect(report.dryRun).toBe(true);
    expect(report.tags.length).toBe(2);
    expect(await tagsOf(r, "app")).toEqual(["t0", "t1", "t2"]);
  });

  test("the options are built from TOML", async () => {
    const { parseConfig } = await import("../../daemon/config/load");
    const { lifecycleOptions } = await import("../../daemon/lifecycle/options");
    const c = parseConfig('[[retention.policy]]\nrepositories = ["edge/**"]\nkeep_last = 3\nkeep_within = "7d"\nuntagged_after = "1d"', "x");
    expect(lifecycleOptions(c).retention.policies).toEqual([policy({ repositories: ["edge/**"], keepLast: 3, keepWithinMs: 7 * 86_400_000, untaggedAfterMs: 86_400_000 })]);
    expect(testLifecycleOptions().gc.graceMs).toBe(0);
  });
});

test("deleting a tag or a manifest through the API drops its statistics, from memory and from meta.db", async () => {
  await using r = await createLifecycleRegistry();
  const kept = await pushImage(r, "app", "kept", "kept");
  const gone = await pushImage(r, "app", "gone", "gone");
  expect((await r.call("GET", "/v2/app/manifests/gone")).status).toBe(200);
  r.lifecycle.usage.flush();
  // read back through a second connection to the file, as a restarted daemon would
  const rows = () => {
    const db = openDatabase(r.store.paths.metaDb);
    try {
      return db.prepare<{ ref: string }>("SELECT ref FROM usage WHERE repo = 'app'").all().map((x) => x.ref);
    } finally {
      db.close();
    }
  };
  expect(rows()).toContain("gone");
  expect((await r.call("DELETE", "/v2/app/manifests/gone")).status).toBe(202);
  expect(r.lifecycle.usage.get("app", "gone")).toBeUndefined();
  expect((await r.call("DELETE", `/v2/app/manifests/${gone.digest}`)).status).toBe(202);
  expect(r.lifecycle.usage.get("app", gone.digest)).toBeUndefined();
  // a delete by digest takes the tags that pointed at it along, and their statistics
  const both = await pushImage(r, "app", "both", "both");
  expect((await r.call("DELETE", `/v2/app/manifests/${both.digest}`)).status).toBe(202);
  expect(r.lifecycle.usage.get("app", "both")).toBeUndefined();
  r.lifecycle.usage.flush();
  expect(rows().sort()).toEqual([kept.digest, "kept"].sort());
});
