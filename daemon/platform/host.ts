/**
 * Host figures for continuous sampling, read straight from /proc and /sys and statfs(2): no
 * processes spawned (systeminformation, which spawns shell pipelines per call, is for the
 * one-off `berth board detect` only). Each read is a few small files; cheap enough for a
 * scrape every few seconds on a Pi.
 */
import { readFileSync, readdirSync, statfsSync } from "node:fs";
import { loadavg } from "node:os";

/** One sample of the host. */
export interface HostSample {
  memTotalBytes: number;
  memAvailableBytes: number;
  /** Bytes free for unprivileged users and total, on the file system holding `path`. */
  diskFreeBytes: number;
  diskTotalBytes: number;
  /** Thermal zones in degrees Celsius, by zone type ("cpu-thermal", "x86_pkg_temp"); empty where there are none. */
  temperaturesC: Record<string, number>;
  load1: number;
}

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** Parses /proc/meminfo (kB values) into bytes for the keys asked. */
export function parseMeminfo(text: string): { total: number; available: number } {
  const get = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { total: get("MemTotal"), available: get("MemAvailable") };
}

/** Reads the thermal zones under `base` (default /sys/class/thermal). */
export function readTemperatures(base = "/sys/class/thermal"): Record<string, number> {
  const out: Record<string, number> = {};
  let zones: string[];
  try {
    zones = readdirSync(base).filter((z) => z.startsWith("thermal_zone"));
  } catch {
    return out;
  }
  for (const z of zones) {
    const milli = Number(read(`${base}/${z}/temp`).trim());
    if (!Number.isFinite(milli) || read(`${base}/${z}/temp`) === "") continue;
    const type = read(`${base}/${z}/type`).trim() || z;
    out[out[type] === undefined ? type : `${type}-${z}`] = milli / 1000;
  }
  return out;
}

/** Samples the host; `path` is the storage root (its file system is the one reported). */
export function sampleHost(path: string): HostSample {
  const mem = parseMeminfo(read("/proc/meminfo"));
  let diskFreeBytes = 0;
  let diskTotalBytes = 0;
  try {
    const s = statfsSync(path);
    diskFreeBytes = s.bavail * s.bsize;
    diskTotalBytes = s.blocks * s.bsize;
  } catch {
    // root not created yet: report zero
  }
  return { memTotalBytes: mem.total, memAvailableBytes: mem.available, diskFreeBytes, diskTotalBytes, temperaturesC: readTemperatures(), load1: loadavg()[0] ?? 0 };
}
