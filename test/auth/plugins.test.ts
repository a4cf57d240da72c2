/**
 * The plug-in points other parts build on (auth/hooks.ts, auth/setup.ts), exercised with
 * stand-ins: a TokenVerifier (Bearer challenges with the scope, a token's limits, a 401
 * that asks for a wider token), the token endpoint mounted in the front, a client
 * certificate hook, an AuthEvents observer (login ok/failed, denied, changes, a lockout
 * gate answering 429), an extra password source on the chain, and a source that is down
 * (503, failing closed).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AuthSetup, setupAuth } from "../../daemon/auth/setup";
import type { AuthEvents } from "../../daemon/auth/hooks";
import type { Principal } from "../../daemon/auth/identity";
import { createApp } from "../../daemon/http/app";
import { silentLogger } from "../../daemon/log";
import { type TestRegistry, createTestRegistry, imageManifest, pushImage, sha256 } from "../helpers/registry";
import { basic, configOf, writeHtpasswd } from "../helpers/auth";

let dir: string;
let auth: AuthSetup;
let r: TestRegistry;
const events: string[] = [];
let locked = false;

const TOKENS: Record<string, Principal> = {
  "pull-team": { name: "ci", groups: [], source: "token", limits: [{ repos: ["team/app"], actions: ["pull"] }] },
  "push-team": { name: "ci", groups: [], source: "token", limits: [{ repos: ["team/app"], actions: ["pull", "push"] }] },
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "berth-plugins-"));
  const root = join(dir, "root");
  await using seed = await createTestRegistry({ root });
  await pushImage(seed, "team/app", "v1", "team");
  await pushImage(seed, "secret/app", "v1", "secret");
  const htpasswd = await writeHtpasswd(dir, { ci: "ci-pw" });
  auth = setupAuth(configOf(`
[auth]
htpasswd = "${htpasswd}"
[[access]]
repos = ["**"]
users = { ci = ["pull", "push", "delete"], device = ["pull"], robot = ["pull"] }
[[access]]
repos = ["secret/**"]
`), silentLogger, undefined)!;
  const observer: AuthEvents = {
    gate: (user) => (locked && user === "ci" ? 30 : undefined),
    loginOk: (p) => void events.push(`ok ${p.name} ${p.source}`),
    loginFailed: (user, reason) => void events.push(`failed ${user ?? "-"} ${reason}`),
    denied: (p, repo, action) => void events.push(`denied ${p?.name ?? "anonymous"} ${repo} ${action}`),
    changed: (p, action, repo, ref) => void events.push(`changed ${p?.name} ${action} ${repo} ${ref}`),
  };
  auth.plug({
    tokens: {
      verify: (token) => (TOKENS[token] ? { kind: "ok", principal: TOKENS[token]! } : { kind: "denied", reason: "bad signature" }),
      challenge: (_req, scope) => `Bearer realm="http://registry.test/auth/token",service="berth"${scope ? `,scope="${scope}"` : ""}`,
    },
    clientCert: {
      identify: (ctx) => (ctx.req.headers.get("x-test-cert") === "device-7" ? { kind: "ok", principal: { name: "device", groups: [], source: "mtls" } } : undefined),
    },
    events: observer,
    tokenEndpoint: (req, principal, grant) => Response.json({ user: principal?.name ?? null, team: grant(principal, "team/app"), secret: grant(principal, "secret/app") }),
  });
  auth.chain.register({ name: "apikey", verify: async (user, password) => (user === "robot" && password === "key-123" ? { kind: "ok", principal: { name: "robot", groups: [], source: "apikey", keyId: "k1" } } : { kind: "unknown" }) });
  r = await createTestRegistry({ root, auth });
});
afterAll(async () => {
  await r[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

describe("a token verifier", () => {
  test("401s carry a Bearer challenge with the scope the request needs", async () => {
    const base = await r.call("GET", "/v2/");
    expect(base.headers.get("www-authenticate")).toBe('Bearer realm="http://registry.test/auth/token",service="berth"');
    const pull = await r.call("GET", "/v2/team/app/manifests/v1");
    expect(pull.status).toBe(401);
    expect(pull.headers.get("www-authenticate")).toBe('Bearer realm="http://registry.test/auth/token",service="berth",scope="repository:team/app:pull"');
    const push = await r.call("POST", "/v2/team/app/blobs/uploads/");
    expect(push.headers.get("www-authenticate")).toContain('scope="repository:team/app:pull,push"');
    const del = await r.call("DELETE", `/v2/team/app/manifests/${sha256("x")}`);
    expect(del.headers.get("www-authenticate")).toContain('scope="repository:team/app:delete"');
  });
  test("a token's access claims limit it; a token short of a right gets 401 so the client fetches a wider one", async () => {
    expect((await r.call("GET", "/v2/team/app/manifests/v1", { headers: bearer("pull-team") })).status).toBe(200);
    const push = await r.call("POST", "/v2/team/app/blobs/uploads/", { headers: bearer("pull-team") });
    expect(push.status).toBe(401);
    expect(push.headers.get("www-authenticate")).toContain('scope="repository:team/app:pull,push"');
    expect((await r.call("POST", "/v2/team/app/blobs/uploads/", { headers: bearer("push-team") })).status).toBe(202);
    // ci may push team/app by policy, but this token is for team/app only
    expect((await r.call("GET", "/v2/secret/app/manifests/v1", { headers: bearer("push-team") })).status).toBe(401);
    expect((await r.call("GET", "/v2/", { headers: bearer("forged") })).status).toBe(401);
  });
  test("the token endpoint is mounted in the front, behind authentication, with the policy's grant", async () => {
    const app = createApp({ v2: r.handle, ready: () => true, info: () => ({}), auth: auth.front });
    const call = async (headers: Record<string, string>) => app(new Request("http://registry.test/auth/token?service=berth&scope=repository:team/app:pull", { headers }));
    const ci = await call(basic("ci", "ci-pw"));
    expect(await ci.json()).toEqual({ user: "ci", team: ["pull", "push", "delete"], secret: [] });
    const anon = await call({});
    expect(await anon.json()).toEqual({ user: null, team: [], secret: [] });
    const wrong = await call(basic("ci", "nope"));
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("www-authenticate")).toStartWith("Bearer ");
  });
});

test("admin API routes opened to any identity (identityRoutes) admit non-admins there only", async () => {
  const app = createApp({ v2: r.handle, ready: () => true, info: () => ({}), scheduler: () => ({ queue: [] }), auth: { ...auth.front, identityRoutes: ["/api/v1/scheduler"] } });
  const call = (path: string, headers: Record<string, string>) => app(new Request(`http://registry.test${path}`, { headers }));
  const open = await call("/api/v1/scheduler", basic("ci", "ci-pw"));
  expect(open.status).toBe(200);
  expect(await open.json()).toEqual({ queue: [] });
  expect((await call("/api/v1/scheduler", {})).status).toBe(401);
  expect((await call("/api/v1/sync", basic("ci", "ci-pw"))).status).toBe(403);
});

describe("a client certificate hook", () => {
  test("a request without Authorization gets the certificate's identity", async () => {
    expect((await r.call("GET", "/v2/team/app/manifests/v1", { headers: { "x-test-cert": "device-7" } })).status).toBe(200);
    expect((await r.call("GET", "/v2/team/app/manifests/v1", { headers: { "x-test-cert": "other" } })).status).toBe(401);
  });
});

describe("password sources and observers", () => {
  test("a registered source (API keys) is asked after htpasswd", async () => {
    expect((await r.call("GET", "/v2/team/app/manifests/v1", { headers: basic("robot", "key-123") })).status).toBe(200);
    expect((await r.call("GET", "/v2/team/app/manifests/v1", { headers: basic("robot", "key-999") })).status).toBe(401);
  });
  test("the observer sees logins, refusals and changes; its gate answers 429 before any password is checked", async () => {
    events.length = 0;
    await r.call("GET", "/v2/team/app/tags/list", { headers: basic("ci", "ci-pw") });
    await r.call("GET", "/v2/team/app/tags/list", { headers: basic("ci", "wrong") });
    await r.call("GET", "/v2/secret/app/tags/list", { headers: basic("ci", "ci-pw") });
    const digest = sha256("blob by ci");
    await r.call("POST", `/v2/team/app/blobs/uploads/?digest=${digest}`, { headers: basic("ci", "ci-pw"), body: "blob by ci" });
    expect(events).toEqual([
      "ok ci htpasswd",
      'failed ci wrong password for user "ci"',
      "ok ci htpasswd",
      "denied ci secret/app pull",
      "ok ci htpasswd",
    ]);
    locked = true;
    try {
      const res = await r.call("GET", "/v2/team/app/tags/list", { headers: basic("ci", "ci-pw") });
      expect(res.status).toBe(429);
      expect(res.headers.get("retry-after")).toBe("30");
      expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("TOOMANYREQUESTS");
    } finally {
      locked = false;
    }
  });
  test("the observer is told of each change: a manifest pushed, a tag and a manifest deleted, a blob deleted", async () => {
    const ci = basic("ci", "ci-pw");
    const config = JSON.stringify({ architecture: "amd64", os: "linux", seed: "changes" });
    const layer = "layer bytes of changes";
    for (const body of [config, layer]) {
      expect((await r.call("POST", `/v2/team/app/blobs/uploads/?digest=${sha256(body)}`, { headers: ci, body })).status).toBe(201);
    }
    const manifest = imageManifest(config, [layer]);
    events.length = 0;
    const put = await r.call("PUT", "/v2/team/app/manifests/changes", { headers: { ...ci, "Content-Type": "application/vnd.oci.image.manifest.v1+json" }, body: manifest });
    expect(put.status).toBe(201);
    expect((await r.call("DELETE", "/v2/team/app/manifests/changes", { headers: ci })).status).toBe(202);
    expect((await r.call("DELETE", `/v2/team/app/manifests/${sha256(manifest)}`, { headers: ci })).status).toBe(202);
    expect((await r.call("DELETE", `/v2/team/app/blobs/${sha256(layer)}`, { headers: ci })).status).toBe(202);
    expect(events.filter((e) => e.startsWith("changed "))).toEqual([
      "changed ci push team/app changes",
      "changed ci delete team/app changes",
      `changed ci delete team/app ${sha256(manifest)}`,
      `changed ci delete team/app ${sha256(layer)}`,
    ]);
  });
  test("a finished upload's owner entry is dropped, so it takes no place from live sessions in the bounded table", async () => {
    await using small = await createTestRegistry({ auth: { front: auth.front, v2: { ...auth.v2, maxOwners: 2 } } });
    const ci = basic("ci", "ci-pw");
    const start = async () => {
      const res = await small.call("POST", "/v2/team/app/blobs/uploads/", { headers: ci });
      expect(res.status).toBe(202);
      return res.headers.get("location")!;
    };
    const a = await start();
    const b = await start();
    const body = "a finished upload";
    expect((await small.call("PUT", `${b}${b.includes("?") ? "&" : "?"}digest=${sha256(body)}`, { headers: ci, body })).status).toBe(201);
    await start();
    // two live sessions fit: the first is still its owner's (had b's entry been kept, a would have been forgotten)
    expect((await small.call("GET", a, { headers: ci })).status).toBe(204);
  });
  test("a source that cannot decide fails closed with 503 and Retry-After", async () => {
    auth.chain.register({ name: "ldap", verify: async () => ({ kind: "unavailable", reason: "ldap://dir: ECONNREFUSED" }) }, true);
    const res = await r.call("GET", "/v2/team/app/tags/list", { headers: basic("ci", "ci-pw") });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("5");
    expect((await r.call("GET", "/v2/team/app/tags/list")).status).toBe(401);
  });
});
