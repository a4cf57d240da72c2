/**
 * The token service and API keys with real clients (skopeo --creds, podman login/push/pull,
 * ctr --user, curl-style fetch, `berth keys`), through test/helpers/tokengate.ts: berth's
 * /auth/token, Bearer challenge, TokenVerifier, ApiKeyStore and /api/v1/keys in front of a
 * real berth daemon. Clients must follow the challenge to the token endpoint and present the
 * token; a revoked API key (and a token obtained with it) is refused at once.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join, resolve } from "node:path";
import type { Action, Principal } from "../../daemon/auth/identity";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { type Containerd, type Fixtures, Podman, Skopeo, buildFixtures, makeTemp, run, startContainerd } from "../helpers/clients";
import { type TokenGate, startTokenGate } from "../helpers/tokengate";
import { rmSync } from "node:fs";

setDefaultTimeout(90_000);

const MAIN = resolve(import.meta.dir, "../../daemon/main.ts");
let daemon: Daemon;
let gate: TokenGate;
let skopeo: Skopeo;
let work: string;
let fx: Fixtures;

/** ci may do everything; anyone may pull public/**. */
function authorize(p: Principal | undefined, repo: string, action: Action): boolean {
  if (repo.startsWith("public/") && action === "pull") return true;
  return p?.name === "ci";
}

beforeAll(async () => {
  work = makeTemp("berth-e2e-token-");
  skopeo = new Skopeo();
  [fx, daemon] = await Promise.all([buildFixtures(join(work, "fixtures")), startDaemon()]);
  gate = await startTokenGate({ upstream: daemon.url, keyStorePath: join(work, "apikeys.json"), user: "ci", password: "ci-secret", authorize });
});

