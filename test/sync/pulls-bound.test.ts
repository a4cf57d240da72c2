/**
 * The pulls PullThrough records for the warm set between two flushes (every 60 s by
 * default) are bounded by the tags served, not by the requests: a client pulling one tag in
 * a loop adds one entry, whose time is the latest pull (found by the review of issue 9).
 */
import { expect, test } from "bun:test";
import { silentLogger } from "../../daemon/log";
import { BlobFetches } from "../../daemon/sync/blobfetch";
import { PullThrough } from "../../daemon/sync/pullthrough";
import type { SyncState } from "../../daemon/meta/syncstate";
import type { Upstream } from "../../daemon/sync/upstream";
import { createTestRegistry, pushImage } from "../helpers/registry";

test("pulling one cached tag many times records one pull, at the latest time", async () => {
  await using r = await createTestRegistry();
  await pushImage(r, "lib/app", "stable", "seed");
  await pushImage(r, "lib/app", "other", "seed 2");
  // an on-demand upstream that is down: cached tags are served without asking it
  const upstream = {
    name: "up",
    config: { onDemand: true, tagCheckInterval: 3600 },
    filters: { toUpstream: (repo: string) => repo, repo: () => true, tag: () => true },
    client: { breaker: { state: "down" } },
  } as unknown as Upstream;
  const state = { lastCheck: () => ({ at: Date.now() }) } as unknown as SyncState;
  const pt = new PullThrough(r.registry, [upstream], {} as BlobFetches, state, silentLogger);
  for (let i = 0; i < 500; i++) await pt.manifest("lib/app", "stable", null);
  const before = Date.now();
  await pt.manifest("lib/app", "other", null);
  await pt.manifest("lib/app", "stable", null);
  const pulls = pt.takePulls();
  expect(pulls.map((p) => p.tag).sort()).toEqual(["other", "stable"]);
  expect(pulls.find((p) => p.tag === "stable")!.at).toBeGreaterThanOrEqual(before);
  expect(pt.takePulls()).toEqual([]);
});
