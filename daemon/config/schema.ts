/**
 * The configuration schema: every key, its type, its default and its limits, in one table.
 * `validate` walks a parsed TOML document against it and reports every problem with the
 * dotted key it concerns; nothing outside the table is accepted, so a typo is an error
 * rather than a silently ignored setting.
 */
import { parseWindow } from "../scheduler/windows";
import { type SyncRegistryConfig, checkSyncRegistries } from "./sync";
import { type ApiKeysConfig, type TokenConfig, APIKEYS_DEFAULTS, TOKEN_DEFAULTS, checkApiKeysConfig, checkTokenConfig } from "./tokenauth";
import type { AccessRuleConfig } from "../access/policy";
import { checkAccessRules, checkAuthGroups } from "./access";
import { type S3Config, checkS3Config } from "./s3";
import { checkLdapConfig, checkMtlsConfig, DEFAULT_MTLS, type LdapConfig, type MtlsConfig } from "./authext";
import { checkSubpaths, type SubpathConfig } from "./subpaths";

/** A size in bytes: an integer, or a string such as "4 MiB" / "512KiB" / "1GB". */
export type Bytes = number;

interface FieldBase {
  doc: string;
}
interface StringField extends FieldBase {
  kind: "string";
  default: string;
  nonEmpty?: boolean;
}
interface IntField extends FieldBase {
  kind: "integer";
  default: number;
  min: number;
  max: number;
}
interface BytesField extends FieldBase {
  kind: "bytes";
  default: number;
  min: number;
  max: number;
}
interface BoolField extends FieldBase {
  kind: "boolean";
  default: boolean;
}
interface EnumField extends FieldBase {
  kind: "enum";
  default: string;
  values: readonly string[];
}
/** A duration in seconds: an integer, or a string such as "90s", "5m", "12h", "7d". */
interface DurationField extends FieldBase {
  kind: "duration";
  default: number;
  min: number;
  max: number;
}
/**
 * A list of non-empty strings. `checkEntry` returns a problem for a bad entry (a pattern that
 * does not compile); `check` looks at the whole list and reports problems under `key`.
 */
interface StringsField extends FieldBase {
  kind: "strings";
  default: readonly string[];
  checkEntry?: (entry: string) => string | undefined;
  check?: (value: string[], key: string, problems: string[]) => void;
}
/** A space floor: bytes ("2 GiB") or a percentage of the file system ("5%"). */
interface SpaceField extends FieldBase {
  kind: "space";
  default: Space;
}
/** An array of tables (`[[section.key]]`), each validated against `fields`. */
interface TablesField extends FieldBase {
  kind: "tables";
  fields: Record<string, Field>;
  /** Keys every entry must have. */
  required?: readonly string[];
}
/** A structured value (an array of tables) checked by its own module; `check` reports problems under `key`. */
interface CustomField<T> extends FieldBase {
  kind: "custom";
  default: T;
  check: (value: unknown, key: string, problems: string[]) => T;
}
/** One key of the schema. */
export type Field =
  | StringField
  | IntField
  | BytesField
  | BoolField
  | EnumField
  | DurationField
  | StringsField
  | SpaceField
  | TablesField
  | CustomField<unknown>;

export { parseBytes, parseDuration, parseSpace, type Space } from "./units";
import { parseBytes, parseDuration, parseSpace, type Space } from "./units";
const MiB = 1024 * 1024;
const DAY = 86_400;
const YEARS = 100 * 365 * DAY;