afterAll(async () => {
  gate?.[Symbol.dispose]();
  await daemon?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

const basic = (u: string, p: string) => ({ Authorization: `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}` });

async function berthKeys(args: string[], password: string) {
  const proc = Bun.spawn(["bun", MAIN, "keys", ...args, "--url", gate.url, "--user", "ci", "--password-stdin"], { stdin: new TextEncoder().encode(`${password}\n`), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, code };
}

describe("Bearer flow with real clients", () => {
  test("an anonymous /v2/ gets the Bearer challenge naming the realm and service", async () => {
    const res = await fetch(`${gate.url}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(`Bearer realm="${gate.url}/auth/token",service="berth-test"`);
  });

  test("skopeo --creds pushes and inspects through tokens; wrong creds fail", async () => {
    const before = gate.tokenRequests.length;
    await skopeo.ok(["copy", "-q", "--dest-tls-verify=false", "--dest-creds", "ci:ci-secret", `oci:${fx.single}:v1`, `docker://${gate.host}/ci/app:v1`]);
    const asked = gate.tokenRequests.slice(before);
    expect(asked.some((r) => r.user === "ci" && r.status === 200 && r.scopes.some((s) => s.startsWith("repository:ci/app:") && s.includes("push")))).toBe(true);
    await skopeo.ok(["inspect", "--raw", "--tls-verify=false", "--creds", "ci:ci-secret", `docker://${gate.host}/ci/app:v1`]);
    const wrong = await skopeo.run(["inspect", "--raw", "--tls-verify=false", "--creds", "ci:nope", `docker://${gate.host}/ci/app:v1`]);
    expect(wrong.code).not.toBe(0);
    const anon = await skopeo.run(["inspect", "--raw", "--tls-verify=false", `docker://${gate.host}/ci/app:v1`]);
    expect(anon.code).not.toBe(0);
    // anonymous pull of a public repository: an anonymous token
    await skopeo.ok(["copy", "-q", "--dest-tls-verify=false", "--dest-creds", "ci:ci-secret", `oci:${fx.single}:v1`, `docker://${gate.host}/public/base:v1`]);
    await skopeo.ok(["inspect", "--raw", "--tls-verify=false", `docker://${gate.host}/public/base:v1`]);
    expect(gate.tokenRequests.some((r) => r.user === undefined && r.status === 200 && r.scopes.includes("repository:public/base:pull"))).toBe(true);
  });

  test("podman login, pull and push follow the challenge; a wrong password is refused", async () => {
    using podman = new Podman([gate.host]);
    // the auth file explicitly: each podman run is its own sandbox (a fresh XDG_RUNTIME_DIR)
    const auth = ["--authfile", join(podman.dir, "auth.json")];
    const bad = await podman.run(["login", ...auth, "--tls-verify=false", "-u", "ci", "-p", "wrong", gate.host]);
    expect(bad.code).not.toBe(0);
    await podman.ok(["login", ...auth, "--tls-verify=false", "-u", "ci", "-p", "ci-secret", gate.host]);
    const anonymous = await podman.run(["pull", "--quiet", "--tls-verify=false", `${gate.host}/ci/app:v1`]);
    expect(anonymous.code).not.toBe(0);
    await podman.ok(["pull", ...auth, "--quiet", "--tls-verify=false", `${gate.host}/ci/app:v1`]);
    await podman.ok(["tag", `${gate.host}/ci/app:v1`, `${gate.host}/ci/copied:v1`]);
    await podman.ok(["push", ...auth, "--tls-verify=false", `${gate.host}/ci/copied:v1`]);
    const tags = await fetch(`${gate.url}/v2/ci/copied/tags/list`, { headers: basic("ci", "ci-secret") });
    expect(((await tags.json()) as { tags: string[] }).tags).toEqual(["v1"]);
  });

  test("ctr --user pulls through a token (OAuth2 password grant)", async () => {
    await using ctd: Containerd = await startContainerd();
    const before = gate.tokenRequests.length;
    await ctd.ctrOk(["images", "pull", "--plain-http", "--user", "ci:ci-secret", `${gate.host}/ci/app:v1`]);
    const ctrAsked = gate.tokenRequests.slice(before);
    // containerd uses the OAuth2 password grant (POST) when it has credentials
    expect(ctrAsked.some((r) => r.method === "POST" && r.status === 200)).toBe(true);
    const mark = gate.tokenRequests.length;
    const denied = await ctd.ctr(["images", "pull", "--plain-http", "--user", "ci:bad", `${gate.host}/ci/app:v1`]);
    expect(denied.code).not.toBe(0);
    // refused on the POST grant, and again on the GET containerd falls back to
    const deniedAsked = gate.tokenRequests.slice(mark);
    expect(deniedAsked.some((r) => r.method === "POST" && r.status === 401)).toBe(true);
    expect(deniedAsked.every((r) => r.status === 401)).toBe(true);
  });
});

describe("API keys with real clients", () => {
  test("berth keys create/list/revoke; the key works as a Basic password and in the token flow; revocation is immediate", async () => {
    const made = await berthKeys(["create", "--label", "runner", "--expires", "1d", "--scope", "ci/*:pull"], "ci-secret");
    expect(made.code).toBe(0);
    const key = made.stdout.trim();
    expect(key).toMatch(/^berth_[0-9a-f]{16}_/);
    expect(made.stderr).toContain("shown once");
    const id = key.slice(6, 22);
    const listed = await berthKeys(["list"], "ci-secret");
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(id);
    expect(listed.stdout).toContain("ci/*:pull");
    expect(listed.stdout).not.toContain(key.slice(23));
    expect((await berthKeys(["list"], "wrong")).code).toBe(1);

    // curl-style Basic with the key as password, any user name
    const tags = await fetch(`${gate.url}/v2/ci/app/tags/list`, { headers: basic("whoever", key) });
    expect(tags.status).toBe(200);
    // outside its scope: refused even though the owner could
    expect((await fetch(`${gate.url}/v2/ci/app/blobs/uploads/`, { method: "POST", headers: basic("x", key) })).status).toBe(403);
    // token flow with the key
    await skopeo.ok(["inspect", "--raw", "--tls-verify=false", "--creds", `ci:${key}`, `docker://${gate.host}/ci/app:v1`]);
    const tokenRes = await fetch(`${gate.url}/auth/token?service=berth-test&scope=repository:ci/app:pull,push`, { headers: basic("ci", key) });
    const { token } = (await tokenRes.json()) as { token: string };
    const withToken = () => fetch(`${gate.url}/v2/ci/app/tags/list`, { headers: { Authorization: `Bearer ${token}` } });
    expect((await withToken()).status).toBe(200);

    const revoked = await berthKeys(["revoke", id], "ci-secret");
    expect(revoked.code).toBe(0);
    expect((await fetch(`${gate.url}/v2/ci/app/tags/list`, { headers: basic("whoever", key) })).status).toBe(401);
    expect((await withToken()).status).toBe(401);
    const r = await run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", `x:${key}`, `${gate.url}/v2/ci/app/tags/list`]);
    expect(r.stdout).toBe("401");
  });
});
