/**
 * The authorization matrix (issue 10, "Proof") for credential-borne identities: Bearer tokens
 * from the built-in token service and API keys, wired as the daemon wires them (auth/setup.ts
 * plus auth/tokensetup.ts), socketless. Identities: a ci token scoped to shared/app only (the
 * "token for another repository" when used on secret/app), an expired ci token, a token
 * obtained with an API key that is then revoked, a revoked API key used as a Basic password,
 * an API key scoped to `shared/**:pull` used as Basic, and an anonymous token. Each is crossed
 * with every /v2 endpoint of test/http/auth-matrix-table.ts and both repositories; each cell
 * asserts allow (2xx) or deny (401 with the Bearer challenge for token holders and bad
 * credentials, who may fetch a better token; 403 DENIED for a known identity, here the
 * scoped key, as the core answers), and that nothing of secret/app reaches an identity that
 * may not pull it. Before revocation and expiry, each such credential is shown to work on
 * secret/app, so the deny comes from the revocation or the expiry, not from the policy.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setupAuth } from "../../daemon/auth/setup";
import { signJwt, type TokenClaims } from "../../daemon/auth/jwt";
import { type TokenAuth, setupTokenAuth } from "../../daemon/auth/tokensetup";
import { silentLogger } from "../../daemon/log";
import { basic, configOf, writeHtpasswd } from "../helpers/auth";
import { type TestRegistry, createTestRegistry, sha256 } from "../helpers/registry";
import { type Action, type Seeded, REPOS, ResponseLog, SECRET, SHARED, matrixEndpoints, seedRepositories } from "./auth-matrix-table";

const REALM = "https://reg.example/auth/token";
const SERVICE = "matrix";
const ALL: Action[] = ["pull", "push", "delete"];

/** Filled in beforeAll (tokens and keys are minted then); `deny` is the status of a refusal. */
const IDENTITIES: Record<string, { headers: Record<string, string>; deny: 401 | 403; base: 200 | 401 }> = {
  "ci token for shared/app": { headers: {}, deny: 401, base: 200 },
  "expired ci token": { headers: {}, deny: 401, base: 401 },
  "token of a revoked API key": { headers: {}, deny: 401, base: 401 },
  "revoked API key as Basic": { headers: {}, deny: 401, base: 401 },
  "API key shared/**:pull as Basic": { headers: {}, deny: 403, base: 200 },
  "anonymous token": { headers: {}, deny: 401, base: 401 },
};

/** What each identity may do, written out by hand. */
const GRANTS: Record<string, Record<string, Action[]>> = {
  "ci token for shared/app": { [SHARED]: ALL, [SECRET]: [] },
  "expired ci token": { [SHARED]: [], [SECRET]: [] },
  "token of a revoked API key": { [SHARED]: [], [SECRET]: [] },
  "revoked API key as Basic": { [SHARED]: [], [SECRET]: [] },
  "API key shared/**:pull as Basic": { [SHARED]: ["pull"], [SECRET]: [] },
  "anonymous token": { [SHARED]: ["pull"], [SECRET]: [] },
};

const ADMIN = basic("admin", "admin-pw");
let dir: string;
let r: TestRegistry;
let tokens: TokenAuth;
let seeded: Seeded;
const images: Seeded["images"] = {};

