/**
 * The token endpoint (daemon/auth/tokenservice.ts), socketless: GET with and without Basic
 * credentials, the OAuth2 password grant (POST), scope intersection with the policy and with
 * an API key's own limits, errors (bad credentials, malformed header, unknown service, too
 * many scopes, refresh grant, credential source down), and the challenge/realm builders.
 */
import { describe, expect, test } from "bun:test";
import type { Action, Principal, Verdict } from "../../daemon/auth/identity";
import type { SigningKey, TokenClaims } from "../../daemon/auth/jwt";
import { bearerChallenge, parseScope, realmFor } from "../../daemon/auth/scope";
import { generateSigningKey, loadOrCreateSigningKey } from "../../daemon/auth/tokenkey";
import { createTokenService } from "../../daemon/auth/tokenservice";
import { createTokenVerifier } from "../../daemon/auth/tokenverifier";
import { tempDir } from "../helpers/daemon";
import { chmodSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const NOW = 1_800_000_000;
const key: SigningKey = await generateSigningKey();

const users: Record<string, { password: string; principal: Principal }> = {
  ci: { password: "ci-pw", principal: { name: "ci", groups: ["builders"], source: "htpasswd" } },
  viewer: { password: "v-pw", principal: { name: "viewer", groups: [], source: "htpasswd" } },
  key: { password: "berth_k1_s", principal: { name: "ci", groups: ["builders"], source: "apikey", keyId: "k1", limits: [{ repos: ["factory/*"], actions: ["pull"] }] } },
};

async function passwords(user: string, password: string): Promise<Verdict> {
  if (user === "down") return { kind: "unavailable", reason: "LDAP server unreachable" };
  const u = users[user];
  if (!u) return { kind: "unknown" };
  return u.password === password ? { kind: "ok", principal: u.principal } : { kind: "denied", reason: "wrong password" };
}

/** public/** anonymous pull; ci: everything; viewer: pull everywhere. */
function authorize(p: Principal | undefined, repo: string, action: Action): boolean {
  if (repo.startsWith("public/") && action === "pull") return true;
  if (p?.name === "ci") return true;
  return p?.name === "viewer" && action === "pull";
}

const handle = createTokenService({ key, issuer: "berth", service: "reg", ttl: 300, passwords, authorize, now: () => NOW });
const verifier = createTokenVerifier({ keys: [key], issuer: "berth", service: "reg", now: () => NOW + 10 });
const basic = (u: string, p: string) => ({ Authorization: `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}` });

async function token(query: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; claims?: TokenClaims }> {
  const res = await handle(new Request(`http://reg.local/auth/token?${query}`, { headers }));
  const body = (await res.json()) as Record<string, unknown>;
  const t = body.token as string | undefined;
  const claims = t ? (JSON.parse(Buffer.from(t.split(".")[1]!, "base64url").toString()) as TokenClaims) : undefined;
  return { status: res.status, body, claims };
}

describe("GET /auth/token", () => {
  test("anonymous gets a token with what anonymous may do, and it verifies as anonymous", async () => {
    const r = await token("service=reg&scope=repository:public/app:pull,push&scope=repository:private/x:pull");
    expect(r.status).toBe(200);
    expect(r.body.access_token).toBe(r.body.token);
    expect(r.body.expires_in).toBe(300);
    expect(r.body.issued_at).toBe(new Date(NOW * 1000).toISOString());
    expect(r.claims).toMatchObject({ iss: "berth", sub: "", aud: "reg", exp: NOW + 300, iat: NOW, access: [{ type: "repository", name: "public/app", actions: ["pull"] }] });
    expect(await verifier.verify(r.body.token as string)).toEqual({ kind: "anonymous" });
  });

  test("a user gets the intersection of the requested scopes and the policy", async () => {
    const v = await token("service=reg&scope=repository:app:pull,push,delete&scope=repository:app:push&scope=registry:catalog:*", basic("viewer", "v-pw"));
    expect(v.claims?.access).toEqual([{ type: "repository", name: "app", actions: ["pull"] }, { type: "registry", name: "catalog", actions: ["*"] }]);
    const c = await token("scope=repository:app:*&scope=repository:Bad..Name:pull&scope=repository(plugin):tools/x:pull&scope=unknown:x:y", basic("ci", "ci-pw"));
    expect(c.status).toBe(200);
    expect(c.claims?.access).toEqual([{ type: "repository", name: "app", actions: ["pull", "push", "delete"] }, { type: "repository", name: "tools/x", actions: ["pull"] }]);
    expect(c.claims?.grp).toEqual(["builders"]);
    const v2 = await verifier.verify(c.body.token as string);
    expect(v2).toEqual({ kind: "ok", principal: { name: "ci", groups: ["builders"], source: "token", limits: [{ repos: ["app"], actions: ["pull", "push", "delete"] }, { repos: ["tools/x"], actions: ["pull"] }] } });
  });

  test("an API key's own scopes limit the token, and no catalog grant widens them", async () => {
    const r = await token("scope=repository:factory/cam:pull,push&scope=repository:other:pull&scope=registry:catalog:*", basic("key", "berth_k1_s"));
    expect(r.claims?.access).toEqual([{ type: "repository", name: "factory/cam", actions: ["pull"] }]);
    expect(r.claims?.kid).toBe("k1");
  });

  test("wrong password, unknown user, malformed Basic: 401 with a Basic challenge; source down: 503", async () => {
    for (const h of [basic("ci", "nope"), basic("ghost", "x"), { Authorization: "Basic %%%" }, { Authorization: `Basic ${btoa("nocolon")}` }]) {
      const r = await handle(new Request("http://reg.local/auth/token?scope=repository:app:pull", { headers: h }));
      expect(r.status).toBe(401);
      expect(r.headers.get("www-authenticate")).toBe('Basic realm="berth"');
      expect(((await r.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("UNAUTHORIZED");
    }
    expect((await token("scope=repository:app:pull", basic("down", "x"))).status).toBe(503);
  });

  test("an unknown service or too many scopes is a 400", async () => {
    expect((await token("service=elsewhere&scope=repository:app:pull")).status).toBe(400);
    const many = Array.from({ length: 65 }, (_, i) => `scope=repository:r${i}:pull`).join("&");
    expect((await token(many)).status).toBe(400);
    expect((await handle(new Request("http://reg.local/auth/token", { method: "DELETE" }))).status).toBe(405);
  });
});

describe("POST /auth/token (OAuth2)", () => {
  const post = (form: Record<string, string>) => handle(new Request("http://reg.local/auth/token", { method: "POST", body: new URLSearchParams(form), headers: { "Content-Type": "application/x-www-form-urlencoded" } }));

  test("the password grant issues an access token with space-separated scopes", async () => {
    const res = await post({ grant_type: "password", username: "ci", password: "ci-pw", service: "reg", client_id: "containerd", scope: "repository:app:pull,push repository:b:pull" });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, string>;
    expect(body.refresh_token).toBeUndefined();
    expect(body.scope).toBe("repository:app:pull,push repository:b:pull");
    expect((await verifier.verify(body.access_token!)).kind).toBe("ok");
  });

  test("bad password 401; refresh grant, unknown grant, missing fields, huge form 400", async () => {
    expect((await post({ grant_type: "password", username: "ci", password: "x" })).status).toBe(401);
    const refresh = await post({ grant_type: "refresh_token", refresh_token: "r" });
    expect(refresh.status).toBe(400);
    expect(((await refresh.json()) as { error: string }).error).toBe("unsupported_grant_type");
    expect((await post({ grant_type: "client_credentials" })).status).toBe(400);
    expect((await post({ grant_type: "password", username: "ci" })).status).toBe(400);
    expect((await post({ grant_type: "password", username: "ci", password: "ci-pw", scope: "x".repeat(20_000) })).status).toBe(400);
  });
});

describe("behind the HTTP front", () => {
  test("GET takes the front's principal; the POST form goes through the front's login (lockout: 429)", async () => {
    const ghost: Principal = { name: "ghost", groups: [], source: "ldap" };
    const get = await handle(new Request("http://x/auth/token?scope=repository:app:pull"), { principal: users.viewer!.principal });
    expect(JSON.parse(Buffer.from(((await get.json()) as { token: string }).token.split(".")[1]!, "base64url").toString()).sub).toBe("viewer");
    const form = (password: string) => new Request("http://x/auth/token", { method: "POST", body: new URLSearchParams({ grant_type: "password", username: "ghost", password, scope: "repository:public/a:pull" }) });
    const seen: string[] = [];
    const login = async (u: string, p: string) => (seen.push(`${u}:${p}`), p === "ok" ? ({ kind: "ok", principal: ghost } as const) : ({ kind: "throttled", retryAfter: 7 } as const));
    const ok = await handle(form("ok"), { principal: undefined, login });
    expect(ok.status).toBe(200);
    const locked = await handle(form("guess"), { principal: undefined, login });
    expect(locked.status).toBe(429);
    expect(locked.headers.get("retry-after")).toBe("7");
    expect(seen).toEqual(["ghost:ok", "ghost:guess"]);
  });
});

describe("scopes, challenges and the key file", () => {
  test("scope parsing: names with a port, classes, catalog, unknown actions", () => {
    expect(parseScope("repository:a/b:pull,push")).toEqual({ kind: "repository", name: "a/b", actions: ["pull", "push"] });
    expect(parseScope("repository:a:*")).toEqual({ kind: "repository", name: "a", actions: ["pull", "push", "delete"] });
    expect(parseScope("repository:a:pull,frobnicate")).toEqual({ kind: "repository", name: "a", actions: ["pull"] });
    expect(parseScope("registry:catalog:*")).toEqual({ kind: "catalog" });
    expect(parseScope("repository:host:5000/a:pull")).toBeUndefined(); // not a name this registry serves
    expect(parseScope("repository:pull")).toBeUndefined();
    expect(parseScope("garbage")).toBeUndefined();
  });

  test("Bearer challenge and realm", () => {
    expect(bearerChallenge({ realm: "https://r:5000/auth/token", service: "reg", scope: "repository:app:pull,push" })).toBe(
      'Bearer realm="https://r:5000/auth/token",service="reg",scope="repository:app:pull,push"',
    );
    expect(bearerChallenge({ realm: "http://x/auth/token", service: "reg", scope: "registry:catalog:*", error: "invalid_token" })).toBe(
      'Bearer realm="http://x/auth/token",service="reg",scope="registry:catalog:*",error="invalid_token"',
    );
    expect(realmFor(new Request("http://127.0.0.1:5000/v2/", { headers: { Host: "berth.lan:5000" } }), undefined)).toBe("http://berth.lan:5000/auth/token");
    expect(realmFor(new Request("https://127.0.0.1:5000/v2/", { headers: { Host: "evil\"host" } }), undefined)).toBe("https://127.0.0.1:5000/auth/token");
    expect(realmFor(new Request("http://127.0.0.1/v2/"), "https://reg.example/auth/token")).toBe("https://reg.example/auth/token");
  });

  test("the key file is created 0600 on first start, reused, and refused when group/world readable", async () => {
    using dir = tempDir();
    const path = join(dir.path, "sub", "token.key");
    const a = await loadOrCreateSigningKey(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const b = await loadOrCreateSigningKey(path);
    expect(b.kid).toBe(a.kid);
    chmodSync(path, 0o644);
    await expect(loadOrCreateSigningKey(path)).rejects.toThrow(/mode 0644.*chmod 600/);
    const junk = join(dir.path, "junk.key");
    writeFileSync(junk, "not a key", { mode: 0o600 });
    await expect(loadOrCreateSigningKey(junk)).rejects.toThrow(/not a PKCS#8 PEM/);
  });
});
