/**
 * LDAP as a password source (`[auth.ldap]`), with ldapts: bind as the service account, find
 * the user with `user_filter` (the name escaped per RFC 4515, so `*)(uid=*` matches nothing
 * but itself), bind as the entry found with the given password, and read the groups from
 * `group_attribute` (a DN such as `cn=ci,ou=groups,...` becomes `ci`). ldap:// with StartTLS
 * or ldaps://, verified against `ca_file` when given.
 *
 * Each check uses its own connection, so a slow server stalls only the checks waiting for
 * it; concurrent checks of the same user and password share one; at most `MAX_IN_FLIGHT`
 * checks run at once. A check that cannot finish within `timeout` (server down, hung,
 * misconfigured service account) answers `unavailable` (503: fail closed) and is logged.
 * Successful checks are cached for `cache_ttl`, keyed on a hash of user and password, so a
 * different password is always checked by the server; failures are never cached. An empty
 * password never reaches the server (a simple bind with one is an anonymous bind).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { ConnectionOptions } from "node:tls";
import { Client, type Entry, InvalidCredentialsError } from "ldapts";
import type { CachedPasswordSource } from "./chain";
import { readSecretFile } from "./secretfile";
import type { Principal, Verdict } from "./identity";

/** Options for {@link LdapSource}. */
export interface LdapOptions {
  /** ldap://host:port or ldaps://host:port. */
  url: string;
  /** Upgrade an ldap:// connection with StartTLS before binding. */
  startTls: boolean;
  /** PEM CA file the server certificate is verified against (default: the system store). */
  caFile?: string;
  /** The service account's DN and password (the password from `bind_password_file`). */
  bindDn: string;
  bindPassword: string;
  baseDn: string;
  /** A filter with `{user}` where the escaped user name goes, e.g. "(&(objectClass=inetOrgPerson)(uid={user}))". */
  userFilter: string;
  /** The attribute whose value names the principal (e.g. uid), so "Alice" and "alice" are one user; empty: the name as typed. */
  nameAttribute: string;
  /** The attribute listing the user's groups (e.g. memberOf); empty: no groups. */
  groupAttribute: string;
  /** How long a successful check is reused, in ms (0: never). */
  cacheTtlMs: number;
  /** Most cached successes (the oldest is dropped). */
  cacheMax: number;
  /** The longest a check may take, in ms. */
  timeoutMs: number;
  /** Logs a warning (server unreachable, service bind refused). */
  warn?: (msg: string, fields: Record<string, unknown>) => void;
  /** The clock (tests). */
  now?: () => number;
}

/** Checks run against the server at once; more answer `unavailable`. */
export const MAX_IN_FLIGHT = 64;
/** Longest user name or password sent to the server. */
const MAX_CREDENTIAL = 1024;

/** Escapes a value for an LDAP search filter (RFC 4515: `*`, `(`, `)`, `\`, NUL, and non-ASCII bytes as \XX). */
export function escapeFilterValue(value: string): string {
  let out = "";
  for (const byte of Buffer.from(value, "utf8")) {
    out += byte === 0x2a || byte === 0x28 || byte === 0x29 || byte === 0x5c || byte === 0 || byte >= 0x80 ? `\\${byte.toString(16).padStart(2, "0")}` : String.fromCharCode(byte);
  }
  return out;
}

/** The value of the first RDN of a DN (`cn=ci\, x,ou=groups` -> `ci, x`); the input itself when it is not a DN. */
export function groupName(value: string): string {
  const eq = value.indexOf("=");
  if (eq <= 0 || /[,+]/.test(value.slice(0, eq))) return value;
  let out = "";
  for (let i = eq + 1; i < value.length; i++) {
    const c = value[i]!;
    if (c === "," || c === "+") break;
    if (c === "\\" && i + 1 < value.length) {
      const hex = value.slice(i + 1, i + 3);
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        out += String.fromCharCode(Number.parseInt(hex, 16));
        i += 2;
      } else {
        out += value[++i];
      }
      continue;
    }
    out += c;
  }
  return Buffer.from(out, "latin1").toString("utf8").trim();
}

/** Reads the service account's password file (its first line); refused when group or others may read or write it. */
export function readBindPassword(path: string): string {
  const password = readSecretFile(path).split(/\r?\n/)[0] ?? "";
  if (password === "") throw new Error(`The LDAP bind password file "${path}" is empty; put the service account's password on its first line`);
  return password;
}

/** The values of an entry's attribute as strings (attribute names compare case-insensitively). */
function values(entry: Entry, attribute: string): string[] {
  if (!attribute) return [];
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attribute.toLowerCase());
  const raw = key === undefined ? undefined : entry[key];
  if (raw === undefined) return [];
  return (Array.isArray(raw) ? raw : [raw]).map((v) => (typeof v === "string" ? v : v.toString("utf8")));
}

const EMPTY_PASSWORD: Verdict = Object.freeze({ kind: "denied", reason: "an empty password is never sent to LDAP (it would be an anonymous bind)" });

/** The cache key of a credential: a hash of user and password (the password itself is never kept). */
function keyOf(user: string, password: string): string {
  return createHash("sha256").update(user).update("\0").update(password).digest("base64");
}

type Outcome = { kind: "ok"; principal: Principal } | { kind: "unknown" } | { kind: "denied"; reason: string } | { kind: "unavailable"; reason: string };

/** LDAP bind + search + user bind; see the file comment. */
export class LdapSource implements CachedPasswordSource {
  readonly name = "ldap" as const;
  private readonly cache = new Map<string, { principal: Principal; until: number }>();
  private readonly inFlight = new Map<string, Promise<Outcome>>();
  private readonly now: () => number;
  private readonly ca: string | undefined;

