/**
 * The `[[sync.registries]]` tables: one upstream registry each, with where to reach it,
 * how to authenticate and verify it, what to mirror, and how hard to use it. Checked here
 * and reported under keys such as `sync.registries[0].tags`. Pure: files named here
 * (credentials, certificates) are checked by config/verify.ts (`berth verify`, and `serve`
 * before it starts) and read by the sync module at start-up.
 *
 * Local and upstream names: an upstream repository U is stored locally as
 * `dest_prefix/` + (U without `strip_prefix`); a local pull of L maps back the other way.
 */
import { syncPinProblem } from "../oci/pins";
import { parseWindow } from "../scheduler/windows";

/** One upstream registry, validated, with defaults filled in. */
export interface SyncRegistryConfig {
  /** Name in logs, errors and the admin API (default: host of the first URL). */
  name: string;
  /** Base URLs (scheme://host[:port]), tried in order. */
  urls: string[];
  /** TOML file with `username` + `password`, or `token`; "" = anonymous. */
  credentialsFile: string;
  tlsVerify: boolean;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** Upstream repository globs: `*` within one path component, `**` across components. */
  repos: string[];
  /** Tags to mirror (regex), and tags never to mirror; "" = no filter. */
  tags: string;
  excludeTags: string;
  /** A semver range tags must satisfy (tags that are not versions are skipped); "" = no filter. */
  semver: string;
  /** Platforms kept from an index, "os/arch[/variant]"; empty = all. */
  platforms: string[];
  destPrefix: string;
  stripPrefix: string;
  /** Fetch what local clients ask for and do not find. */
  onDemand: boolean;
  /** Mirror an image only when one of its upstream signatures verifies with the trust store ([trust]). */
  onlySigned: boolean;
  /** Seconds between scheduled syncs of the configured content; 0 = none. */
  interval: number;
  /** Windows in which scheduled syncs may run, "HH:MM-HH:MM"; empty = any time. */
  windows: string[];
  /** Tags ("repo:tag", upstream names) always mirrored and never evicted. */
  pinned: string[];
  /** Seconds during which a tag pulled locally stays in the warm set; 0 = no warm set. */
  warmWindow: number;
  /** A tag is re-checked upstream at most once per this many seconds. */
  tagCheckInterval: number;
  retries: number;
  retryDelayMs: number;
  /** Time allowed for an upstream response's headers, in ms. */
  timeoutMs: number;
  /** Requests per second toward the upstream; 0 = unlimited. */
  requestsPerSecond: number;
  /** Bytes per second from the upstream; 0 = unlimited. */
  bytesPerSecond: number;
  /** Consecutive failures that mark the upstream down. */
  breakerFailures: number;
  /** While down, the upstream is probed this often (ms). */
  probeIntervalMs: number;
  /** Seconds a "not found" (or a blob that failed its digest) is remembered; 0 = ask every time. */
  negativeCacheTtl: number;
  /** Most such answers remembered (least recently used leave first). */
  negativeCacheEntries: number;
}

type Spec =
  | { kind: "string"; default: string }
  | { kind: "bool"; default: boolean }
  | { kind: "int"; default: number; min: number; max: number }
  | { kind: "strings"; default: string[] };

const FIELDS: Record<string, [keyof SyncRegistryConfig, Spec]> = {
  name: ["name", { kind: "string", default: "" }],
  urls: ["urls", { kind: "strings", default: [] }],
  credentials_file: ["credentialsFile", { kind: "string", default: "" }],
  tls_verify: ["tlsVerify", { kind: "bool", default: true }],
  ca_file: ["caFile", { kind: "string", default: "" }],
  cert_file: ["certFile", { kind: "string", default: "" }],
  key_file: ["keyFile", { kind: "string", default: "" }],
  repos: ["repos", { kind: "strings", default: ["**"] }],
  tags: ["tags", { kind: "string", default: "" }],
  exclude_tags: ["excludeTags", { kind: "string", default: "" }],
  semver: ["semver", { kind: "string", default: "" }],
  platforms: ["platforms", { kind: "strings", default: [] }],
  dest_prefix: ["destPrefix", { kind: "string", default: "" }],
  strip_prefix: ["stripPrefix", { kind: "string", default: "" }],
  on_demand: ["onDemand", { kind: "bool", default: true }],
  only_signed: ["onlySigned", { kind: "bool", default: false }],
  interval: ["interval", { kind: "int", default: 0, min: 0, max: 30 * 86400 }],
  windows: ["windows", { kind: "strings", default: [] }],
  pinned: ["pinned", { kind: "strings", default: [] }],
  warm_window: ["warmWindow", { kind: "int", default: 86400, min: 0, max: 365 * 86400 }],
  tag_check_interval: ["tagCheckInterval", { kind: "int", default: 300, min: 0, max: 30 * 86400 }],
  retries: ["retries", { kind: "int", default: 3, min: 0, max: 20 }],
  retry_delay_ms: ["retryDelayMs", { kind: "int", default: 500, min: 1, max: 600_000 }],
  timeout_ms: ["timeoutMs", { kind: "int", default: 10_000, min: 100, max: 600_000 }],
  requests_per_second: ["requestsPerSecond", { kind: "int", default: 0, min: 0, max: 100_000 }],
  bytes_per_second: ["bytesPerSecond", { kind: "int", default: 0, min: 0, max: Number.MAX_SAFE_INTEGER }],
  breaker_failures: ["breakerFailures", { kind: "int", default: 3, min: 1, max: 1000 }],
  probe_interval_ms: ["probeIntervalMs", { kind: "int", default: 5000, min: 50, max: 3_600_000 }],
  negative_cache_ttl: ["negativeCacheTtl", { kind: "int", default: 30, min: 0, max: 86400 }],
  negative_cache_entries: ["negativeCacheEntries", { kind: "int", default: 1024, min: 1, max: 1_000_000 }],
};

