/**
 * The providers berth itself registers: HTTP, storage, uploads, process and host figures.
 * Host figures are sampled at most every `hostIntervalMs` (only when /metrics is scraped).
 * Process memory is read without throwing: Bun reads /proc for it, which needs a descriptor,
 * and under EMFILE the read fails; the process series are then left out of that scrape and
 * the host figures still appear.
 */
import { sampleHost, type HostSample } from "../platform/host";
import { residentBytes } from "../platform/memory";
import { VERSION } from "../version";
import type { HttpMetrics } from "./http";
import type { Family, MetricsRegistry } from "./registry";
import { storageProvider } from "./storage";
import type { StorageFigures } from "../storage/api";

/** What the standard providers read. */
export interface StandardSources {
  /** The storage root (host figures: the file system it is on). */
  root: string;
  /** Storage's figures (storage/api.ts, UsageMeter.figures); none: no storage families. */
  storageFigures?: () => StorageFigures;
  http: HttpMetrics;
  uploadsInFlight: () => number;
  /** Blob bytes written into storage so far (uploads). */
  ingressBytes: () => number;
  board: string;
  hostIntervalMs: number;
}

/** Registers berth's own providers on `registry`. */
export function registerStandard(registry: MetricsRegistry, s: StandardSources): void {
  const started = Date.now() / 1000;
  registry.provide("build", () => [
    { name: "berth_build_info", help: "Constant 1, labelled with the version and board profile.", type: "gauge", samples: [{ labels: { version: VERSION, board: s.board }, value: 1 }] },
    { name: "berth_start_time_seconds", help: "Unix time the daemon started.", type: "gauge", samples: [{ value: started }] },
  ]);
  registry.provide("http", () => s.http.families());
  if (s.storageFigures) registry.provide("storage", storageProvider(s.storageFigures, s.hostIntervalMs));
  registry.provide("uploads", () => [
    { name: "berth_uploads_in_flight", help: "Blob upload sessions open now.", type: "gauge", samples: [{ value: s.uploadsInFlight() }] },
    { name: "berth_storage_ingress_bytes_total", help: "Blob bytes written by uploads (any transfer coding).", type: "counter", samples: [{ value: s.ingressBytes() }] },
  ]);
  let host: { at: number; sample: HostSample } | undefined;
  registry.provide("host", (): Family[] => {
    if (!host || performance.now() - host.at > s.hostIntervalMs) host = { at: performance.now(), sample: sampleHost(s.root) };
    const h = host.sample;
    const rss = residentBytes();
    const heap = heapUsedBytes();
    return [
      { name: "berth_process_resident_memory_bytes", help: "Resident set size of the daemon.", type: "gauge", samples: rss === undefined ? [] : [{ value: rss }] },
      { name: "berth_process_heap_bytes", help: "JavaScript heap in use.", type: "gauge", samples: heap === undefined ? [] : [{ value: heap }] },
      { name: "berth_host_memory_total_bytes", help: "MemTotal from /proc/meminfo.", type: "gauge", samples: [{ value: h.memTotalBytes }] },
      { name: "berth_host_memory_available_bytes", help: "MemAvailable from /proc/meminfo.", type: "gauge", samples: [{ value: h.memAvailableBytes }] },
      { name: "berth_host_disk_free_bytes", help: "Bytes available to the daemon on the storage root's file system.", type: "gauge", samples: [{ value: h.diskFreeBytes }] },
      { name: "berth_host_disk_total_bytes", help: "Size of the storage root's file system.", type: "gauge", samples: [{ value: h.diskTotalBytes }] },
      { name: "berth_host_load1", help: "One-minute load average.", type: "gauge", samples: [{ value: h.load1 }] },
      {
        name: "berth_host_temperature_celsius",
        help: "Thermal zone temperatures from /sys/class/thermal (absent where there are none).",
        type: "gauge",
        samples: Object.entries(h.temperaturesC).map(([zone, value]) => ({ labels: { zone }, value })),
      },
    ];
  });
}

/** JavaScript heap in use, or undefined when it cannot be read right now (never throws). */
function heapUsedBytes(): number | undefined {
  try {
    return process.memoryUsage().heapUsed;
  } catch {
    return undefined;
  }
}
