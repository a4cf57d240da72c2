/**
 * `[[storage.subpaths]]`: further storage roots, each serving the repositories under one
 * name prefix (zot calls them subpaths; the word is kept so that a zot operator recognises
 * it). The repositories no prefix claims stay in `[storage] root`. Checked here in two
 * steps: {@link checkSubpaths} validates the tables (the schema's custom check, under keys
 * such as `storage.subpaths[0].prefix`), {@link subpathLayoutProblems} compares them with
 * each other and with the main root (duplicate prefixes, roots that are the same directory
 * or one inside another). Pure: whether a root exists and is writable is asked at start-up
 * (storage/roots/open.ts) and by `berth verify` (config/verify.ts).
 *
 * A prefix is whole name components, each ending in "/" ("factory/", "site/a/"), so that two
 * prefixes are either disjoint, equal (an error) or nested; nested prefixes are allowed and
 * the longest wins ("factory/" on one disk, "factory/cams/" on another).
 */
import { resolve, sep } from "node:path";
import { nameProblem } from "../oci/names";
import { parseBytes, parseSpace, type Space } from "./units";

/** One further storage root, validated, defaults filled in. */
export interface SubpathConfig {
  /** Repository name prefix ending in "/", e.g. "factory/". */
  prefix: string;
  /** Directory of the root (an OCI layout tree of its own; berth never creates it). */
  root: string;
  /** When false, a root missing or read-only at start-up is logged and its prefix answers 503 until a restart. */
  required: boolean;
  /** Hard-link identical blobs within this root (undefined: `[storage] dedupe`). */
  dedupe: boolean | undefined;
  /** Bytes this root may hold; 0 = no quota. */
  maxBytes: number;
  /** Free space pushes must leave on this root's file system (undefined: `[quota] min_free`). */
  minFree: Space | undefined;
  /** Periodic GC of this root (`[gc] interval`); manual GC always runs. */
  gc: boolean;
  /** Periodic scrubs of this root (`[scrub] interval`); manual scrubs always run. */
  scrub: boolean;
}

const KEYS = new Set(["prefix", "root", "required", "dedupe", "max_bytes", "min_free", "gc", "scrub"]);

/** A problem with `prefix` as a repository name prefix, or undefined. */
export function prefixProblem(prefix: string): string | undefined {
  if (!prefix.endsWith("/")) return `"${prefix}" must end with "/" (whole name components, e.g. "factory/")`;
  const problem = nameProblem(prefix.slice(0, -1));
  return problem ? `"${prefix}" is not a valid repository name prefix: ${problem}` : undefined;
}

/** The schema's check of `[[storage.subpaths]]`; empty when a problem was reported. */
export function checkSubpaths(value: unknown, key: string, problems: string[]): SubpathConfig[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === "object" && v !== null && !Array.isArray(v))) {
    problems.push(`${key}: expected an array of tables ([[${key}]])`);
    return [];
  }
  const before = problems.length;
  const out = (value as Record<string, unknown>[]).map((t, i): SubpathConfig => {
    const at = `${key}[${i}]`;
    for (const k of Object.keys(t)) if (!KEYS.has(k)) problems.push(`${at}.${k}: unknown key`);
    const str = (k: string): string => {
      const v = t[k];
      if (v === undefined) return void problems.push(`${at}.${k}: required`), "";
      if (typeof v !== "string" || v.length === 0) return void problems.push(`${at}.${k}: expected a non-empty string`), "";
      return v;
    };
    const bool = (k: string, dflt: boolean | undefined): boolean | undefined => {
      const v = t[k];
      if (v === undefined) return dflt;
      if (typeof v !== "boolean") return void problems.push(`${at}.${k}: expected true or false`), dflt;
      return v;
    };
    const prefix = str("prefix");
    const problem = prefix ? prefixProblem(prefix) : undefined;
    if (problem) problems.push(`${at}.prefix: ${problem}`);
    const root = str("root");
    let maxBytes = 0;
    if (t.max_bytes !== undefined) {
      const n = parseBytes(t.max_bytes);
      if (n === undefined || n < 0) problems.push(`${at}.max_bytes: expected a size in bytes, e.g. 4294967296 or "4 GiB"`);
      else maxBytes = n;
    }
    let minFree: Space | undefined;
    if (t.min_free !== undefined) {
      minFree = parseSpace(t.min_free);
      if (minFree === undefined) problems.push(`${at}.min_free: expected a size in bytes ("2 GiB") or a percentage from 0% to 100% ("5%")`);
    }
    return { prefix, root, required: bool("required", true)!, dedupe: bool("dedupe", undefined), maxBytes, minFree, gc: bool("gc", true)!, scrub: bool("scrub", true)! };
  });
  return problems.length === before ? out : [];
}

/** True when directory `inner` is `outer` or lies inside it (paths resolved, not followed). */
export function within(inner: string, outer: string): boolean {
  const a = resolve(inner);
  const b = resolve(outer);
  return a === b || a.startsWith(b.endsWith(sep) ? b : b + sep);
}

/**
 * Problems of the subpaths as a whole: a prefix given twice, a root that is the main root or
 * another subpath's root, or lies inside one, or holds one (each root is a complete layout
 * tree that its own walk, GC and lock own).
 */
export function subpathLayoutProblems(mainRoot: string, subpaths: readonly SubpathConfig[], key = "storage.subpaths"): string[] {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  subpaths.forEach((s, i) => {
    const first = seen.get(s.prefix);
    if (first !== undefined) problems.push(`${key}[${i}].prefix: "${s.prefix}" is already the prefix of ${key}[${first}]`);
    else seen.set(s.prefix, i);
  });
  const roots = [{ at: "storage.root", root: mainRoot }, ...subpaths.map((s, i) => ({ at: `${key}[${i}].root`, root: s.root }))];
  for (let i = 1; i < roots.length; i++) {
    const r = roots[i]!;
    for (let j = 0; j < roots.length; j++) {
      if (j === i) continue;
      const o = roots[j]!;
      if (resolve(r.root) === resolve(o.root)) {
        if (j < i) problems.push(`${r.at}: "${r.root}" is the same directory as ${o.at}; each root needs its own directory`);
      } else if (within(r.root, o.root)) {
        problems.push(`${r.at}: "${r.root}" lies inside ${o.at} ("${o.root}"); roots must not nest`);
      } else if (within(o.root, r.root) && j === 0) {
        problems.push(`${r.at}: "${r.root}" holds ${o.at} ("${o.root}"); roots must not nest`);
      }
    }
  }
  return problems;
}