function regexProblem(text: string): string | undefined {
  try {
    new RegExp(text);
    return undefined;
  } catch (err) {
    return `not a valid regular expression (${(err as Error).message})`;
  }
}

function checkOne(table: Record<string, unknown>, at: string, problems: string[]): SyncRegistryConfig {
  const out: Record<string, unknown> = {};
  for (const [key, [prop, spec]] of Object.entries(FIELDS)) {
    const value = table[key];
    const k = `${at}.${key}`;
    out[prop] = spec.default;
    if (value === undefined) continue;
    switch (spec.kind) {
      case "string":
        if (typeof value !== "string") problems.push(`${k}: expected a string`);
        else out[prop] = value;
        break;
      case "bool":
        if (typeof value !== "boolean") problems.push(`${k}: expected true or false`);
        else out[prop] = value;
        break;
      case "int": {
        const n = typeof value === "bigint" ? Number(value) : value;
        if (typeof n !== "number" || !Number.isInteger(n)) problems.push(`${k}: expected an integer`);
        else if (n < spec.min || n > spec.max) problems.push(`${k}: ${n} is outside ${spec.min}..${spec.max}`);
        else out[prop] = n;
        break;
      }
      case "strings":
        if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) problems.push(`${k}: expected an array of strings`);
        else out[prop] = value;
        break;
    }
  }
  for (const key of Object.keys(table)) if (!(key in FIELDS)) problems.push(`${at}.${key}: unknown key`);
  const c = out as unknown as SyncRegistryConfig;
  if (c.urls.length === 0) problems.push(`${at}.urls: at least one upstream URL is required`);
  c.urls.forEach((u, i) => {
    let url: URL | undefined;
    try {
      url = new URL(u);
    } catch {
      // reported below
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || (url.pathname !== "/" && url.pathname !== "")) {
      problems.push(`${at}.urls[${i}]: "${u}" is not an http(s)://host[:port] URL`);
    }
  });
  c.urls = c.urls.map((u) => u.replace(/\/+$/, ""));
  if (!c.name && c.urls[0]) c.name = c.urls[0].replace(/^https?:\/\//, "");
  for (const key of ["tags", "exclude_tags"] as const) {
    const text = key === "tags" ? c.tags : c.excludeTags;
    const problem = text ? regexProblem(text) : undefined;
    if (problem) problems.push(`${at}.${key}: ${problem}`);
  }
  if (c.semver && !/^[\s\d.xX*^~<>=|v-]+$/.test(c.semver)) problems.push(`${at}.semver: "${c.semver}" is not a semver range`);
  c.platforms.forEach((p, i) => {
    if (!/^[a-z0-9_-]+\/[a-z0-9_-]+(\/[a-z0-9_-]+)?$/.test(p)) problems.push(`${at}.platforms[${i}]: "${p}" is not "os/arch" or "os/arch/variant"`);
  });
  c.windows.forEach((w, i) => {
    const parsed = parseWindow(w);
    if (typeof parsed === "string") problems.push(`${at}.windows[${i}]: ${parsed}`);
  });
  c.pinned.forEach((p, i) => {
    const problem = syncPinProblem(p);
    if (problem) problems.push(`${at}.pinned[${i}]: ${problem}`);
  });
  for (const [key, v] of [["dest_prefix", c.destPrefix], ["strip_prefix", c.stripPrefix]] as const) {
    if (v && !/^[a-z0-9][a-z0-9._/-]*[a-z0-9]$|^[a-z0-9]$/.test(v)) problems.push(`${at}.${key}: "${v}" is not a repository name prefix`);
  }
  c.destPrefix = c.destPrefix.replace(/\/+$/, "");
  c.stripPrefix = c.stripPrefix.replace(/\/+$/, "");
  if ((c.certFile === "") !== (c.keyFile === "")) problems.push(`${at}: cert_file and key_file must be given together`);
  return c;
}

/** Checks `[[sync.registries]]`; problems name keys under `key`. */
export function checkSyncRegistries(value: unknown, key: string, problems: string[]): SyncRegistryConfig[] {
  if (!Array.isArray(value)) {
    problems.push(`${key}: expected an array of tables ([[sync.registries]])`);
    return [];
  }
  const out: SyncRegistryConfig[] = [];
  value.forEach((table, i) => {
    const at = `${key}[${i}]`;
    if (typeof table !== "object" || table === null || Array.isArray(table)) problems.push(`${at}: expected a table`);
    else out.push(checkOne(table as Record<string, unknown>, at, problems));
  });
  const names = new Set<string>();
  for (const r of out) {
    if (names.has(r.name)) problems.push(`${key}: two registries are named "${r.name}"; give each a distinct name`);
    names.add(r.name);
  }
  return out;
}
