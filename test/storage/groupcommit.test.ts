/**
 * Group commit of index.json (storage/groupcommit.ts): concurrent updates of one repository
 * share writes, every update lands, each resolves only once a durable write holds it (proved
 * with power cuts at every operation of the simulator and through the registry's harness),
 * and a refused change refuses only itself. The same through the registry, ten manifest
 * pushes into one repository at once under power cuts, is the harness's "push-group"
 * workload (test/helpers/powercut-workloads.ts, run by powercut.test.ts and scripts/powercut.ts).
 */
import { describe, expect, test } from "bun:test";
import { silentLogger } from "../../daemon/log";
import type { Descriptor } from "../../daemon/oci/manifest";
import { parseIndexDoc, tagOf } from "../../daemon/oci/layoutindex";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";
import type { RepoIndex } from "../../daemon/storage/api";
import { Layouts } from "../../daemon/storage/layouts";
import { MAX_GROUP } from "../../daemon/storage/groupcommit";
import { Paths } from "../../daemon/storage/paths";
import { ROOT } from "../helpers/powercut";
import { SimDisk } from "../helpers/simdisk";

const entry = (i: number): Descriptor => ({
  mediaType: OCI_MANIFEST,
  digest: `sha256:${i.toString(16).padStart(64, "0")}`,
  size: 100 + i,
  annotations: { "org.opencontainers.image.ref.name": `t${i}` },
});

/** A simulated disk with layouts on it, counting the writes of index.json. */
async function setup(): Promise<{ disk: SimDisk; layouts: Layouts; writes: () => number }> {
  const disk = new SimDisk();
  await disk.mountPoint(ROOT);
  let writes = 0;
  const write = disk.writeAtomic.bind(disk);
  disk.writeAtomic = (path, bytes) => {
    if (path.endsWith("/index.json")) writes++;
    return write(path, bytes);
  };
  const layouts = new Layouts(new Paths(ROOT), disk, silentLogger);
  await layouts.ensure("busy");
  writes = 0;
  return { disk, layouts, writes: () => writes };
}

/** Tags listed in `repo`'s index.json on `disk` (what a restart would read). */
async function tagsOn(disk: SimDisk, repo: string): Promise<string[]> {
  const doc = parseIndexDoc(new TextDecoder().decode(await disk.readFile(`${ROOT}/${repo}/index.json`)));
  return doc.manifests.map((d) => tagOf(d)!).sort();
}

describe("group commit of index.json", () => {
  test("concurrent updates of one repository all land, in fewer writes than updates", async () => {
    const { disk, layouts, writes } = await setup();
    const count = 24;
    const done = await Promise.all(Array.from({ length: count }, (_, i) => layouts.update("busy", (entries) => [...entries, entry(i)])));
    const expected = Array.from({ length: count }, (_, i) => `t${i}`).sort();
    expect(await tagsOn(disk, "busy")).toEqual(expected);
    expect(await tagsOn(disk.survivors(), "busy")).toEqual(expected); // durable, not only written
    // one write for the whole group (the old code made one per update: 24)
    expect(writes()).toBeLessThanOrEqual(2);
    // each resolved with an index that holds its own change
    done.forEach((index, i) => expect(index.tags.get(`t${i}`)?.digest).toBe(entry(i).digest));
    expect(layouts.groupStats()).toEqual({ updates: count, writes: writes() });
  });

  test("each change sees the one before it; a refused change refuses only itself", async () => {
    const { disk, layouts } = await setup();
    const seen: number[] = [];
    const results = await Promise.allSettled([
      layouts.update("busy", (e) => (seen.push(e.length), [...e, entry(1)])),
      layouts.update("busy", () => {
        throw new Error("refused on purpose");
      }),
      layouts.update("busy", async (e) => (seen.push(e.length), [...e, entry(2)])),
      layouts.update("busy", () => undefined), // no change: resolves with the index as written
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
    expect(((results[1] as PromiseRejectedResult).reason as Error).message).toBe("refused on purpose");
    expect(seen).toEqual([0, 1]);
    expect(await tagsOn(disk, "busy")).toEqual(["t1", "t2"]);
    expect((results[3] as PromiseFulfilledResult<RepoIndex>).value.tags.size).toBe(2);
  });

  test("a group larger than MAX_GROUP is written in several writes, losing nothing", async () => {
    const { disk, layouts, writes } = await setup();
    const count = MAX_GROUP + 10;
    await Promise.all(Array.from({ length: count }, (_, i) => layouts.update("busy", (entries) => [...entries, entry(i)])));
    expect((await tagsOn(disk, "busy")).length).toBe(count);
    expect(writes()).toBe(2);
  });

  test("a power cut at any operation keeps every update that resolved", async () => {
    // how many operations the whole run takes without a cut
    const probe = await setup();
    const base = probe.disk.counts.ops;
    const run = (layouts: Layouts, acked: Set<string>) =>
      Promise.allSettled(
        Array.from({ length: 12 }, (_, i) =>
          // two waves: the second arrives while the first group's write is in flight
          (i < 6 ? Promise.resolve() : Bun.sleep(0)).then(() => layouts.update("busy", (e) => [...e, entry(i)])).then(() => void acked.add(`t${i}`)),
        ),
      );
    await run(probe.layouts, new Set());
    const ops = probe.disk.counts.ops - base;
    expect(ops).toBeGreaterThan(2);
    let checked = 0;
    for (let cut = 1; cut <= ops; cut++) {
      const { disk, layouts } = await setup();
      disk.cutAt = disk.counts.ops + cut;
      const acked = new Set<string>();
      await run(layouts, acked);
      expect(disk.dead).toBe(true);
      const survived = await tagsOn(disk.survivors(), "busy"); // parses: nothing torn
      for (const tag of acked) expect(survived).toContain(tag);
      checked += acked.size;
    }
    expect(checked).toBeGreaterThan(0); // some cuts came after acknowledged writes
  });
});

test("a repository removed while updates waited (GC of an empty repository): refusals keep their own errors, a change makes the layout again", async () => {
  const { disk, layouts } = await setup();
  await layouts.withLock("busy", () => layouts.drop("busy")); // what GC does to an empty repository
  const refused = layouts.update("busy", () => {
    throw new Error("blob unknown, on purpose");
  });
  await expect(refused).rejects.toThrow("blob unknown, on purpose");
  expect(layouts.exists("busy")).toBe(false); // nothing to write: the layout is not made again
  const unchanged = layouts.update("busy", () => undefined);
  await expect(unchanged).rejects.toThrow("repository busy has no index.json");
  const index = await layouts.update("busy", (entries) => [...entries, entry(7)]);
  expect(index.tags.get("t7")?.digest).toBe(entry(7).digest);
  expect(await tagsOn(disk.survivors(), "busy")).toEqual(["t7"]);
  expect(disk.survivors().stat(`${ROOT}/busy/oci-layout`)?.isFile).toBe(true);
});
