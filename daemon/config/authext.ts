/**
 * The `[auth.ldap]` and `[auth.mtls]` tables: checked here, reported under keys such as
 * `auth.ldap.url`. Pure; the bind password file is read (and its mode checked) when the
 * source is built (auth/external.ts), and client certificates are asked for only when
 * `[http] tls_client_ca` is set.
 */
import type { CertGroupField, CertNameField } from "../auth/mtls";

/** `[auth.ldap]`, with defaults filled in; durations in milliseconds. */
export interface LdapConfig {
  url: string;
  start_tls: boolean;
  ca_file: string;
  bind_dn: string;
  bind_password_file: string;
  base_dn: string;
  user_filter: string;
  name_attribute: string;
  group_attribute: string;
  cache_ttl_ms: number;
  cache_entries: number;
  timeout_ms: number;
}

/** `[auth.mtls]`, with defaults filled in. */
export interface MtlsConfig {
  identity: CertNameField;
  groups: CertGroupField;
}

/** `[auth.mtls]` when the table is absent. */
export const DEFAULT_MTLS: MtlsConfig = { identity: "cn", groups: "none" };

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** Milliseconds of a duration: a number of seconds, or "500ms", "3s", "2m". */
function durationMs(value: unknown): number | undefined {
  if (typeof value === "number" || typeof value === "bigint") return Number.isFinite(Number(value)) && Number(value) >= 0 ? Number(value) * 1000 : undefined;
  if (typeof value !== "string") return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)\s*$/.exec(value);
  if (!m) return undefined;
  return Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "s" ? 1000 : 60_000);
}

type Reader = {
  str(name: string, fallback?: string): string;
  bool(name: string, fallback: boolean): boolean;
  ms(name: string, fallback: number, min: number, max: number): number;
  int(name: string, fallback: number, min: number, max: number): number;
  oneOf<T extends string>(name: string, values: readonly T[], fallback: T): T;
  done(): void;
};

function reader(table: Record<string, unknown>, key: string, problems: string[]): Reader {
  const seen = new Set<string>();
  const at = (name: string) => {
    seen.add(name);
    return table[name];
  };
  return {
    str(name, fallback) {
      const v = at(name);
      if (v === undefined) {
        if (fallback === undefined) problems.push(`${key}.${name}: required`);
        return fallback ?? "";
      }
      if (typeof v !== "string") problems.push(`${key}.${name}: expected a string`);
      return typeof v === "string" ? v : (fallback ?? "");
    },
    bool(name, fallback) {
      const v = at(name);
      if (v === undefined) return fallback;
      if (typeof v !== "boolean") problems.push(`${key}.${name}: expected true or false`);
      return typeof v === "boolean" ? v : fallback;
    },
    ms(name, fallback, min, max) {
      const v = at(name);
      if (v === undefined) return fallback;
      const n = durationMs(v);
      if (n === undefined || n < min || n > max) {
        problems.push(`${key}.${name}: expected a duration from ${min / 1000} to ${max / 1000} seconds (e.g. 3, "500ms", "1m"), got ${JSON.stringify(v)}`);
        return fallback;
      }
      return n;
    },
    int(name, fallback, min, max) {
      const v = at(name);
      if (v === undefined) return fallback;
      const n = typeof v === "bigint" ? Number(v) : v;
      if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
        problems.push(`${key}.${name}: expected an integer from ${min} to ${max}`);
        return fallback;
      }
      return n;
    },
    oneOf(name, values, fallback) {
      const v = at(name);
      if (v === undefined) return fallback;
      if (typeof v !== "string" || !values.includes(v as never)) {
        problems.push(`${key}.${name}: expected one of ${values.map((x) => `"${x}"`).join(", ")}`);
        return fallback;
      }
      return v as (typeof values)[number];
    },
    done() {
      for (const k of Object.keys(table)) if (!seen.has(k)) problems.push(`${key}.${k}: unknown key`);
    },
  };
}

/** Checks `[auth.ldap]`; null when absent. */
export function checkLdapConfig(value: unknown, key: string, problems: string[]): LdapConfig | null {
  if (value === undefined || value === null) return null;
  if (!isTable(value)) {
    problems.push(`${key}: expected a table ([auth.ldap])`);
    return null;
  }
  const r = reader(value, key, problems);
  const out: LdapConfig = {
    url: r.str("url"),
    start_tls: r.bool("start_tls", false),
    ca_file: r.str("ca_file", ""),
    bind_dn: r.str("bind_dn"),
    bind_password_file: r.str("bind_password_file"),
    base_dn: r.str("base_dn"),
    user_filter: r.str("user_filter", "(uid={user})"),
    name_attribute: r.str("name_attribute", "uid"),
    group_attribute: r.str("group_attribute", "memberOf"),
    cache_ttl_ms: r.ms("cache_ttl", 60_000, 0, 3_600_000),
    cache_entries: r.int("cache_entries", 1024, 1, 100_000),
    timeout_ms: r.ms("timeout", 3000, 100, 60_000),
  };
  r.done();
  if (out.url && !/^ldaps?:\/\/[^/]+/i.test(out.url)) problems.push(`${key}.url: "${out.url}" must be ldap://host[:port] or ldaps://host[:port]`);
  if (out.start_tls && /^ldaps:/i.test(out.url)) problems.push(`${key}.start_tls: applies to ldap:// urls only; "${out.url}" is already TLS`);
  if (/^ldap:/i.test(out.url) && !out.start_tls && !/^ldap:\/\/(127\.|\[::1\]|localhost[:/]|localhost$)/i.test(out.url)) {
    problems.push(`${key}.start_tls: passwords would cross the network in clear to "${out.url}"; set start_tls = true or use ldaps://`);
  }
  if (!out.user_filter.includes("{user}")) problems.push(`${key}.user_filter: "${out.user_filter}" must contain {user}, e.g. "(uid={user})"`);
  return out;
}

/** Checks `[auth.mtls]`; the defaults when absent. */
export function checkMtlsConfig(value: unknown, key: string, problems: string[]): MtlsConfig {
  if (value === undefined) return DEFAULT_MTLS;
  if (!isTable(value)) {
    problems.push(`${key}: expected a table ([auth.mtls])`);
    return DEFAULT_MTLS;
  }
  const r = reader(value, key, problems);
  const out: MtlsConfig = {
    identity: r.oneOf("identity", ["cn", "san-dns", "san-uri", "san-email"] as const, "cn"),
    groups: r.oneOf("groups", ["none", "o", "ou"] as const, "none"),
  };
  r.done();
  return out;
}
