/**
 * Memory of the lifecycle passes (issue 13): a pass keeps its garbage bounded (the pacer
 * forces a collection once the heap or the resident set grew by more than a slack), and it
 * does not churn the caches requests use (index.json documents read by a pass are not kept).
 * No sizes or times are asserted: the figures live in scripts/scale.ts.
 */
import { describe, expect, test } from "bun:test";
import { linkSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { HEAP_SLACK, HeapBound, type MemoryProbe, Pacer, QUIET_FACTOR, RSS_SLACK } from "../../daemon/lifecycle/pacer";
import { type Disk, realDisk } from "../../daemon/platform/disk";
import { createLifecycleRegistry } from "../helpers/lifecycle";
import { pushImage, sha256 } from "../helpers/registry";

const MiB = 1024 * 1024;

/** A probe whose readings the test sets; a collection brings both back to `live`. */
function fakeProbe(live = 10 * MiB) {
  const state = { heap: live, rss: 4 * live, live, collections: 0 };
  const probe: MemoryProbe = {
    heapUsed: () => state.heap,
    resident: () => state.rss,
    collect: () => {
      state.collections++;
      state.heap = state.live;
      state.rss -= 2 * MiB; // the allocator keeps most freed pages
      return true;
    },
  };
  return { state, probe };
}

describe("HeapBound", () => {
  test("collects once the heap grew by more than its slack, and only then", () => {
    const { state, probe } = fakeProbe();
    const bound = new HeapBound(probe, 0);
    bound.check(1);
    state.heap += HEAP_SLACK - MiB;
    bound.check(2);
    expect(state.collections).toBe(0);
    state.heap += 2 * MiB;
    bound.check(3);
    expect(state.collections).toBe(1);
    expect(bound.collections).toBe(1);
    // measured from what the collection left
    state.heap += HEAP_SLACK - MiB;
    bound.check(4);
    expect(state.collections).toBe(1);
  });

  test("collects when the resident set grows though the heap does not (native garbage), measured from what the last collection left", () => {
    const { state, probe } = fakeProbe();
    const bound = new HeapBound(probe, 0);
    bound.check(1);
    state.rss += RSS_SLACK + MiB;
    bound.check(2);
    expect(state.collections).toBe(1);
    // the collection left RSS above where it began: only growth beyond that counts
    state.rss += RSS_SLACK - MiB;
    bound.check(3);
    expect(state.collections).toBe(1);
    state.rss += 2 * MiB;
    bound.check(4);
    expect(state.collections).toBe(2);
  });

  test("growth a collection does not free is live: the slack doubles (collections stay few while one large graph is built), and resets once garbage is freed again", () => {
    const { state, probe } = fakeProbe();
    const bound = new HeapBound(probe, 0);
    bound.check(1);
    const grow = (bytes: number) => {
      state.heap += bytes;
      state.live += bytes; // all of it alive
    };
    grow(HEAP_SLACK + MiB);
    bound.check(2);
    expect(state.collections).toBe(1);
    grow(HEAP_SLACK + MiB); // would have collected with the base slack
    bound.check(3);
    expect(state.collections).toBe(1);
    grow(HEAP_SLACK);
    bound.check(4);
    expect(state.collections).toBe(2);
    // garbage again: freed by the next collection, after which the base slack applies
    state.heap += 4 * HEAP_SLACK + MiB;
    bound.check(5);
    expect(state.collections).toBe(3);
    state.heap += HEAP_SLACK + MiB;
    bound.check(6);
    expect(state.collections).toBe(4);
  });

  test("after a slow collection, none for nine times its cost (collections stay a tenth of a pass)", () => {
    const { state, probe } = fakeProbe();
    const slow: MemoryProbe = {
      ...probe,
      collect: () => {
        const until = performance.now() + 2;
        while (performance.now() < until); // a collection of at least 2 ms
        return probe.collect();
      },
    };
    const bound = new HeapBound(slow, 0);
    bound.check(0);
    state.heap += 2 * HEAP_SLACK;
    bound.check(1);
    expect(state.collections).toBe(1);
    state.heap += 2 * HEAP_SLACK;
    bound.check(1 + QUIET_FACTOR * 2 - 1); // within the quiet time of a 2 ms collection
    expect(state.collections).toBe(1);
    bound.check(10_000);
    expect(state.collections).toBe(2);
  });

  test("looks at most once per interval; readings that fail and runtimes that cannot collect are skipped", () => {
    const { state, probe } = fakeProbe();
    const bound = new HeapBound(probe, 100);
    bound.check(0);
    state.heap += 4 * HEAP_SLACK;
    bound.check(50);
    expect(state.collections).toBe(0);
    bound.check(100);
    expect(state.collections).toBe(1);
    const blind = new HeapBound({ heapUsed: () => undefined, resident: () => undefined, collect: () => expect.unreachable() as never }, 0);
    blind.check(1);
    blind.check(2);
    let heap = 0;
    const unable = new HeapBound({ heapUsed: () => (heap += 4 * HEAP_SLACK), resident: () => 0, collect: () => false }, 0);
    unable.check(1);
    unable.check(2);
    expect(unable.collections).toBe(0);
  });

  test("a collection the resident set asked for (native garbage) keeps the base slack: only heap growth found alive doubles it", () => {
    const { state, probe } = fakeProbe();
    const bound = new HeapBound(probe, 0);
    bound.check(1);
    // the resident set grew past its slack; the heap grew a little, alive (the walk's list of
    // names), far within its own slack: nothing says a large live graph is being built
    state.rss += RSS_SLACK + MiB;
    state.heap += MiB;
    state.live += MiB;
    bound.check(2);
    expect(state.collections).toBe(1);
    state.rss += RSS_SLACK + MiB; // would wait for twice the slack had it doubled
    bound.check(3);
    expect(state.collections).toBe(2);
  });

  test("start() takes the floors at the start of a pass, so growth before the first look counts (and collects first when asked)", () => {
    const { state, probe } = fakeProbe();
    const bound = new HeapBound(probe, 0);
    bound.start();
    expect(state.collections).toBe(0);
    state.rss += RSS_SLACK + MiB; // a walk that lists every repository before the first tick
    bound.check(1);
    expect(state.collections).toBe(1);
    const rssSlack = 2 * MiB;
    const other = fakeProbe();
    other.state.heap += 3 * MiB; // garbage a previous pass left
    const tight = new HeapBound(other.probe, 0, rssSlack);
    tight.start(true);
    expect(other.state.collections).toBe(1);
    expect(tight.collections).toBe(1);
    other.state.rss += rssSlack + MiB; // beyond the smaller slack given, within the default one
    tight.check(1);
    expect(other.state.collections).toBe(2);
  });

  test("a Pacer consults its bound where it yields", async () => {
    const { state, probe } = fakeProbe();
    const pacer = new Pacer(0, new HeapBound(probe, 0));
    await pacer.tick();
    state.heap += 2 * HEAP_SLACK;
    await pacer.tick();
    expect(state.collections).toBe(1);
  });
});

describe("passes and the index cache", () => {
  for (const pass of ["gc", "retention"] as const) {
    test(`a ${pass} pass reads index.json without keeping it: requests find the index cache as it was`, async () => {
      const reads = new Map<string, number>();
      const disk: Disk = {
        ...realDisk,
        readFile: (path) => {
          if (path.endsWith("index.json")) reads.set(path, (reads.get(path) ?? 0) + 1);
          return realDisk.readFile(path);
        },
      };
      const total = () => [...reads.values()].reduce((a, b) => a + b, 0);
      const policies = [{ repositories: ["**"], keepLast: 10, keepTags: [], keepWithinMs: 0, untaggedAfterMs: 0 }];
      const repos = ["a", "b", "c"];
      await using first = await createLifecycleRegistry({}, { disk });
      for (const repo of repos) await pushImage(first, repo, "v1", repo);
      // a fresh process on the same root: nothing cached yet
      await using r = await createLifecycleRegistry({ retention: { intervalMs: 0, dryRun: false, policies } }, { root: first.root, disk });
      const run = () => (pass === "gc" ? r.lifecycle.gc() : r.lifecycle.retention());
      const read = async () => {
        for (const repo of repos) expect((await r.store.indexes.index(repo))?.doc.manifests.length).toBe(1);
      };
      let before = total();
      await run();
      expect(total()).toBeGreaterThan(before); // the pass did read them
      // so a request reads each from disk once, and then finds it cached
      before = total();
      await read();
      expect(total() - before).toBe(repos.length);
      await read();
      expect(total() - before).toBe(repos.length);
      // and a later pass leaves the requests' entries where they were
      await run();
      before = total();
      await read();
      expect(total()).toBe(before);
    });
  }
});

describe("scrub remembers nothing per pooled blob", () => {
  test("each stored file is hashed once: pool entries, their links in repositories, files shared outside the pool, single files", async () => {
    await using r = await createLifecycleRegistry();
    const img = await pushImage(r, "a", "v1", "shared");
    await pushImage(r, "b", "v1", "shared"); // the same three blobs: links of a's pool entries
    // a layout dropped in whose blobs two repositories share by hard link, outside the pool
    const blob = "dropped bytes";
    const digest = sha256(blob);
    for (const repo of ["c", "d"]) mkdirSync(join(r.root, repo, "blobs", "sha256"), { recursive: true });
    writeFileSync(join(r.root, "c", "blobs", "sha256", digest.slice(7)), blob);
    linkSync(join(r.root, "c", "blobs", "sha256", digest.slice(7)), join(r.root, "d", "blobs", "sha256", digest.slice(7)));
    writeFileSync(join(r.root, "c", "blobs", "sha256", sha256("single").slice(7)), "single");
    for (const repo of ["c", "d"]) {
      writeFileSync(join(r.root, repo, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
      writeFileSync(join(r.root, repo, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [] }));
    }
    const report = await r.lifecycle.scrub();
    // config, layer and manifest once (pool), the shared dropped blob once, the single file once
    expect(report.blobsChecked).toBe(5);
    expect(report.bytesChecked).toBe(img.config.length + img.layer.length + img.manifest.length + blob.length + "single".length);
    expect(report.quarantined).toEqual([]);
  });
});

describe("retention asks for times only where a rule needs them", () => {
  test("a repository with no more tags than keep_last is kept without a statistics lookup; with more, every tag is weighed", async () => {
    const policies = [{ repositories: ["**"], keepLast: 3, keepTags: [], keepWithinMs: 0, untaggedAfterMs: 0 }];
    await using r = await createLifecycleRegistry({ retention: { intervalMs: 0, dryRun: false, policies } });
    for (const tag of ["v1", "v2", "v3"]) await pushImage(r, "few", tag, `few ${tag}`);
    for (const tag of ["v1", "v2", "v3", "v4"]) await pushImage(r, "many", tag, `many ${tag}`);
    const asked: string[] = [];
    const usage = r.lifecycle.usage;
    const lastUsed = usage.lastUsed.bind(usage);
    usage.lastUsed = (repo, ref, digest) => {
      asked.push(repo);
      return lastUsed(repo, ref, digest);
    };
    const report = await r.lifecycle.retention();
    expect(asked.filter((repo) => repo === "few")).toEqual([]);
    expect(asked.filter((repo) => repo === "many").length).toBeGreaterThanOrEqual(4);
    // one tag of "many" goes (the least recently used); "few" keeps all
    expect(report.tags.map((t) => t.repo)).toEqual(["many"]);
  });
});
