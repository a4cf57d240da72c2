/**
 * The API key store (daemon/auth/apikeys.ts) and its admin routes (daemon/http/keys.ts):
 * create (shown once, stored as a hash, file 0600), verify as a Basic password with any user
 * name, scopes as limits, expiry, revocation at once, last use batched (no write per use),
 * a group/world-readable store refused, and the routes' ownership rules.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ApiKeyStore } from "../../daemon/auth/apikeys";
import type { Principal } from "../../daemon/auth/identity";
import { createKeysApi } from "../../daemon/http/keys";
import { tempDir } from "../helpers/daemon";

let clock = 1_800_000_000_000;
const now = () => clock;

describe("API key store", () => {
  test("create: secret shown once, only its hash on disk, file 0600; verify with any user name", async () => {
    using dir = tempDir();
    const path = join(dir.path, ".berth", "apikeys.json");
    const store = ApiKeyStore.open(path, { flushInterval: 0, now });
    const { key, info } = store.create({ owner: "ci", groups: ["builders"], label: "gitlab runner" });
    expect(key).toMatch(/^berth_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(key.startsWith(`berth_${info.id}_`)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const disk = readFileSync(path, "utf8");
    expect(disk).not.toContain(key.slice(23));
    expect(disk).toContain(new Bun.CryptoHasher("sha256").update(key.slice(23)).digest("hex"));
    for (const user of ["ci", "anything", ""]) {
      expect(await store.verify(user, key)).toEqual({ kind: "ok", principal: { name: "ci", groups: ["builders"], source: "apikey", keyId: info.id } });
    }
    expect(await store.verify("ci", "hunter2")).toEqual({ kind: "unknown" });
    const wrong = `${key.slice(0, -1)}${key.endsWith("A") ? "B" : "A"}`;
    expect((await store.verify("ci", wrong)).kind).toBe("denied");
    expect((await store.verify("ci", `berth_0123456789abcdef_${key.slice(23)}`)).kind).toBe("denied");
    store.close();
    // a reopened store knows the key
    const again = ApiKeyStore.open(path, { flushInterval: 0, now });
    expect((await again.verify("x", key)).kind).toBe("ok");
    again.close();
  });

  test("scopes become limits; bad labels, scopes and expiries are refused", async () => {
    using dir = tempDir();
    const store = ApiKeyStore.open(join(dir.path, "k.json"), { flushInterval: 0, now });
    const { key } = store.create({ owner: "ci", label: "cam", scopes: [{ repos: ["factory/*"], actions: ["push", "pull"] }] });
    const v = await store.verify("", key);
    expect(v.kind === "ok" && v.principal.limits).toEqual([{ repos: ["factory/*"], actions: ["pull", "push"] }]);
    expect(() => store.create({ owner: "ci", label: "" })).toThrow(/label/);
    expect(() => store.create({ owner: "ci", label: "x", scopes: [{ repos: ["Bad Glob"], actions: ["pull"] }] })).toThrow(/repos/);
    expect(() => store.create({ owner: "ci", label: "x", scopes: [{ repos: ["a"], actions: ["fly" as never] }] })).toThrow(/actions/);
    expect(() => store.create({ owner: "ci", label: "x", expires: clock - 1 })).toThrow(/future/);
    store.close();
  });

  test("expiry is honoured; revocation takes effect at once and survives a restart", async () => {
    using dir = tempDir();
    const path = join(dir.path, "k.json");
    const store = ApiKeyStore.open(path, { flushInterval: 0, now });
    const short = store.create({ owner: "ci", label: "short", expires: clock + 60_000 });
    expect((await store.verify("ci", short.key)).kind).toBe("ok");
    expect(store.isActive(short.info.id)).toBe(true);
    clock += 60_000;
    const expired = await store.verify("ci", short.key);
    expect(expired.kind === "denied" && expired.reason).toContain("expired");
    expect(store.isActive(short.info.id)).toBe(false);
    const long = store.create({ owner: "ci", label: "long" });
    expect((await store.verify("ci", long.key)).kind).toBe("ok");
    expect(store.revoke(long.info.id)).toBe(true);
    expect(store.revoke(long.info.id)).toBe(false);
    expect((await store.verify("ci", long.key)).kind).toBe("denied");
    store.close();
    const again = ApiKeyStore.open(path, { flushInterval: 0, now });
    expect((await again.verify("ci", long.key)).kind).toBe("denied");
    expect(again.list().map((k) => k.label)).toEqual(["short"]);
    again.close();
  });

  test("last use is kept in memory and written in one batch, not per request", async () => {
    using dir = tempDir();
    const path = join(dir.path, "k.json");
    const store = ApiKeyStore.open(path, { flushInterval: 0, now });
    const { key, info } = store.create({ owner: "ci", label: "l" });
    const before = statSync(path).mtimeMs;
    const inode = statSync(path).ino;
    for (let i = 0; i < 50; i++) await store.verify("ci", key);
    expect(statSync(path).ino).toBe(inode); // not rewritten (every write is a rename: new inode)
    expect(statSync(path).mtimeMs).toBe(before);
    expect(store.get(info.id)?.lastUsed).toBe(clock);
    expect(JSON.parse(readFileSync(path, "utf8")).keys[0].lastUsed).toBeNull();
    store.flush();
    expect(JSON.parse(readFileSync(path, "utf8")).keys[0].lastUsed).toBe(clock);
    store.close();
  });

  test("a group/world-readable or malformed store is refused", () => {
    using dir = tempDir();
    const path = join(dir.path, "k.json");
    writeFileSync(path, JSON.stringify({ version: 1, keys: [] }), { mode: 0o644 });
    chmodSync(path, 0o644);
    expect(() => ApiKeyStore.open(path)).toThrow(/mode 0644.*chmod 600/);
    chmodSync(path, 0o600);
    ApiKeyStore.open(path, { flushInterval: 0 }).close();
    writeFileSync(path, "{nope");
    expect(() => ApiKeyStore.open(path)).toThrow(/not valid JSON/);
    writeFileSync(path, JSON.stringify({ version: 1, keys: [{ id: "zz" }] }));
    expect(() => ApiKeyStore.open(path)).toThrow(/malformed/);
  });
});

describe("/api/v1/keys", () => {
  const alice: Principal = { name: "alice", groups: [], source: "htpasswd" };
  const bob: Principal = { name: "bob", groups: [], source: "htpasswd" };
  const root: Principal = { name: "root", groups: ["admins"], source: "htpasswd" };
  const call = (api: ReturnType<typeof createKeysApi>, method: string, path: string, principal: Principal, body?: unknown, admin = false) =>
    api(new Request(`http://x${path}`, { method, ...(body !== undefined && { body: JSON.stringify(body) }) }), path, { principal, admin });

  test("create, list own (admins all), revoke own only, secrets never listed", async () => {
    using dir = tempDir();
    const store = ApiKeyStore.open(join(dir.path, "k.json"), { flushInterval: 0, now });
    const api = createKeysApi(store, now);
    const made = await call(api, "POST", "/api/v1/keys", alice, { label: "ci", expires_in: 3600, scopes: [{ repos: ["app/**"], actions: ["pull"] }] });
    expect(made.status).toBe(201);
    const a = (await made.json()) as { key: string; id: string; expires: string; owner: string };
    expect(a.owner).toBe("alice");
    expect(a.expires).toBe(new Date(clock + 3_600_000).toISOString());
    await call(api, "POST", "/api/v1/keys", bob, { label: "bob's", expires: "2099-01-01T00:00:00Z" });
    const listA = await (await call(api, "GET", "/api/v1/keys", alice)).text();
    expect(listA).toContain(a.id);
    expect(listA).not.toContain("bob's");
    expect(listA).not.toContain(a.key.slice(23));
    expect(listA).not.toContain("hash");
    expect(((await (await call(api, "GET", "/api/v1/keys", root, undefined, true)).json()) as { keys: unknown[] }).keys).toHaveLength(2);
    expect((await call(api, "DELETE", `/api/v1/keys/${a.id}`, bob)).status).toBe(404);
    expect((await store.verify("", a.key)).kind).toBe("ok");
    expect((await call(api, "DELETE", `/api/v1/keys/${a.id}`, alice)).status).toBe(204);
    expect((await store.verify("", a.key)).kind).toBe("denied");
    expect((await call(api, "DELETE", `/api/v1/keys/${a.id}`, alice)).status).toBe(404);
    store.close();
  });

  test("bad requests are 400; a key or token cannot mint keys", async () => {
    using dir = tempDir();
    const store = ApiKeyStore.open(join(dir.path, "k.json"), { flushInterval: 0, now });
    const api = createKeysApi(store, now);
    for (const body of [{}, { label: 5 }, { label: "x", expires_in: -1 }, { label: "x", expires: "tomorrow" }, { label: "x", scopes: "all" }, [1]]) {
      const r = await call(api, "POST", "/api/v1/keys", alice, body);
      expect(r.status).toBe(400);
      expect(((await r.json()) as { error: string }).error.length).toBeGreaterThan(0);
    }
    expect((await call(api, "POST", "/api/v1/keys", { ...alice, source: "apikey", keyId: "k" }, { label: "x" })).status).toBe(403);
    expect((await call(api, "POST", "/api/v1/keys", { ...alice, source: "token" }, { label: "x" })).status).toBe(403);
    expect((await call(api, "PUT", "/api/v1/keys", alice, { label: "x" })).status).toBe(405);
    expect((await call(api, "DELETE", "/api/v1/keys/../../etc", alice)).status).toBe(404);
    expect(store.list()).toHaveLength(0);
    store.close();
  });
});