/** Problem with a glob pattern, if any (see lifecycle/patterns.ts for the syntax). */
function globProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return "an empty pattern matches nothing";
  if (/[^a-z0-9._\-/*?:]/i.test(pattern)) return `"${pattern}" has characters a repository or tag pattern cannot have`;
  return undefined;
}

/** Problem with a regular expression, if any. */
function regexProblem(pattern: string): string | undefined {
  try {
    new RegExp(pattern);
    return undefined;
  } catch (err) {
    return `"${pattern}" is not a valid regular expression (${(err as Error).message})`;
  }
}

/** The storage lifecycle sections: gc, scrub, retention, quota, stats. */
const LIFECYCLE_SCHEMA = {
  gc: {
    interval: { kind: "duration", default: 3600, min: 0, max: YEARS, doc: "Seconds between online garbage-collection passes; 0 turns periodic GC off." },
    grace: { kind: "duration", default: 3600, min: 0, max: YEARS, doc: "A blob linked into a repository (or a repository created) less than this long ago is never collected." },
    untagged: { kind: "boolean", default: false, doc: "Also collect untagged manifests that no tag reaches (as an index child or a referrer)." },
    orphan_referrers: { kind: "boolean", default: true, doc: "Collect referrers whose subject is no longer in the repository." },
    upload_idle: { kind: "duration", default: 3600, min: 60, max: YEARS, doc: "Deprecated: use storage.upload_expiry (this value is used for it when that is not set)." },
    empty_repositories: { kind: "boolean", default: true, doc: "Remove repositories left with no manifests and no blobs." },
  },
  scrub: {
    interval: { kind: "duration", default: 7 * DAY, min: 0, max: YEARS, doc: "Seconds between scrubs that re-hash every stored blob; 0 turns periodic scrubbing off." },
  },
  retention: {
    interval: { kind: "duration", default: DAY, min: 0, max: YEARS, doc: "Seconds between retention passes; 0 turns periodic retention off (policies still apply to `berth gc`)." },
    dry_run: { kind: "boolean", default: false, doc: "Log what retention would delete without deleting it." },
    policy: {
      kind: "tables",
      required: ["repositories"],
      doc: "Retention policies; the first whose repositories match a repository applies to it.",
      fields: {
        repositories: { kind: "strings", default: [], checkEntry: globProblem, doc: "Repository globs (* within a path component, ** across)." },
        keep_last: { kind: "integer", default: 0, min: 0, max: 1_000_000, doc: "Keep the N tags most recently pushed or pulled." },
        keep_tags: { kind: "strings", default: [], checkEntry: regexProblem, doc: "Keep tags matching any of these regular expressions (anchored)." },
        keep_within: { kind: "duration", default: 0, min: 0, max: YEARS, doc: "Keep tags pushed or pulled within this period; 0 = no such rule." },
        untagged_after: { kind: "duration", default: 0, min: 0, max: YEARS, doc: "Delete untagged manifests (not reached from a tag) older than this; 0 = keep them." },
      },
    },
  },
  quota: {
    max_bytes: { kind: "bytes", default: 0, min: 0, max: Number.MAX_SAFE_INTEGER, doc: "Bytes the whole store may hold (pool, blobs outside it, uploads); 0 = no quota." },
    min_free: { kind: "space", default: { percent: 5 }, doc: "Free space pushes must leave on the file system: bytes (\"2 GiB\") or a percentage (\"5%\"); deletes and GC may use it. Board profiles raise it for flash storage." },
    evictable: { kind: "strings", default: [], checkEntry: globProblem, doc: "Repositories whose content can be fetched again (mirrors); evicted least-recently-pulled first when space runs out." },
    pinned: { kind: "strings", default: [], checkEntry: globProblem, doc: "repo:tag globs never evicted (a bare repo glob pins every tag)." },
    prefix: {
      kind: "tables",
      required: ["prefix", "max_bytes"],
      doc: "Byte quotas for repository prefixes.",
      fields: {
        prefix: { kind: "string", default: "", nonEmpty: true, doc: "Repository name prefix, e.g. \"team/\"." },
        max_bytes: { kind: "bytes", default: 0, min: 1, max: Number.MAX_SAFE_INTEGER, doc: "Bytes the repositories under the prefix may hold (distinct blobs)." },
      },
    },
  },
  stats: {
    flush_interval: { kind: "duration", default: 300, min: 1, max: DAY, doc: "Seconds between flushes of pull statistics from memory to meta.db (also flushed at shutdown); nothing is written when nothing changed." },
  },
} as const satisfies Record<string, Record<string, Field>>;

function checkWindows(value: string[], key: string, problems: string[]): void {
  value.forEach((w, i) => {
    const parsed = parseWindow(w);
    if (typeof parsed === "string") problems.push(`${key}[${i}]: ${parsed}`);
  });
}

/** The schema: section -> key -> field. */
export const SCHEMA = {
  http: {
    address: { kind: "string", default: "127.0.0.1", nonEmpty: true, doc: "Address to listen on." },
    port: { kind: "integer", default: 5000, min: 0, max: 65535, doc: "Port to listen on; 0 picks a free port (logged at start-up)." },
    idle_timeout: { kind: "integer", default: 120, min: 1, max: 255, doc: "Seconds an idle connection is kept open." },
    body_timeout: { kind: "duration", default: 30, min: 1, max: 255, doc: "Seconds a manifest body may take to arrive after the request's headers (408 after that); keep it below idle_timeout." },
    manifest_body_budget: { kind: "bytes", default: 16 * MiB, min: 1024, max: 1024 * MiB, doc: "Bytes of manifest bodies held in memory at once, all requests together; a body that does not fit gets 429 with Retry-After." },
    tls_cert: { kind: "string", default: "", doc: "PEM certificate (chain) file; with tls_key, serve HTTPS. Empty: plain HTTP." },
    tls_key: { kind: "string", default: "", doc: "PEM private key file for tls_cert." },
    tls_client_ca: {
      kind: "string",
      default: "",
      doc: "PEM file of the CA whose client certificates are identities (mTLS; needs tls_cert). Clients without a certificate still connect (other credentials or anonymous).",
    },
    admin_token_file: {
      kind: "string",
      default: "",
      doc: "File holding a token the admin API (/api/v1) then requires as `Authorization: Bearer <token>`. Empty: the admin API answers reads from anywhere and changes (POST) only from loopback.",
    },
  },
  auth: {
    htpasswd: { kind: "string", default: "", doc: "htpasswd file of bcrypt entries (htpasswd -B), mode 0600; setting it enables authentication and authorization ([[access]])." },
    realm: { kind: "string", default: "berth", nonEmpty: true, doc: "Realm of the Basic challenge (WWW-Authenticate)." },
    admins: { kind: "strings", default: [], doc: "Users who may do everything, including the admin API (/api/v1)." },
    admin_groups: { kind: "strings", default: [], doc: "Groups whose members are admins." },
    metrics: { kind: "strings", default: [], doc: "Users who may read /metrics (admins always may)." },
    metrics_groups: { kind: "strings", default: [], doc: "Groups whose members may read /metrics." },
    metrics_anonymous: { kind: "boolean", default: false, doc: "Let anyone read /metrics without credentials." },
    groups: { kind: "custom", default: {} as Record<string, string[]>, check: checkAuthGroups, doc: 'Groups of htpasswd users, e.g. { ops = ["alice", "bob"] }.' },
    credential_cache: { kind: "duration", default: 60, min: 0, max: 3600, doc: "Seconds a verified password stays cached (keyed on the stored hash, so a change takes effect at once); 0 = bcrypt on every request." },
    ldap: { kind: "custom", default: null as LdapConfig | null, check: checkLdapConfig, doc: "[auth.ldap]: an LDAP directory as a password source (see daemon/config/authext.ts)." },
    mtls: { kind: "custom", default: DEFAULT_MTLS as MtlsConfig, check: checkMtlsConfig, doc: '[auth.mtls]: how a client certificate names its principal (identity = "cn" | "san-dns" | "san-uri" | "san-email"; groups = "none" | "o" | "ou").' },
    token: { kind: "custom", default: TOKEN_DEFAULTS as TokenConfig, check: checkTokenConfig, doc: "The built-in token service ([auth.token]: enabled, service, issuer, realm, key_file, expiry); see daemon/config/tokenauth.ts." },
    apikeys: { kind: "custom", default: APIKEYS_DEFAULTS as ApiKeysConfig, check: checkApiKeysConfig, doc: "API keys ([auth.apikeys]: enabled, flush_interval); see daemon/config/tokenauth.ts." },
  },
  storage: {
    root: { kind: "string", default: "./data", nonEmpty: true, doc: "Directory holding one OCI image layout per repository." },
    dedupe: { kind: "boolean", default: true, doc: "Share identical blobs across repositories through hard links." },
    max_manifest_bytes: { kind: "bytes", default: 4 * MiB, min: 1024, max: 64 * MiB, doc: "Largest manifest accepted." },
    max_blob_bytes: { kind: "bytes", default: 0, min: 0, max: Number.MAX_SAFE_INTEGER, doc: "Largest blob accepted; 0 means no limit but the disk." },
    hash_thread: { kind: "boolean", default: true, doc: "Hash uploads in a separate thread, so large pushes do not stall other clients." },
    manifest_cache_bytes: { kind: "bytes", default: 8 * MiB, min: 0, max: 1024 * MiB, doc: "Memory for recently served manifests." },
    max_uploads: { kind: "integer", default: 512, min: 1, max: 1_000_000, doc: "Upload sessions open at once, all clients together; more get 429 with Retry-After." },
    max_uploads_per_client: { kind: "integer", default: 64, min: 1, max: 1_000_000, doc: "Upload sessions one client (peer address) may have open at once; more get 429 with Retry-After." },
    upload_expiry: { kind: "duration", default: 600, min: 1, max: 7 * DAY, doc: "An upload session with no request for this long is removed (by its own timer, not a GC pass)." },
    subpaths: { kind: "custom", default: [] as SubpathConfig[], check: checkSubpaths, doc: "Further storage roots ([[storage.subpaths]] prefix, root, required, dedupe, max_bytes, min_free, gc, scrub), each serving the repositories under its prefix; see daemon/config/subpaths.ts." },
    state_dir: { kind: "string", default: "", doc: "Directory of the derived index meta.db (rebuilt from the roots when lost); empty: <root>/.berth." },
    backend: { kind: "enum", default: "local", values: ["local", "s3"], doc: 'Where blobs and indexes live: "local" (OCI layouts under root) or "s3" ([storage.s3]; root then holds meta.db only: uploads stream to the bucket).' },
    s3: { kind: "custom", default: null as S3Config | null, check: checkS3Config, doc: "[storage.s3]: the bucket of the S3 backend (endpoint, bucket, prefix, region, credentials_file, part_size, upload_memory, redirect, redirect_expiry, public_endpoint, blob_grace); see daemon/config/s3.ts." },
  },
  memory: {
    rss_soft_limit: { kind: "bytes", default: 64 * MiB, min: 0, max: 64 * 1024 * MiB, doc: "Resident memory above which traffic triggers a garbage collection; 0 leaves it to the runtime." },
    jit: { kind: "enum", default: "off", values: ["off", "baseline", "optimizing"], doc: 'JavaScript JIT tiers of the Bun build: "off" interprets (peak memory 10-30 MiB lower than with any JIT, small pushes ~25% slower and GC passes 2.5x longer on loopback), "baseline" leaves out the optimizing compilers (DFG, FTL), "optimizing" is the runtime\'s default (fastest manifest GETs). Applied by re-executing at start-up (same process id); the Node.js build ignores it.' },
  },
  scheduler: {
    concurrency: { kind: "integer", default: 2, min: 1, max: 64, doc: "Background tasks running at once." },
    jitter_ms: { kind: "integer", default: 2000, min: 0, max: 3_600_000, doc: "Largest random delay before a background task starts." },
    windows: { kind: "strings", default: [], check: checkWindows, doc: 'Maintenance windows for heavy tasks, "HH:MM-HH:MM" local time; empty = always.' },
    io_profile: { kind: "enum", default: "none", values: ["none", "sdcard", "emmc", "ssd"], doc: "IO budget profile giving the budget's rates for the storage medium (none = unlimited)." },
    profile: { kind: "enum", default: "none", values: ["none", "sdcard", "emmc", "ssd"], doc: "Deprecated: use scheduler.io_profile (this value is used for it when that is not set)." },
    read_bytes_per_second: { kind: "bytes", default: 0, min: 0, max: Number.MAX_SAFE_INTEGER, doc: "Background read budget; 0 = the profile's." },
    write_bytes_per_second: { kind: "bytes", default: 0, min: 0, max: Number.MAX_SAFE_INTEGER, doc: "Background write budget; 0 = the profile's." },
    read_ops_per_second: { kind: "integer", default: 0, min: 0, max: 10_000_000, doc: "Background read operations per second; 0 = the profile's." },
    write_ops_per_second: { kind: "integer", default: 0, min: 0, max: 10_000_000, doc: "Background write operations per second; 0 = the profile's." },
  },
  sync: {
    registries: { kind: "custom", default: [] as SyncRegistryConfig[], check: checkSyncRegistries, doc: "Upstream registries ([[sync.registries]]); see daemon/config/sync.ts." },
  },
  cve: {
    enabled: { kind: "boolean", default: false, doc: "Offline vulnerability scanning against an imported Grype database (berth cve db import); off: nothing of it is loaded." },
    scan_on_push: { kind: "boolean", default: true, doc: "Scan each manifest stored by a push or by sync, in the background." },
    max_db_bytes: { kind: "bytes", default: 4096 * MiB, min: 1 * MiB, max: Number.MAX_SAFE_INTEGER, doc: "Largest vulnerability database accepted for import (uncompressed)." },
    max_queue: { kind: "integer", default: 10_000, min: 1, max: 10_000_000, doc: "Manifests waiting for a scan at most; past it the backlog becomes one full rescan." },
    db_repository: { kind: "string", default: "", doc: "Repository whose pushed (or synced) artifacts carry the vulnerability database: each new manifest there is imported from its layer (a Grype .db, .tar.zst or .tar.gz); empty: off." },
  },
  board: {
    profile: { kind: "string", default: "none", nonEmpty: true, doc: 'Board profile whose defaults apply under this file: "auto" (detected), "none", or a name from board/ (rpi4, rpi5, arm64-emmc, x64-server).' },
  },
  trust: {
    enabled: { kind: "boolean", default: false, doc: "Verify cosign and notation signatures against the trust store (keys_dir); off: nothing of it is loaded." },
    keys_dir: { kind: "string", default: "", doc: "Directory of trusted PEM files (public keys, CA certificates), re-read on SIGHUP and on changes through the API; empty: <root>/.berth/trust." },
    policy: {
      kind: "tables",
      required: ["repositories"],
      doc: "Signature policies; for a repository, the most specific matching glob decides (as for [[access]]).",
      fields: {
        repositories: { kind: "strings", default: [], checkEntry: globProblem, doc: "Repository globs (* within a path component, ** across)." },
        require_signature: { kind: "boolean", default: false, doc: "Serve a manifest only when it (or an index listing it) has a signature that verifies; pushes still land." },
      },
    },
  },
  mdns: {
    enabled: { kind: "boolean", default: false, doc: "Advertise the registry on the LAN over mDNS/DNS-SD (_oci._tcp)." },
    interfaces: { kind: "strings", default: [], doc: 'Network interfaces to advertise on (e.g. ["eth0"]); empty: every interface with multicast.' },
    name: { kind: "string", default: "", doc: "Instance name shown to browsers; empty: berth on <hostname>." },
  },
  ui: {
    enabled: { kind: "boolean", default: true, doc: "Serve the web UI at / (static assets built into the binary; loaded on the first visit, so an unvisited UI costs nothing; data comes from the public APIs under the access policies)." },
    session_ttl: { kind: "integer", default: 900, min: 1, max: 86_400, doc: "Seconds a web UI login lasts without a request (each request renews it; 8 hours at most); then the UI asks for the password again. The UI keeps only this session's token, never the password." },
  },
  search: {
    enabled: { kind: "boolean", default: true, doc: "Serve zot's GraphQL search API at /v2/_zot/ext/search (loaded on the first search request; nothing is loaded or indexed before)." },
    max_results: { kind: "integer", default: 1000, min: 1, max: 100_000, doc: "Most results one page of a search returns; `limit: 0` (all) and larger limits get this many, with the true TotalCount." },
    max_query_bytes: { kind: "bytes", default: 16 * 1024, min: 1024, max: 1024 * 1024, doc: "Largest search request (GraphQL text or JSON body); a larger one is refused with 413." },
    model_bytes: { kind: "bytes", default: 16 * 1024 * 1024, min: 64 * 1024, max: 1024 * 1024 * 1024, doc: "Memory for search's per-repository models (least recently used kept; the rest read from meta.db per query): about 1.5 KiB per image." },
  },
  bundle: {
    import_dirs: { kind: "strings", default: [], doc: "Directories on the device (a mounted USB stick) from which the admin API may import air-gap bundles (POST /api/v1/bundle/import?path=…); empty: the endpoint is off and nothing of it is loaded. `berth bundle import` through /v2 needs none." },
  },
  metrics: {
    enabled: { kind: "boolean", default: true, doc: "Serve Prometheus metrics at /metrics." },
    host_interval: { kind: "integer", default: 15, min: 1, max: 3600, doc: "Seconds between samples of host figures (disk free, temperature, memory) while /metrics is scraped." },
  },
  ...LIFECYCLE_SCHEMA,
  limits: {
    reads_per_second: { kind: "integer", default: 0, min: 0, max: 1_000_000, doc: "Reads (GET, HEAD) one client address may send per second, sustained; more get 429 with Retry-After. 0 = no limit (fleets behind one NAT address share it)." },
    read_burst: { kind: "integer", default: 200, min: 1, max: 10_000_000, doc: "Reads one client address may send at once above the sustained rate (a multi-layer pull)." },
    writes_per_second: { kind: "integer", default: 0, min: 0, max: 1_000_000, doc: "Writes (POST, PATCH, PUT, DELETE) one client address may send per second, sustained; 0 = no limit." },
    write_burst: { kind: "integer", default: 100, min: 1, max: 10_000_000, doc: "Writes one client address may send at once above the sustained rate (a multi-layer push)." },
    clients: { kind: "integer", default: 4096, min: 16, max: 1_000_000, doc: "Client addresses whose request rates and failed logins are tracked at most; the least recently seen is forgotten first." },
    login_failures: { kind: "integer", default: 5, min: 0, max: 1_000_000, doc: "Failed password logins (with [auth]) from one address within login_window after which that address's logins are refused (429 with Retry-After) for the lockout period; requests without credentials are never refused. 0 = no lockout." },
    login_failures_per_user: { kind: "integer", default: 20, min: 0, max: 1_000_000, doc: "Failed logins for one user name, from anywhere, within login_window after which password logins as that user are refused for the lockout period; 0 = no per-user lockout." },
    login_window: { kind: "duration", default: 900, min: 1, max: DAY, doc: "Period over which failed logins are counted." },
    lockout: { kind: "duration", default: 60, min: 1, max: DAY, doc: "First lockout period; it doubles with each lockout that follows without a success, up to lockout_max." },
    lockout_max: { kind: "duration", default: 3600, min: 1, max: 7 * DAY, doc: "Longest lockout period." },
  },
  audit: {
    pulls: { kind: "boolean", default: false, doc: "Also log manifest pulls, aggregated per identity, repository and digest and written as one line per pull_interval (never a line per pull)." },
    pull_interval: { kind: "duration", default: 300, min: 1, max: DAY, doc: "Seconds between the aggregated pull lines." },
  },
  log: {
    level: { kind: "enum", default: "info", values: ["debug", "info", "warn", "error"], doc: "Lowest level logged." },
    format: { kind: "enum", default: "json", values: ["json", "text"], doc: "JSON lines, or plain text for a terminal." },
  },
} as const satisfies Record<string, Record<string, Field>>;

type Schema = typeof SCHEMA;
type ValueOf<F> = F extends { kind: "custom"; default: infer D } ? D
  : F extends { kind: "string" } ? string
  : F extends { kind: "integer" | "bytes" | "duration" } ? number
  : F extends { kind: "boolean" } ? boolean
  : F extends { kind: "enum"; values: readonly (infer V)[] } ? V
  : F extends { kind: "strings" } ? string[]
  : F extends { kind: "space" } ? Space
  : F extends { kind: "tables"; fields: infer T } ? { [K in keyof T]: ValueOf<T[K]> }[]
  : never;

/**
 * Top-level arrays of tables (`[[access]]`), each checked by its own function: they are not
 * sections of keys.
 */
const TOP_LEVEL_ARRAYS = {
  access: checkAccessRules,
} as const;

/** A validated configuration with every default filled in. */
export type Config = { [S in keyof Schema]: { [K in keyof Schema[S]]: ValueOf<Schema[S][K]> } } & {
  /** `[[access]]` rules (access/policy.ts); empty when none are written. */
  access: AccessRuleConfig[];
};

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** Validates a table against `fields`, filling defaults; unknown keys are problems. */
function checkTable(fields: Record<string, Field>, table: Record<string, unknown>, prefix: string, problems: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(fields)) {
    const value = table[key];
    const fallback = field.kind === "tables" ? [] : Array.isArray(field.default) ? [...field.default] : field.default;
    out[key] = value === undefined ? fallback : (checkField(field, value, `${prefix}${key}`, problems) ?? fallback);
  }
  for (const key of Object.keys(table)) if (!(key in fields)) problems.push(`${prefix}${key}: unknown key`);
  return out;
}

function checkField(field: Field, value: unknown, key: string, problems: string[]): unknown {
  switch (field.kind) {
    case "duration": {
      const n = parseDuration(value);
      if (n === undefined) return void problems.push(`${key}: expected a duration, e.g. 3600 or "1h" (units s, m, h, d, w)`);
      if (n < field.min || n > field.max) return void problems.push(`${key}: ${n} seconds is outside ${field.min}..${field.max}`);
      return n;
    }
    case "space": {
      const space = parseSpace(value);
      const percent = typeof value === "string" ? /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(value)?.[1] : undefined;
      if (space === undefined && percent !== undefined) return void problems.push(`${key}: "${value}" is more than the whole file system; a percentage must be from 0% to 100% (e.g. "5%")`);
      if (space === undefined) return void problems.push(`${key}: expected a size in bytes ("2 GiB") or a percentage ("5%")`);
      return space;
    }
    case "tables": {
      if (!Array.isArray(value) || !value.every(isTable)) return void problems.push(`${key}: expected an array of tables ([[${key}]])`);
      return value.map((entry, i) => {
        const out = checkTable(field.fields, entry, `${key}[${i}].`, problems);
        for (const req of field.required ?? []) if (entry[req] === undefined) problems.push(`${key}[${i}].${req}: required`);
        return out;
      });
    }
    case "string":
      if (typeof value !== "string") return void problems.push(`${key}: expected a string`);
      if (field.nonEmpty && value.length === 0) return void problems.push(`${key}: must not be empty`);
      return value;
    case "boolean":
      if (typeof value !== "boolean") return void problems.push(`${key}: expected true or false`);
      return value;
    case "enum":
      if (typeof value !== "string" || !field.values.includes(value)) {
        return void problems.push(`${key}: expected one of ${field.values.map((v) => `"${v}"`).join(", ")}`);
      }
      return value;
    case "integer": {
      const n = typeof value === "bigint" ? Number(value) : value;
      if (typeof n !== "number" || !Number.isInteger(n)) return void problems.push(`${key}: expected an integer`);
      if (n < field.min || n > field.max) return void problems.push(`${key}: ${n} is outside ${field.min}..${field.max}`);
      return n;
    }
    case "strings": {
      if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) return void problems.push(`${key}: expected a list of strings`);
      const before = problems.length;
      value.forEach((entry: string, i) => {
        const problem = field.checkEntry ? field.checkEntry(entry) : entry.length === 0 ? "must not be empty" : undefined;
        if (problem) problems.push(`${key}[${i}]: ${problem}`);
      });
      field.check?.(value, key, problems);
      return problems.length === before ? [...value] : undefined;
    }
    case "custom":
      return field.check(value, key, problems);
    case "bytes": {
      const n = parseBytes(value);
      if (n === undefined) return void problems.push(`${key}: expected a size in bytes, e.g. 4194304 or "4 MiB"`);
      if (n < field.min || n > field.max) return void problems.push(`${key}: ${n} bytes is outside ${field.min}..${field.max}`);
      return n;
    }
  }
}

