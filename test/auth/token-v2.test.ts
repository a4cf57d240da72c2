/**
 * Bearer tokens on the /v2 front, socketless, wired as the daemon wires them (auth/setup.ts
 * plus auth/tokensetup.ts): 401s carry the Bearer challenge with the scope; a token grants
 * only its access claims (intersected with the policy at request time); an anonymous token
 * is anonymous; fuzzed, forged, expired and foreign tokens never get a 2xx or a 500.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setupAuth } from "../../daemon/auth/setup";
import { b64url, signJwt, type TokenClaims } from "../../daemon/auth/jwt";
import { generateSigningKey } from "../../daemon/auth/tokenkey";
import { type TokenAuth, setupTokenAuth } from "../../daemon/auth/tokensetup";
import { silentLogger } from "../../daemon/log";
import { basic, configOf, writeHtpasswd } from "../helpers/auth";
import { type TestRegistry, createTestRegistry, pushImage } from "../helpers/registry";

let dir: string;
let r: TestRegistry;
let tokens: TokenAuth;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "berth-tokenv2-"));
  const root = join(dir, "root");
  await using seed = await createTestRegistry({ root });
  await pushImage(seed, "public/base", "v1", "public");
  await pushImage(seed, "team/app", "v1", "team");
  await pushImage(seed, "secret/app", "v1", "secret");
  const htpasswd = await writeHtpasswd(dir, { ci: "ci-pw", viewer: "viewer-pw" });
  const config = configOf(`
[auth]
htpasswd = "${htpasswd}"
[auth.token]
enabled = true
service = "reg"
realm = "https://reg.example/auth/token"
[[access]]
repos = ["public/**"]
anonymous = ["pull"]
[[access]]
repos = ["team/**", "secret/**"]
users = { ci = ["pull", "push", "delete"], viewer = ["pull"] }
`);
  const auth = setupAuth(config, silentLogger, undefined)!;
  tokens = await setupTokenAuth({
    root,
    token: config.auth.token,
    apikeys: config.auth.apikeys,
    passwords: (u, p) => auth.chain.verify(u, p),
    authorize: (p, repo, a) => auth.access.may(p, repo, a),
  });
  auth.chain.register(tokens.apiKeys!, true);
  auth.plug({ tokens: tokens.token!.verifier, tokenEndpoint: (req, principal) => tokens.token!.handle(req, { principal }) });
  r = await createTestRegistry({ root, auth });
});
afterAll(async () => {
  tokens?.close();
  await r[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

async function tokenFor(scopes: string[], headers: Record<string, string> = {}): Promise<string> {
  const q = scopes.map((s) => `scope=${encodeURIComponent(s)}`).join("&");
  const res = await tokens.token!.handle(new Request(`http://x/auth/token?service=reg&${q}`, { headers }));
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

describe("Bearer tokens on /v2", () => {
  test("anonymous: 401 with the Bearer challenge naming the configured realm, service and scope", async () => {
    const res = await r.call("GET", "/v2/team/app/manifests/v1");
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="https://reg.example/auth/token",service="reg",scope="repository:team/app:pull"');
    const base = await r.call("GET", "/v2/");
    expect(base.headers.get("www-authenticate")).toBe('Bearer realm="https://reg.example/auth/token",service="reg"');
  });

  test("a token grants its access claims only, and the policy still applies at request time", async () => {
    const t = await tokenFor(["repository:team/app:pull"], basic("ci", "ci-pw"));
    expect((await r.call("GET", "/v2/team/app/manifests/v1", { headers: bearer(t) })).status).toBe(200);
    expect((await r.call("GET", "/v2/", { headers: bearer(t) })).status).toBe(200);
    const other = await r.call("GET", "/v2/secret/app/manifests/v1", { headers: bearer(t) });
    expect(other.status).toBe(401);
    expect(other.headers.get("www-authenticate")).toContain('scope="repository:secret/app:pull"');
    expect((await r.call("POST", "/v2/team/app/blobs/uploads/", { headers: bearer(t) })).status).toBe(401);
    // a viewer asking for push gets a pull-only token
    const v = await tokenFor(["repository:team/app:pull,push"], basic("viewer", "viewer-pw"));
    expect(JSON.parse(Buffer.from(v.split(".")[1]!, "base64url").toString()).access).toEqual([{ type: "repository", name: "team/app", actions: ["pull"] }]);
    expect((await r.call("POST", "/v2/team/app/blobs/uploads/", { headers: bearer(v) })).status).toBe(401);
  });

  test("an anonymous token is anonymous: public pulls pass, others are challenged", async () => {
    const t = await tokenFor(["repository:public/base:pull", "repository:team/app:pull"]);
    expect((await r.call("GET", "/v2/public/base/manifests/v1", { headers: bearer(t) })).status).toBe(200);
    expect((await r.call("GET", "/v2/team/app/manifests/v1", { headers: bearer(t) })).status).toBe(401);
  });

  test("forged, expired, foreign and garbage tokens: never 2xx, never 5xx", async () => {
    const good = await tokenFor(["repository:secret/app:pull,push,delete"], basic("ci", "ci-pw"));
    expect((await r.call("GET", "/v2/secret/app/manifests/v1", { headers: bearer(good) })).status).toBe(200);
    const [h, p, s] = good.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as TokenClaims;
    const key = tokens.token!.key;
    const stranger = await generateSigningKey();
    const now = Math.floor(Date.now() / 1000);
    const spki = Buffer.from(await crypto.subtle.exportKey("spki", key.publicKey));
    const hsInput = `${b64url(JSON.stringify({ alg: "HS256", kid: key.kid }))}.${p}`;
    const forged = [
      `${b64url(JSON.stringify({ alg: "none", kid: key.kid }))}.${p}.`,
      `${hsInput}.${createHmac("sha256", spki).update(hsInput).digest("base64url")}`,
      `${h}.${b64url(JSON.stringify({ ...claims, sub: "admin" }))}.${s}`,
      `${h}.${b64url(JSON.stringify({ ...claims, access: [{ type: "repository", name: "*", actions: ["*"] }] }))}.${s}`,
      await signJwt(key, { ...claims, exp: now - 3600, nbf: now - 7200, iat: now - 7200 }),
      await signJwt(key, { ...claims, aud: "another-registry" }),
      await signJwt(key, { ...claims, iss: "someone-else" }),
      await signJwt(stranger, claims),
      await signJwt({ ...stranger, kid: key.kid }, claims),
      "", "x", "a.b.c", "....", `${h}.${p}`, `${good}.`, `${good}x`, "x".repeat(9000), "é".repeat(100), "\u0000",
    ];
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let i = 0; i < 100; i++) {
      const at = Math.floor(rand() * good.length);
      const c = "AZaz09-_."[Math.floor(rand() * 9)]!;
      const m = good.slice(0, at) + c + good.slice(at + 1);
      if (m !== good) forged.push(m);
    }
    for (const t of forged) {
      for (const [method, path] of [["GET", "/v2/secret/app/manifests/v1"], ["DELETE", "/v2/secret/app/manifests/v1"], ["GET", "/v2/_catalog"], ["GET", "/v2/"]] as const) {
        let headers: Record<string, string>;
        try {
          headers = { Authorization: `Bearer ${t}` };
          new Headers(headers);
        } catch {
          continue; // not a valid header value: no client can send it
        }
        const res = await r.call(method, path, { headers });
        if (res.status < 300 || res.status >= 500) throw new Error(`${method} ${path} with ${JSON.stringify(t.slice(0, 80))} answered ${res.status}`);
        await res.body?.cancel();
      }
    }
  });
});
