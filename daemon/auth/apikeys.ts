/**
 * API keys for machines and CI. A key is created by an authenticated user, shown once as
 * `berth_<id>_<secret>` (id: 16 hex digits; secret: 32 random bytes, base64url), and stored
 * only as the SHA-256 of the secret (a random 256-bit secret needs no slow hash), compared in
 * constant time. A key has a label, an optional expiry and optional repository scopes (globs
 * and actions) that narrow what its owner's policy grants. It is the password of Basic auth
 * with any user name, and works in the token flow: it is a {@link PasswordSource} named
 * "apikey".
 *
 * The store is one JSON file, `<root>/.berth/apikeys.json` (not meta.db: that is a derived
 * index rebuilt from the layouts; keys are not derived), written atomically with mode 0600 on
 * every create and revoke, and refused at start when group/world readable. Revocation takes
 * effect at once (the in-memory map is the truth). Last use is kept in memory and written in
 * one batch every `flushInterval` (and on close), never once per request.
 *
 *   { "version": 1, "keys": [ { "id", "owner", "groups", "label", "created", "expires",
 *                               "scopes": [ { "repos": [glob…], "actions": […] } ], "hash",
 *                               "lastUsed" } ] }
 */
import { timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { sha256Bytes } from "../platform/hash";
import { ACTIONS, type Action, type PasswordSource, type Principal, type ScopeLimit, type Verdict } from "./identity";
import { checkSecretFile, writeSecretFile } from "./secretfile";

/** What a listing shows of a key (never its hash). */
export interface ApiKeyInfo {
  id: string;
  owner: string;
  label: string;
  /** Milliseconds since the epoch. */
  created: number;
  /** Milliseconds since the epoch; null: never expires. */
  expires: number | null;
  /** Empty: the owner's full rights. */
  scopes: ScopeLimit[];
  lastUsed: number | null;
}

interface Stored extends ApiKeyInfo {
  groups: string[];
  hash: string;
}

/** What a new key is made of. */
export interface NewKey {
  owner: string;
  /** The owner's groups when the key is made (policies may name groups). */
  groups?: readonly string[];
  label: string;
  expires?: number | null;
  scopes?: readonly ScopeLimit[];
}

/** A request to create a key that cannot be honoured (bad label, scope, expiry, too many keys). */
export class ApiKeyError extends Error {}

/** Most keys one store holds. */
export const MAX_KEYS = 1000;
const MAX_LABEL = 128;
const MAX_SCOPES = 32;
const KEY_FORMAT = /^berth_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const GLOB = /^[a-z0-9._\-/*?]{1,255}$/;

const sha256 = (text: string) => Buffer.from(sha256Bytes(text));

function checkScopes(value: unknown, where: string): ScopeLimit[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.length > MAX_SCOPES) throw new ApiKeyError(`${where}: scopes must be a list of at most ${MAX_SCOPES} entries`);
  return value.map((s, i) => {
    const { repos, actions } = (s ?? {}) as Record<string, unknown>;
    if (!Array.isArray(repos) || repos.length === 0 || repos.length > 64 || !repos.every((r) => typeof r === "string" && GLOB.test(r))) {
      throw new ApiKeyError(`${where}: scopes[${i}].repos must be 1-64 repository globs (a-z 0-9 . _ - / * ?)`);
    }
    if (!Array.isArray(actions) || actions.length === 0 || !actions.every((a) => (ACTIONS as readonly unknown[]).includes(a))) {
      throw new ApiKeyError(`${where}: scopes[${i}].actions must name some of ${ACTIONS.join(", ")}`);
    }
    return { repos: [...(repos as string[])], actions: ACTIONS.filter((a) => (actions as Action[]).includes(a)) };
  });
}

function parseStored(value: unknown, path: string): Stored[] {
  const doc = value as { version?: unknown; keys?: unknown };
  if (doc?.version !== 1 || !Array.isArray(doc.keys)) throw new Error(`API key store "${path}" is not a version 1 key store`);
  return doc.keys.map((k: Record<string, unknown>, i: number) => {
    const where = `API key store "${path}" keys[${i}]`;
    const ok = typeof k?.id === "string" && /^[0-9a-f]{16}$/.test(k.id) && typeof k.owner === "string" && typeof k.label === "string" &&
      typeof k.created === "number" && (k.expires === null || typeof k.expires === "number") && typeof k.hash === "string" && /^[0-9a-f]{64}$/.test(k.hash);
    if (!ok) throw new Error(`${where} is malformed`);
    return {
      id: k.id as string, owner: k.owner as string, label: k.label as string, created: k.created as number, expires: k.expires as number | null,
      groups: Array.isArray(k.groups) ? k.groups.filter((g): g is string => typeof g === "string") : [],
      scopes: checkScopes(k.scopes, where), hash: k.hash as string, lastUsed: typeof k.lastUsed === "number" ? k.lastUsed : null,
    };
  });
}

/** The current groups of a key's owner; undefined when the owner is no longer a user. */
export type OwnerLookup = (owner: string) => readonly string[] | undefined;

/** Options of {@link ApiKeyStore.open}. */
export interface ApiKeyStoreOptions {
  /** Milliseconds between batched writes of last-use times (default 60 s); 0: only on close. */
  flushInterval?: number;
  /** Milliseconds since the epoch; default the clock. */
  now?: () => number;
}

/** The API key store and password source. */
export class ApiKeyStore implements PasswordSource {
  readonly name = "apikey" as const;
  private readonly keys = new Map<string, Stored>();
  private dirty = false;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly now: () => number;
  private owners: OwnerLookup | undefined;

  private constructor(readonly path: string, o: ApiKeyStoreOptions) {
    this.now = o.now ?? Date.now;
    const every = o.flushInterval ?? 60_000;
    if (every > 0) {
      this.timer = setInterval(() => this.flush(), every);
      this.timer.unref?.();
    }
  }

  /** Opens the store at `path` (absent: empty, created on the first key); throws on a readable-by-others or malformed file. */
  static open(path: string, o: ApiKeyStoreOptions = {}): ApiKeyStore {
    const store = new ApiKeyStore(path, o);
    try {
      if (checkSecretFile(path)) {
        let doc: unknown;
        try {
          doc = JSON.parse(readFileSync(path, "utf8"));
        } catch (err) {
          throw new Error(`API key store "${path}" is not valid JSON (${(err as Error).message})`);
        }
        for (const k of parseStored(doc, path)) store.keys.set(k.id, k);
      }
    } catch (err) {
      store.close();
      throw err;
    }
    return store;
  }

  /**
   * Ties keys to their owners' current accounts: a key whose owner `lookup` no longer knows
   * is refused (and so is every token obtained with it), and a key acts with its owner's
   * groups of now, not those of the day it was made. Without a lookup, keys stand alone.
   */
  setOwners(lookup: OwnerLookup): void {
    this.owners = lookup;
  }

  /** Creates a key; returns the secret (shown once) and what listings show. */
  create(n: NewKey): { key: string; info: ApiKeyInfo } {
    const label = n.label.trim();
    if (label.length === 0 || label.length > MAX_LABEL || /[\u0000-\u001f]/.test(label)) throw new ApiKeyError(`label "${label.slice(0, 40)}" must be 1-${MAX_LABEL} printable characters`);
    const expires = n.expires ?? null;
    if (expires !== null && (!Number.isSafeInteger(expires) || expires <= this.now())) throw new ApiKeyError(`expiry ${String(expires)} is not a time in the future`);
    const scopes = checkScopes(n.scopes, "new key");
    if (this.keys.size >= MAX_KEYS) throw new ApiKeyError(`the store already holds ${MAX_KEYS} keys; revoke some first`);
    const id = Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString("hex");
    const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
    const stored: Stored = { id, owner: n.owner, groups: [...(n.groups ?? [])], label, created: this.now(), expires, scopes, hash: sha256(secret).toString("hex"), lastUsed: null };
    this.keys.set(id, stored);
    try {
      this.write();
    } catch (err) {
      this.keys.delete(id);
      throw err;
    }
    return { key: `berth_${id}_${secret}`, info: infoOf(stored) };
  }

  /** Keys of `owner`, or every key when `owner` is undefined; oldest first. */
  list(owner?: string): ApiKeyInfo[] {
    return [...this.keys.values()].filter((k) => owner === undefined || k.owner === owner).sort((a, b) => a.created - b.created).map(infoOf);
  }

  /** The key with this id, if any. */
  get(id: string): ApiKeyInfo | undefined {
    const k = this.keys.get(id);
    return k && infoOf(k);
  }

  /** Revokes (deletes) a key at once; false when there is no such key. */
  revoke(id: string): boolean {
    const k = this.keys.get(id);
    if (!k) return false;
    this.keys.delete(id);
    try {
      this.write();
    } catch (err) {
      this.keys.set(id, k);
      throw err;
    }
    return true;
  }

  /** True while the key exists and has not expired (tokens obtained with a key ask this). */
  isActive(id: string): boolean {
    const k = this.keys.get(id);
    return k !== undefined && (k.expires === null || k.expires > this.now()) && (this.owners === undefined || this.owners(k.owner) !== undefined);
  }

  /** PasswordSource: a `berth_…` password is this store's (any user name); others are "unknown". */
  async verify(_user: string, password: string): Promise<Verdict> {
    const m = KEY_FORMAT.exec(password);
    if (!m) return { kind: "unknown" };
    const k = this.keys.get(m[1]!);
    // hash even when the id is unknown, so timing says nothing about which ids exist
    const given = sha256(m[2]!);
    if (!k) return { kind: "denied", reason: `API key "${m[1]}" does not exist or was revoked` };
    if (!timingSafeEqual(given, Buffer.from(k.hash, "hex"))) return { kind: "denied", reason: `wrong secret for API key "${k.id}"` };
    const now = this.now();
    if (k.expires !== null && k.expires <= now) return { kind: "denied", reason: `API key "${k.id}" expired at ${new Date(k.expires).toISOString()}` };
    const groups = this.owners === undefined ? k.groups : this.owners(k.owner);
    if (groups === undefined) return { kind: "denied", reason: `the owner "${k.owner}" of API key "${k.id}" is no longer a user` };
    k.lastUsed = now;
    this.dirty = true;
    const principal: Principal = { name: k.owner, groups: [...groups], source: "apikey", keyId: k.id, ...(k.scopes.length > 0 && { limits: k.scopes }) };
    return { kind: "ok", principal };
  }

  /** Writes batched last-use times if any changed; a failed write is retried at the next flush. */
  flush(): void {
    if (!this.dirty) return;
    try {
      this.write();
    } catch {
      // keep dirty: the next flush or close tries again; last use is advisory
    }
  }

  /** Flushes and stops the flush timer. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.flush();
  }

  private write(): void {
    const keys = [...this.keys.values()];
    writeSecretFile(this.path, `${JSON.stringify({ version: 1, keys }, null, 1)}\n`);
    this.dirty = false;
  }
}

function infoOf(k: Stored): ApiKeyInfo {
  return { id: k.id, owner: k.owner, label: k.label, created: k.created, expires: k.expires, scopes: k.scopes.map((s) => ({ repos: [...s.repos], actions: [...s.actions] })), lastUsed: k.lastUsed };
}