/**
 * Validates a parsed document against {@link SCHEMA}. Returns the configuration with
 * defaults filled in, and every problem found (empty when the document is valid).
 */
export function validate(doc: Record<string, unknown>): { config: Config; problems: string[] } {
  const problems: string[] = [];
  const out: Record<string, Record<string, unknown>> = {};
  for (const [section, fields] of Object.entries(SCHEMA) as [string, Record<string, Field>][]) {
    const given = doc[section];
    const sectionOut: Record<string, unknown> = {};
    out[section] = sectionOut;
    if (given !== undefined && (typeof given !== "object" || given === null || Array.isArray(given))) {
      problems.push(`${section}: expected a table [${section}]`);
    }
    const table = (typeof given === "object" && given !== null && !Array.isArray(given) ? given : {}) as Record<string, unknown>;
    Object.assign(sectionOut, checkTable(fields, table, `${section}.`, problems));
  }
  const arrays: Record<string, unknown> = {};
  for (const [key, check] of Object.entries(TOP_LEVEL_ARRAYS)) arrays[key] = check(doc[key], key, problems);
  for (const key of Object.keys(doc)) {
    if (!(key in SCHEMA) && !(key in TOP_LEVEL_ARRAYS)) problems.push(`${key}: unknown section or key`);
  }
  return { config: { ...out, ...arrays } as unknown as Config, problems };
}
