/**
 * Metric families per storage root (only registered when `[[storage.subpaths]]` are set):
 * whether each root is available, its pool bytes and blobs (its own walk, cached between
 * scrapes as the whole-store figures are), its file system's free bytes, and its GC and
 * scrub counters. Labels: `prefix` ("" for the main root) and `root` (the directory).
 */
import type { Family } from "../../metrics/registry";
import type { StorageFigures } from "../api";
import type { RootLifecycles } from "./lifecycles";
import type { OpenedRoot } from "./open";

/** How long a root's walk is reused between scrapes. */
const WALK_MAX_AGE_MS = 30_000;

const cache = new WeakMap<OpenedRoot, { at: number; figures: StorageFigures }>();

function figuresOf(root: OpenedRoot): StorageFigures | undefined {
  if (!root.store) return undefined;
  const hit = cache.get(root);
  if (hit && performance.now() - hit.at <= WALK_MAX_AGE_MS) return hit.figures;
  const figures = root.store.meter.figures();
  cache.set(root, { at: performance.now(), figures });
  return figures;
}

/** The per-root families at scrape time. */
export function rootFamilies(roots: readonly OpenedRoot[], lifecycles: RootLifecycles): Family[] {
  const labels = (r: OpenedRoot) => ({ prefix: r.prefix, root: r.dir });
  const available = roots.filter((r) => r.store);
  const lcOf = (r: OpenedRoot) => lifecycles.roots.find((x) => x.prefix === r.prefix)?.lc.stats();
  return [
    { name: "berth_storage_root_up", help: "1 when the storage root was usable at start-up and is served, 0 when its prefix answers 503.", type: "gauge", samples: roots.map((r) => ({ labels: labels(r), value: r.store ? 1 : 0 })) },
    { name: "berth_storage_root_pool_bytes", help: "Bytes in the root's blob pool (each distinct blob of the root once).", type: "gauge", samples: available.map((r) => ({ labels: labels(r), value: figuresOf(r)!.poolBytes })) },
    { name: "berth_storage_root_pool_blobs", help: "Distinct blobs in the root's pool.", type: "gauge", samples: available.map((r) => ({ labels: labels(r), value: figuresOf(r)!.poolBlobs })) },
    { name: "berth_storage_root_free_bytes", help: "Free bytes on the root's file system.", type: "gauge", samples: available.map((r) => ({ labels: labels(r), value: r.store!.meter.space().free })) },
    { name: "berth_storage_root_gc_passes_total", help: "Garbage-collection passes completed on the root.", type: "counter", samples: available.map((r) => ({ labels: labels(r), value: lcOf(r)?.gcPasses ?? 0 })) },
    { name: "berth_storage_root_scrub_runs_total", help: "Scrubs completed on the root.", type: "counter", samples: available.map((r) => ({ labels: labels(r), value: lcOf(r)?.scrub?.runs ?? 0 })) },
  ];
}
