/**
 * Metric families for the background work: storage lifecycle (GC, scrub, quarantine, write
 * accounting), the scheduler (queue, running tasks, IO budget) and sync (upstream state,
 * fetches in flight). Each reads the plain-object state its module already keeps, at scrape
 * time only.
 */
import type { LifecycleStats } from "../lifecycle/lifecycle";
import type { Family } from "./registry";

type Obj = Record<string, unknown>;

function num(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}

function obj(value: unknown): Obj {
  return typeof value === "object" && value !== null ? (value as Obj) : {};
}

/** Families from `Lifecycle.stats()` (typed: a renamed field is a compile error, not a silent 0). */
export function lifecycleFamilies(lc: { stats(): LifecycleStats }): Family[] {
  const s = lc.stats();
  return [
    { name: "berth_gc_passes_total", help: "Online garbage-collection passes completed.", type: "counter", samples: [{ value: s.gcPasses }] },
    { name: "berth_gc_last_freed_bytes", help: "Bytes the last garbage-collection pass freed.", type: "gauge", samples: [{ value: s.lastGc?.bytesFreed ?? 0 }] },
    { name: "berth_scrub_runs_total", help: "Scrubs completed.", type: "counter", samples: [{ value: s.scrub?.runs ?? 0 }] },
    { name: "berth_scrub_checked_bytes_total", help: "Bytes re-hashed by scrubs.", type: "counter", samples: [{ value: s.scrub?.bytesChecked ?? 0 }] },
    { name: "berth_scrub_mismatches_total", help: "Blobs whose bytes did not match their digest (moved to quarantine).", type: "counter", samples: [{ value: s.scrub?.mismatches ?? 0 }] },
    { name: "berth_quarantined_blobs", help: "Blobs in quarantine.", type: "gauge", samples: [{ value: s.quarantined ?? 0 }] },
    { name: "berth_disk_written_bytes_total", help: "Bytes berth wrote through its storage layer.", type: "counter", samples: [{ value: s.writes.berth?.bytesWritten ?? 0 }] },
  ];
}

/** Families from `Scheduler.state()`. */
export function schedulerFamilies(scheduler: { state(): Obj }): Family[] {
  const s = scheduler.state();
  const budget = obj(s.budget);
  const io = (group: unknown) =>
    (["read", "write"] as const).map((kind) => ({ labels: { kind }, value: num(obj(obj(group)[kind]).bytes) }));
  return [
    { name: "berth_scheduler_queued_tasks", help: "Background tasks waiting to run.", type: "gauge", samples: [{ value: Array.isArray(s.queue) ? s.queue.length : 0 }] },
    { name: "berth_scheduler_running_tasks", help: "Background tasks running.", type: "gauge", samples: [{ value: Array.isArray(s.running) ? s.running.length : 0 }] },
    { name: "berth_scheduler_in_window", help: "1 when a maintenance window is open (heavy tasks may start).", type: "gauge", samples: [{ value: s.inWindow ? 1 : 0 }] },
    { name: "berth_io_foreground_bytes_total", help: "Client IO counted against the IO budget.", type: "counter", samples: io(budget.foreground) },
    { name: "berth_io_background_bytes_total", help: "Background IO that went through the IO budget.", type: "counter", samples: io(budget.background) },
    { name: "berth_io_background_waited_seconds_total", help: "Time background work waited for the IO budget.", type: "counter", samples: [{ value: num(budget.backgroundWaitedMs) / 1000 }] },
  ];
}

/** Families from `SyncService.info()`. */
export function syncFamilies(sync: { info(): Obj }): Family[] {
  const s = sync.info();
  const registries = Array.isArray(s.registries) ? (s.registries as Obj[]) : [];
  return [
    {
      name: "berth_sync_upstream_up",
      help: "1 while the upstream is considered reachable, 0 while it is marked down.",
      type: "gauge",
      samples: registries.map((r) => ({ labels: { upstream: String(r.name) }, value: r.state === "down" ? 0 : 1 })),
    },
    {
      name: "berth_sync_upstream_requests_total",
      help: "Requests sent to the upstream.",
      type: "counter",
      samples: registries.map((r) => ({ labels: { upstream: String(r.name) }, value: num(r.requests) })),
    },
    {
      name: "berth_sync_corrupt_blobs_total",
      help: "Blobs the upstream sent with bytes that did not match their digest or announced size (discarded, nothing stored).",
      type: "counter",
      samples: registries.map((r) => ({ labels: { upstream: String(r.name) }, value: num(r.corruptBlobs) })),
    },
    {
      name: "berth_sync_negative_cache_hits_total",
      help: "Misses answered from the negative cache instead of asking the upstream again.",
      type: "counter",
      samples: registries.map((r) => ({ labels: { upstream: String(r.name) }, value: num((r.negativeCache as Obj | undefined)?.hits) })),
    },
    { name: "berth_sync_fetches_in_flight", help: "Blob fetches from upstreams in flight.", type: "gauge", samples: [{ value: Array.isArray(s.fetches) ? s.fetches.length : 0 }] },
    { name: "berth_sync_pins", help: "Pinned images (always mirrored, never evicted).", type: "gauge", samples: [{ value: Array.isArray(s.pins) ? s.pins.length : 0 }] },
  ];
}
