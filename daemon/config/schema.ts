/**
 * The configuration schema: every key, its type, its default and its limits, in one table.
 * `validate` walks a parsed TOML document against it and reports every problem with the
 * dotted key it concerns; nothing outside the table is accepted, so a typo is an error
 * rather than a silently ignored setting.
 */
import { parseWindow } from "../scheduler/windows";
import { type SyncRegistryConfig, checkSyncRegistries } from "./sync";

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
interface StringsField extends FieldBase {
  kind: "strings";
  default: readonly string[];
  check?: (value: string[], key: string, problems: string[]) => void;
}
/** A structured value (an array of tables) checked by its own module; `check` reports problems under `key`. */
interface CustomField<T> extends FieldBase {
  kind: "custom";
  default: T;
  check: (value: unknown, key: string, problems: string[]) => T;
}
/** One key of the schema. */
export type Field = StringField | IntField | BytesField | BoolField | EnumField | StringsField | CustomField<unknown>;


const MiB = 1024 * 1024;

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
    tls_cert: { kind: "string", default: "", doc: "PEM certificate (chain) file; with tls_key, serve HTTPS. Empty: plain HTTP." },
    tls_key: { kind: "string", default: "", doc: "PEM private key file for tls_cert." },
  },
  storage: {
    root: { kind: "string", default: "./data", nonEmpty: true, doc: "Directory holding one OCI image layout per repository." },
    dedupe: { kind: "boolean", default: true, doc: "Share identical blobs across repositories through hard links." },
    max_manifest_bytes: { kind: "bytes", default: 4 * MiB, min: 1024, max: 64 * MiB, doc: "Largest manifest accepted." },
    max_blob_bytes: { kind: "bytes", default: 0, min: 0, max: Number.MAX_SAFE_INTEGER, doc: "Largest blob accepted; 0 means no limit but the disk." },
    hash_thread: { kind: "boolean", default: true, doc: "Hash uploads in a separate thread, so large pushes do not stall other clients." },
    manifest_cache_bytes: { kind: "bytes", default: 8 * MiB, min: 0, max: 1024 * MiB, doc: "Memory for recently served manifests." },
  },
  memory: {
    rss_soft_limit: { kind: "bytes", default: 64 * MiB, min: 0, max: 64 * 1024 * MiB, doc: "Resident memory above which traffic triggers a garbage collection; 0 leaves it to the runtime." },
  },
  scheduler: {
    concurrency: { kind: "integer", default: 2, min: 1, max: 64, doc: "Background tasks running at once." },
    jitter_ms: { kind: "integer", default: 2000, min: 0, max: 3_600_000, doc: "Largest random delay before a background task starts." },
    windows: { kind: "strings", default: [], check: checkWindows, doc: 'Maintenance windows for heavy tasks, "HH:MM-HH:MM" local time; empty = always.' },
    profile: { kind: "enum", default: "none", values: ["none", "sdcard", "emmc", "ssd"], doc: "Board profile giving the IO budget's rates (none = unlimited)." },
    read_bytes_per_second: { kind: "bytes", default: 0, min: 0, max: Number.MAX_SAFE_INTEGER, doc: "Background read budget; 0 = the profile's." },
    write_bytes_per_second: { kind: "bytes", default: 0, min: 0, max: Number.MAX_SAFE_INTEGER, doc: "Background write budget; 0 = the profile's." },
    read_ops_per_second: { kind: "integer", default: 0, min: 0, max: 10_000_000, doc: "Background read operations per second; 0 = the profile's." },
    write_ops_per_second: { kind: "integer", default: 0, min: 0, max: 10_000_000, doc: "Background write operations per second; 0 = the profile's." },
  },
  sync: {
    registries: { kind: "custom", default: [] as SyncRegistryConfig[], check: checkSyncRegistries, doc: "Upstream registries ([[sync.registries]]); see daemon/config/sync.ts." },
  },
  board: {
    profile: { kind: "string", default: "none", nonEmpty: true, doc: 'Board profile whose defaults apply under this file: "auto" (detected), "none", or a name from board/ (rpi4, rpi5, arm64-emmc, x64-server).' },
  },
  mdns: {
    enabled: { kind: "boolean", default: false, doc: "Advertise the registry on the LAN over mDNS/DNS-SD (_oci._tcp)." },
    interfaces: { kind: "strings", default: [], doc: 'Network interfaces to advertise on (e.g. ["eth0"]); empty: every interface with multicast.' },
    name: { kind: "string", default: "", doc: "Instance name shown to browsers; empty: berth on <hostname>." },
  },
  metrics: {
    enabled: { kind: "boolean", default: true, doc: "Serve Prometheus metrics at /metrics." },
    host_interval: { kind: "integer", default: 15, min: 1, max: 3600, doc: "Seconds between samples of host figures (disk free, temperature, memory) while /metrics is scraped." },
  },
  log: {
    level: { kind: "enum", default: "info", values: ["debug", "info", "warn", "error"], doc: "Lowest level logged." },
    format: { kind: "enum", default: "json", values: ["json", "text"], doc: "JSON lines, or plain text for a terminal." },
  },
} as const satisfies Record<string, Record<string, Field>>;

type Schema = typeof SCHEMA;
type ValueOf<F> = F extends { kind: "custom"; default: infer D } ? D
  : F extends { kind: "strings" } ? string[]
  : F extends { kind: "string" } ? string
  : F extends { kind: "integer" | "bytes" } ? number
  : F extends { kind: "boolean" } ? boolean
  : F extends { kind: "enum"; values: readonly (infer V)[] } ? V
  : never;

/** A validated configuration with every default filled in. */
export type Config = { [S in keyof Schema]: { [K in keyof Schema[S]]: ValueOf<Schema[S][K]> } };

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

function checkField(field: Field, value: unknown, key: string, problems: string[]): unknown {
  switch (field.kind) {
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
      if (!Array.isArray(value) || !value.every((v) => typeof v === "string" && v.length > 0)) {
        return void problems.push(`${key}: expected a list of non-empty strings, e.g. ["eth0"]`);
      }
      const before = problems.length;
      field.check?.(value, key, problems);
      return problems.length === before ? value : undefined;
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
    for (const [key, field] of Object.entries(fields)) {
      const value = table[key];
      const fallback = Array.isArray(field.default) ? [...field.default] : field.default;
      sectionOut[key] = value === undefined ? fallback : (checkField(field, value, `${section}.${key}`, problems) ?? fallback);
    }
    for (const key of Object.keys(table)) {
      if (!(key in fields)) problems.push(`${section}.${key}: unknown key`);
    }
  }
  for (const key of Object.keys(doc)) {
    if (!(key in SCHEMA)) problems.push(`${key}: unknown section or key`);
  }
  return { config: out as Config, problems };
}
