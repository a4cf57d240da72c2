/**
 * The htpasswd password source: `user:hash` lines as written by `htpasswd -B` (bcrypt,
 * `$2y$`, `$2a$` or `$2b$`). Other hash kinds (MD5 `$apr1$`, `{SHA}`, crypt) are refused
 * when the file is read, naming the line and how to fix it. The file is a secret: one that
 * group or others may read is refused.
 *
 * Re-reading: on use, the file's identity (mtime, size, inode) is compared at most once per
 * second; a changed file is parsed again, and a broken one keeps the last good entries (the
 * reason is logged). Verified credentials are cached (auth/cache.ts), keyed on the stored
 * hash, so bcrypt runs once per (user, password) and a change takes effect at once.
 */
import { readFileSync, statSync } from "node:fs";
import type { Logger } from "../log";
import { verifyPassword } from "../platform/password";
import { VerifiedCache } from "./cache";
import type { CachedPasswordSource } from "./chain";
import type { Principal, Verdict } from "./identity";
import { checkSecretMode, SecretFileError } from "./secretfile";

const UNKNOWN: Verdict = Object.freeze({ kind: "unknown" });

const BCRYPT = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;

/** The kind of a password hash that is not bcrypt, for the error message. */
function hashKind(hash: string): string {
  if (hash.startsWith("$apr1$")) return "an MD5 ($apr1$)";
  if (hash.startsWith("{SHA}")) return "a SHA-1 ({SHA})";
  if (hash.startsWith("$5$") || hash.startsWith("$6$")) return "a SHA-crypt";
  if (hash.startsWith("$2")) return "a malformed bcrypt";
  return "a crypt or plain-text";
}

/**
 * Parses htpasswd text. Blank lines and `#` comments are skipped. Throws a
 * {@link SecretFileError} listing every bad line.
 */
export function parseHtpasswd(text: string, path: string): Map<string, string> {
  const users = new Map<string, string>();
  const problems: string[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "").trim();
    if (line === "" || line.startsWith("#")) return;
    const colon = line.indexOf(":");
    const user = colon < 0 ? "" : line.slice(0, colon);
    const hash = colon < 0 ? "" : line.slice(colon + 1);
    if (user === "" || hash === "") {
      problems.push(`line ${i + 1}: expected "user:hash"; create entries with htpasswd -B "${path}" USER`);
    } else if (!BCRYPT.test(hash)) {
      problems.push(`line ${i + 1}: user "${user}" has ${hashKind(hash)} hash; berth accepts only bcrypt: run htpasswd -B "${path}" ${user}`);
    } else if (users.has(user)) {
      problems.push(`line ${i + 1}: user "${user}" appears twice; remove one of the lines`);
    } else users.set(user, hash);
  });
  if (problems.length > 0) throw new SecretFileError(`${path}: ${problems.join("; ")}`);
  return users;
}

/** Options for {@link HtpasswdSource}. */
export interface HtpasswdOptions {
  /** Groups of htpasswd users (`[auth] groups`): group -> user names. */
  groups?: Readonly<Record<string, readonly string[]>>;
  /** Verified-credential cache: entries and TTL. */
  cacheEntries?: number;
  cacheTtlMs?: number;
  /** Milliseconds between checks of the file for changes (default 1000). */
  checkIntervalMs?: number;
  now?: () => number;
}

/** A {@link PasswordSource} over an htpasswd file. */
export class HtpasswdSource implements CachedPasswordSource {
  readonly name = "htpasswd" as const;
  private users: Map<string, string>;
  private groupsOf = new Map<string, string[]>();
  /** One principal per user, made once (no allocation per request). */
  private principals = new Map<string, Principal>();
  private readonly cache: VerifiedCache;
  private readonly now: () => number;
  private readonly checkIntervalMs: number;
  private lastCheck: number;
  private stamp: string;

  /** Reads the file; throws a {@link SecretFileError} when it cannot be used (at start-up). */
  constructor(readonly path: string, private readonly log: Logger, options: HtpasswdOptions = {}) {
    this.now = options.now ?? Date.now;
    this.checkIntervalMs = options.checkIntervalMs ?? 1000;
    this.cache = new VerifiedCache(options.cacheEntries ?? 1024, options.cacheTtlMs ?? 60_000, this.now);
    const { users, stamp } = this.read();
    this.users = users;
    this.stamp = stamp;
    this.lastCheck = this.now();
    this.setGroups(options.groups ?? {});
  }

  /** Replaces the groups of users (a configuration reload). */
  setGroups(groups: Readonly<Record<string, readonly string[]>>): void {
    const map = new Map<string, string[]>();
    for (const [group, members] of Object.entries(groups)) {
      for (const m of members) map.set(m, [...(map.get(m) ?? []), group]);
    }
    this.groupsOf = map;
    this.principals = new Map();
  }

  /** Users currently known. */
  get size(): number {
    return this.users.size;
  }

  private read(): { users: Map<string, string>; stamp: string } {
    let st;
    try {
      st = statSync(this.path);
    } catch (err) {
      throw new SecretFileError(`cannot read "${this.path}" (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    checkSecretMode(this.path, st.mode);
    const users = parseHtpasswd(readFileSync(this.path, "utf8"), this.path);
    return { users, stamp: `${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}` };
  }

  /** Re-reads the file when it changed (checked at most once per interval); a broken file keeps the last good entries. */
  refresh(force = false): void {
    const now = this.now();
    if (!force && now - this.lastCheck < this.checkIntervalMs) return;
    this.lastCheck = now;
    let stamp: string;
    try {
      const st = statSync(this.path);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}`;
    } catch (err) {
      if (this.stamp !== "gone") this.log.error("htpasswd file cannot be read; keeping the last good users", { path: this.path, error: (err as Error).message });
      this.stamp = "gone";
      return;
    }
    if (stamp === this.stamp) return;
    this.stamp = stamp;
    try {
      this.users = this.read().users;
      this.principals = new Map();
      this.log.info("htpasswd file re-read", { path: this.path, users: this.users.size });
    } catch (err) {
      this.log.error("htpasswd file is broken; keeping the last good users", { path: this.path, error: (err as Error).message });
    }
  }

  private principal(user: string): Principal {
    let p = this.principals.get(user);
    if (!p) {
      p = Object.freeze({ name: user, groups: this.groupsOf.get(user) ?? [], source: "htpasswd" as const });
      this.principals.set(user, p);
    }
    return p;
  }

  /** The groups of `user` when the file (re-read if it changed) has that user; undefined otherwise. */
  member(user: string): readonly string[] | undefined {
    this.refresh();
    return this.users.has(user) ? (this.groupsOf.get(user) ?? []) : undefined;
  }

  /** At once: `unknown` for a user not in the file, `ok` for a credential verified within the TTL; else undefined. */
  cached(user: string, password: string): Verdict | undefined {
    this.refresh();
    const hash = this.users.get(user);
    if (hash === undefined) return UNKNOWN;
    return this.cache.has(VerifiedCache.key(user, password, hash)) ? { kind: "ok", principal: this.principal(user) } : undefined;
  }

  async verify(user: string, password: string): Promise<Verdict> {
    this.refresh();
    const hash = this.users.get(user);
    if (hash === undefined) return UNKNOWN;
    const key = VerifiedCache.key(user, password, hash);
    if (!this.cache.has(key)) {
      let ok = false;
      try {
        ok = await verifyPassword(password, hash);
      } catch {
        ok = false;
      }
      if (!ok) return { kind: "denied", reason: `wrong password for user "${user}"` };
      this.cache.add(key);
    }
    return { kind: "ok", principal: this.principal(user) };
  }
}