/** A token from the service's endpoint (standalone: it checks the Basic credentials with the chain). */
async function tokenFor(scopes: string[], headers: Record<string, string> = {}): Promise<string> {
  const q = scopes.map((s) => `scope=${encodeURIComponent(s)}`).join("&");
  const res = await tokens.token!.handle(new Request(`http://x/auth/token?service=${SERVICE}&${q}`, { headers }));
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });
const everything = REPOS.map((repo) => `repository:${repo}:pull,push,delete`);
async function works(headers: Record<string, string>): Promise<void> {
  const res = await r.call("GET", `/v2/${SECRET}/manifests/classified-tag`, { headers });
  expect(res.status).toBe(200);
  await res.body?.cancel();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "berth-matrix-tokens-"));
  const root = join(dir, "root");
  seeded = await seedRepositories(root);
  Object.assign(images, seeded.images);
  const htpasswd = await writeHtpasswd(dir, { ci: "ci-pw", admin: "admin-pw" });
  const config = configOf(`
[auth]
htpasswd = "${htpasswd}"
admins = ["admin"]
[auth.token]
enabled = true
service = "${SERVICE}"
realm = "${REALM}"
[auth.apikeys]
enabled = true
[[access]]
repos = ["**"]
anonymous = ["pull"]
users = { ci = ["pull", "push", "delete"] }
[[access]]
repos = ["secret/**"]
users = { ci = ["pull", "push", "delete"] }
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

  // ci asks for everything on shared/app only
  IDENTITIES["ci token for shared/app"]!.headers = bearer(await tokenFor([`repository:${SHARED}:pull,push,delete`], basic("ci", "ci-pw")));

  // the same claims as a working full ci token, signed by the service's key with a past expiry
  const full = await tokenFor(everything, basic("ci", "ci-pw"));
  await works(bearer(full));
  const claims = JSON.parse(Buffer.from(full.split(".")[1]!, "base64url").toString()) as TokenClaims;
  expect(claims.access.map((e) => e.name).sort()).toEqual([...REPOS].sort());
  const now = Math.floor(Date.now() / 1000);
  IDENTITIES["expired ci token"]!.headers = bearer(await signJwt(tokens.token!.key, { ...claims, exp: now - 3600, nbf: now - 7200, iat: now - 7200 }));

  // a token obtained with an API key (used once, so the verifier remembers it), then the key revoked
  const k1 = tokens.apiKeys!.create({ owner: "ci", label: "matrix token key" });
  const viaKey = bearer(await tokenFor(everything, basic("ci", k1.key)));
  await works(viaKey);
  expect(tokens.apiKeys!.revoke(k1.info.id)).toBe(true);
  IDENTITIES["token of a revoked API key"]!.headers = viaKey;

  // an API key used as the Basic password (once, so the credential cache holds it), then revoked
  const k2 = tokens.apiKeys!.create({ owner: "ci", label: "matrix basic key" });
  await works(basic("ci", k2.key));
  expect(tokens.apiKeys!.revoke(k2.info.id)).toBe(true);
  IDENTITIES["revoked API key as Basic"]!.headers = basic("ci", k2.key);

  const k3 = tokens.apiKeys!.create({ owner: "ci", label: "matrix scoped key", scopes: [{ repos: ["shared/**"], actions: ["pull"] }] });
  IDENTITIES["API key shared/**:pull as Basic"]!.headers = basic("ci", k3.key);

  IDENTITIES["anonymous token"]!.headers = bearer(await tokenFor(everything));
});
afterAll(async () => {
  tokens?.close();
  await r?.[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

const ENDPOINTS = matrixEndpoints(() => r, images, ADMIN);
const log = new ResponseLog();

/**
 * Checks a 401's Bearer challenge (this service's realm and name; the scope, when present,
 * names the repository the caller asked for) and records the response. The challenge echoes
 * the name the caller sent, as the token spec requires, whether or not it exists; it is
 * checked here and left out of the no-leak check, which covers everything else.
 */
async function record(identity: string, label: string, res: Response, repo?: string): Promise<void> {
  const challenge = res.headers.get("www-authenticate");
  const headers = new Headers(res.headers);
  if (res.status === 401) {
    const scope = repo === undefined ? "" : `(,scope="repository:${repo.replace("/", "\\/")}:[a-z,*]+")?`;
    expect(challenge ?? "").toMatch(new RegExp(`^Bearer realm="${REALM.replace(/[./]/g, "\\$&")}",service="${SERVICE}"${scope}(,error="[a-z_]+")?$`));
    headers.delete("www-authenticate");
  } else {
    expect(challenge).toBeNull();
  }
  await log.record(identity, label, new Response(res.body, { status: res.status, headers }));
}

describe.each(Object.keys(IDENTITIES))("%s", (identity) => {
  const who = () => IDENTITIES[identity]!.headers;
  for (const repo of REPOS) {
    for (const ep of ENDPOINTS) {
      const allowed = GRANTS[identity]![repo]!.includes(ep.action);
      test(`${ep.name} on ${repo}: ${allowed ? "allowed" : "denied"}`, async () => {
        const res = await ep.call(repo, who(), allowed);
        const ok = allowed ? res.status >= 200 && res.status < 300 : res.status === IDENTITIES[identity]!.deny;
        if (!ok) throw new Error(`${identity} ${ep.name} on ${repo}: got ${res.status} ${await res.clone().text()}`);
        await record(identity, `${ep.name} on ${repo}`, res, repo);
      });
    }
  }

  test("GET /v2/", async () => {
    const res = await r.call("GET", "/v2/", { headers: who() });
    expect(res.status).toBe(IDENTITIES[identity]!.base);
    await record(identity, "GET /v2/", res);
  });

  test("the catalog lists exactly the repositories the identity may pull", async () => {
    const res = await r.call("GET", "/v2/_catalog", { headers: who() });
    const pullable = REPOS.filter((repo) => GRANTS[identity]![repo]!.includes("pull")).sort();
    if (pullable.length === 0) {
      expect(res.status).toBe(401);
      return void (await record(identity, "catalog", res));
    }
    expect(res.status).toBe(200);
    expect(((await res.clone().json()) as { repositories: string[] }).repositories).toEqual(pullable);
    await record(identity, "catalog", res);
  });

  test("a mount from the secret repository into shared/app", async () => {
    const digest = sha256(images[SECRET]!.layer);
    const res = await r.call("POST", `/v2/${SHARED}/blobs/uploads/?mount=${digest}&from=${SECRET}`, { headers: who() });
    const canPush = GRANTS[identity]![SHARED]!.includes("push");
    // no identity here may pull the source: pushers get a plain session (202), as for a missing blob
    expect(GRANTS[identity]![SECRET]).toEqual([]);
    expect(res.status).toBe(canPush ? 202 : IDENTITIES[identity]!.deny);
    await record(identity, "mount", res, SHARED);
    if (canPush) {
      const head = await r.call("HEAD", `/v2/${SHARED}/blobs/${digest}`, { headers: who() });
      expect(head.status).toBe(404);
      await record(identity, "HEAD of the unmounted blob", head, SHARED);
    }
  });

  test("no name, tag, digest or byte of the secret repository reaches the identity", () => {
    expect(log.count(identity)).toBeGreaterThanOrEqual(ENDPOINTS.length * 2 + 3);
    log.expectNoLeak(identity, seeded.secretMarkers);
  });
});
