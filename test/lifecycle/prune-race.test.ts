/**
 * Retention and eviction against pushes in flight, made deterministic: the test wraps the
 * store's lock entry points so that the first time a pass asks for a repository's lock
 * (after it looked at the repository and decided), a manifest PUT runs and is acknowledged.
 * What that push tagged must survive the pass.
 */
import { describe, expect, test } from "bun:test";
import { createLifecycleRegistry, testLifecycleOptions } from "../helpers/lifecycle";
import { beforeNextLock } from "../helpers/locks";
import { pushImage, sha256 } from "../helpers/registry";
import type { RetentionPolicy } from "../../daemon/lifecycle/retention";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";

const keepLast = (n: number): RetentionPolicy => ({ repositories: ["**"], keepLast: n, keepTags: [], keepWithinMs: 0, untaggedAfterMs: 0 });
const tagsOf = async (r: { call: (m: string, p: string) => Promise<Response> }, repo: string) =>
  ((await (await r.call("GET", `/v2/${repo}/tags/list`)).json()) as { tags: string[] }).tags;

describe("retention and eviction against pushes in flight", () => {
  for (const [name, tag] of [["a new tag pushed", "new"], ["a tag moved", "cur"]] as const) {
    test(`retention: ${name} onto the manifest it decided to delete survives`, async () => {
      await using r = await createLifecycleRegistry({ retention: { intervalMs: 0, dryRun: false, policies: [keepLast(1)] } });
      const old = await pushImage(r, "app", "old", "old image");
      await pushImage(r, "app", "cur", "current image");
      r.lifecycle.usage.get("app", "old")!.pushedAt = Date.now() - 3_600_000;
      r.lifecycle.usage.get("app", old.digest)!.pushedAt = Date.now() - 3_600_000;
      // Decided on its own: tag "old" and its manifest go.
      expect((await r.lifecycle.retention({ dryRun: true })).manifests.map((m) => m.digest)).toEqual([old.digest]);
      const statuses: number[] = [];
      beforeNextLock(r.store.indexes, "app", async () => {
        statuses.push((await r.call("PUT", `/v2/app/manifests/${tag}`, { headers: { "Content-Type": OCI_MANIFEST }, body: old.manifest })).status);
      });
      await r.lifecycle.retention();
      expect(statuses).toEqual([201]);
      expect(await (await r.call("GET", `/v2/app/manifests/${tag}`)).text()).toBe(old.manifest);
      expect(await tagsOf(r, "app")).toContain(tag);
      await r.lifecycle.gc();
      expect(await (await r.call("GET", `/v2/app/blobs/${sha256(old.layer)}`)).text()).toBe(old.layer);
    });
  }

  test("eviction: a tag pushed onto the untagged manifest it decided to evict survives, and the index is not rewritten", async () => {
    await using r = await createLifecycleRegistry({ quota: { ...testLifecycleOptions().quota, evictable: ["mirror/**"] } });
    const img = await pushImage(r, "mirror/app", "gone", "evictable image");
    expect((await r.call("DELETE", "/v2/mirror/app/manifests/gone")).status).toBe(202); // listed, untagged: a candidate
    const statuses: number[] = [];
    let stamp: string | undefined;
    beforeNextLock(r.store.indexes, "mirror/app", async () => {
      statuses.push((await r.call("PUT", "/v2/mirror/app/manifests/new", { headers: { "Content-Type": OCI_MANIFEST }, body: img.manifest })).status);
      stamp = (await r.store.indexes.index("mirror/app"))!.stamp;
    });
    await r.lifecycle.evictor.evictOne({ limit: "store", bytes: 1, message: "test shortfall" });
    expect(statuses).toEqual([201]);
    // the decision was overtaken entirely: index.json is not even rewritten
    expect((await r.store.indexes.index("mirror/app"))!.stamp).toBe(stamp!);
    expect(await (await r.call("GET", "/v2/mirror/app/manifests/new")).text()).toBe(img.manifest);
    expect(await (await r.call("GET", `/v2/mirror/app/blobs/${sha256(img.layer)}`)).text()).toBe(img.layer);
    expect(r.lifecycle.evictor.history).toEqual([]);
  });
});

describe("what a decision removes when only part of it can go", () => {
  test("retention removes a tag whose manifest another kept tag still holds: the tag goes, the manifest stays", async () => {
    await using r = await createLifecycleRegistry({ retention: { intervalMs: 0, dryRun: false, policies: [keepLast(1)] } });
    const img = await pushImage(r, "app", "old", "the one image");
    r.lifecycle.usage.get("app", "old")!.pushedAt = Date.now() - 3_600_000;
    r.lifecycle.usage.get("app", img.digest)!.pushedAt = Date.now() - 3_600_000;
    expect((await r.call("PUT", "/v2/app/manifests/new", { headers: { "Content-Type": OCI_MANIFEST }, body: img.manifest })).status).toBe(201);
    const report = await r.lifecycle.retention();
    expect(report.tags.map((t) => t.tag)).toEqual(["old"]);
    expect(report.manifests).toEqual([]);
    expect(await tagsOf(r, "app")).toEqual(["new"]);
    expect(await (await r.call("GET", "/v2/app/manifests/new")).text()).toBe(img.manifest);
  });
});
