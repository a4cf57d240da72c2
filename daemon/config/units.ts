/**
 * The units of the configuration: byte sizes ("64 MiB"), durations ("30s", "7d") and space
 * floors ("5%" or a size). Pure, and below every configuration module (schema.ts and the
 * table checkers such as subpaths.ts take them from here).
 */

const MiB = 1024 * 1024;
const DAY = 86_400;

/** An amount of free space: absolute bytes or a percentage of the file system's size. */
export type Space = { bytes: number } | { percent: number };

const UNITS: Record<string, number> = {
  "": 1, b: 1, k: 1000, kb: 1000, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12,
  kib: 1024, mib: MiB, gib: 1024 * MiB, tib: 1024 * 1024 * MiB,
};

/** Parses a byte size; returns undefined when the text is not one. */
export function parseBytes(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) ? value : undefined;
  if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : undefined;
  if (typeof value !== "string") return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  if (!m) return undefined;
  const unit = UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  const n = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(n) ? n : undefined;
}

const DURATION_UNITS: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600, d: DAY, w: 7 * DAY };

/** Parses a duration into seconds; returns undefined when the value is not one. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value === "bigint") return value >= 0n && Number.isSafeInteger(Number(value)) ? Number(value) : undefined;
  if (typeof value !== "string") return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$/.exec(value);
  if (!m) return undefined;
  const n = Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Parses a space floor: "5%" or a byte size; returns undefined when the value is not one. */
export function parseSpace(value: unknown): Space | undefined {
  if (typeof value === "string") {
    const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(value);
    if (m) {
      const percent = Number(m[1]);
      return percent <= 100 ? { percent } : undefined;
    }
  }
  const bytes = parseBytes(value);
  return bytes === undefined || bytes < 0 ? undefined : { bytes };
}