  constructor(readonly options: LdapOptions) {
    if (!/^ldaps?:\/\//i.test(options.url)) throw new Error(`The LDAP url "${options.url}" must start with ldap:// or ldaps://`);
    if (options.startTls && /^ldaps:/i.test(options.url)) throw new Error(`start_tls applies to ldap:// urls only; "${options.url}" is already TLS`);
    if (!options.userFilter.includes("{user}")) throw new Error(`The LDAP user_filter "${options.userFilter}" must contain {user}`);
    this.now = options.now ?? Date.now;
    this.ca = options.caFile ? readFileSync(options.caFile, "utf8") : undefined;
  }

  /**
   * The answer without asking the server, when there is one (the AuthChain's synchronous
   * hot path): a success cached less than `cache_ttl` ago, or the refusal of an empty
   * password. Undefined: call {@link verify}.
   */
  cached(user: string, password: string): Verdict | undefined {
    if (user === "" || user.length > MAX_CREDENTIAL || password.length > MAX_CREDENTIAL) return { kind: "unknown" };
    if (password === "") return EMPTY_PASSWORD;
    return this.hit(keyOf(user, password));
  }

  /** Checks `user`/`password` against the directory (or the cache of recent successes). */
  async verify(user: string, password: string): Promise<Verdict> {
    const now = this.cached(user, password);
    if (now) return now;
    const key = keyOf(user, password);
    let pending = this.inFlight.get(key);
    if (!pending) {
      if (this.inFlight.size >= MAX_IN_FLIGHT) return { kind: "unavailable", reason: "too many LDAP checks are waiting for the server" };
      pending = this.check(user, password).then((outcome) => {
        if (outcome.kind === "ok" && this.options.cacheTtlMs > 0) this.remember(key, outcome.principal);
        return outcome;
      });
      this.inFlight.set(key, pending);
      void pending.finally(() => this.inFlight.delete(key));
    }
    return pending;
  }

  private hit(key: string): Verdict | undefined {
    const hit = this.cache.get(key);
    if (!hit) return undefined;
    if (hit.until > this.now()) return { kind: "ok", principal: hit.principal };
    this.cache.delete(key);
    return undefined;
  }

  /** Cached successes right now (tests, metrics). */
  cacheSize(): number {
    return this.cache.size;
  }

  private remember(key: string, principal: Principal): void {
    if (this.cache.size >= this.options.cacheMax) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, { principal, until: this.now() + this.options.cacheTtlMs });
  }

  /** One check on its own connection, bounded by the timeout. */
  private async check(user: string, password: string): Promise<Outcome> {
    const o = this.options;
    // ldapts wraps the first connection in TLS whenever tlsOptions are given, so they go to
    // the constructor for ldaps:// only; StartTLS gets them (and the name to check) itself.
    const ldaps = /^ldaps:/i.test(o.url);
    const client = new Client({ url: o.url, timeout: o.timeoutMs, connectTimeout: o.timeoutMs, strictDN: true, ...(ldaps ? { tlsOptions: this.tlsOptions() } : {}) });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<Outcome>((resolve) => {
      timer = setTimeout(() => resolve(this.unavailable(`no answer from the LDAP server within ${o.timeoutMs} ms`)), o.timeoutMs);
    });
    const work = this.dialogue(client, user, password).catch((err: Error) => this.unavailable(`the LDAP server failed: ${err.message}`));
    try {
      const outcome = await Promise.race([work, deadline]);
      if (outcome.kind === "unavailable") o.warn?.("LDAP check failed; answering 503", { url: o.url, reason: outcome.reason });
      return outcome;
    } finally {
      clearTimeout(timer);
      client.unbind().catch(() => {});
    }
  }

  private async dialogue(client: Client, user: string, password: string): Promise<Outcome> {
    const o = this.options;
    if (o.startTls) await client.startTLS(this.tlsOptions());
    try {
      await client.bind(o.bindDn, o.bindPassword);
    } catch (err) {
      if (err instanceof InvalidCredentialsError) return this.unavailable(`the LDAP server refused the service account "${o.bindDn}" (check bind_dn and bind_password_file)`);
      throw err;
    }
    const filter = o.userFilter.replaceAll("{user}", escapeFilterValue(user));
    const attributes = [o.groupAttribute, o.nameAttribute].filter((a) => a !== "");
    if (attributes.length === 0) attributes.push("1.1");
    const { searchEntries } = await client.search(o.baseDn, { scope: "sub", filter, attributes, sizeLimit: 2 });
    if (searchEntries.length === 0) return { kind: "unknown" };
    if (searchEntries.length > 1) return { kind: "denied", reason: `the LDAP user_filter matches more than one entry for "${user}"` };
    const entry = searchEntries[0]!;
    try {
      await client.bind(entry.dn, password);
    } catch (err) {
      if (err instanceof InvalidCredentialsError) return { kind: "denied", reason: `wrong password for LDAP user "${user}"` };
      throw err;
    }
    const groups = [...new Set(values(entry, o.groupAttribute).map(groupName).filter((g) => g !== ""))];
    const name = values(entry, o.nameAttribute)[0] || user;
    return { kind: "ok", principal: Object.freeze({ name, groups: Object.freeze(groups), source: "ldap" as const }) };
  }

  /** The CA (when configured) and the server name to verify (Node refuses an IP address as SNI; it then checks the host). */
  private tlsOptions(): ConnectionOptions {
    const host = new URL(this.options.url).hostname.replace(/^\[|\]$/g, "");
    return { ...(this.ca ? { ca: this.ca } : {}), host, ...(isIP(host) ? {} : { servername: host }) };
  }

  /** An `unavailable` outcome; check() logs the one it returns (a late failure after the deadline is not logged twice). */
  private unavailable(reason: string): Outcome {
    return { kind: "unavailable", reason };
  }
}
