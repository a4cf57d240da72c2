/**
 * The token service and API keys on the real daemon (`[auth] htpasswd` + `[auth.token]
 * enabled`) with real clients: skopeo --creds, podman login/push/pull, ctr --user (the
 * OAuth2 password grant), curl, and `berth keys`. A recording pass-through (test/helpers/tap.ts)
 * shows that the clients followed the Bearer challenge to /auth/token and then sent Bearer
 * tokens, not Basic, to /v2. A revoked API key, and a token obtained with it, are refused at once.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { basic, writeHtpasswd } from "../helpers/auth";
import { type Containerd, type Fixtures, Podman, Skopeo, buildFixtures, makeTemp, run, startContainerd } from "../helpers/clients";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { type Tap, startTap } from "../helpers/tap";

setDefaultTimeout(90_000);

const MAIN = resolve(import.meta.dir, "../../daemon/main.ts");
let daemon: Daemon;
let tap: Tap;
let skopeo: Skopeo;
let work: string;
let fx: Fixtures;

beforeAll(async () => {
  work = makeTemp("berth-e2e-token-");
  skopeo = new Skopeo();
  const htpasswd = await writeHtpasswd(work, { ci: "ci-secret", admin: "admin-pw", viewer: "viewer-pw" });
  const extra = `
[auth]
htpasswd = "${htpasswd}"
admins = ["admin"]
[auth.token]
enabled = true
service = "berth-test"
[[access]]
repos = ["public/**"]
anonymous = ["pull"]
users = { ci = ["pull", "push", "delete"] }
[[access]]
repos = ["**"]
users = { ci = ["pull", "push", "delete"], viewer = ["pull"] }
# wrong passwords are sent on purpose, all from 127.0.0.1; the lockout has its own test (abuse.test.ts)
[limits]
login_failures = 0
login_failures_per_user = 0
`;
  [fx, daemon] = await Promise.all([buildFixtures(join(work, "fixtures")), startDaemon({ extra })]);
  tap = startTap(daemon.url);
});

afterAll(async () => {
  tap?.[Symbol.dispose]();
  await daemon?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Requests the tap saw since `mark`. */
const since = (mark: number) => tap.seen.slice(mark);
const tokenRequests = (mark: number) => since(mark).filter((r) => r.path === "/auth/token");

async function berthKeys(args: string[], user: string, password: string) {
  const proc = Bun.spawn(["bun", MAIN, "keys", ...args, "--url", daemon.url, "--user", user, "--password-stdin"], { stdin: new TextEncoder().encode(`${password}\n`), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, code };
}

describe("Bearer flow with real clients", () => {
  test("401s carry the Bearer challenge with realm, service and scope; the key file is 0600", async () => {
    const res = await fetch(`${tap.url}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(`Bearer realm="${tap.url}/auth/token",service="berth-test"`);
    const repo = await fetch(`${tap.url}/v2/ci/app/manifests/v1`);
    expect(repo.status).toBe(401);
    expect(repo.headers.get("www-authenticate")).toContain(`,scope="repository:ci/app:pull"`);
    expect(statSync(join(daemon.root, ".berth", "token.key")).mode & 0o777).toBe(0o600);
  });

  test("skopeo --creds pushes and reads through tokens; wrong or no credentials fail", async () => {
    const mark = tap.seen.length;
    await skopeo.ok(["copy", "-q", "--dest-tls-verify=false", "--dest-creds", "ci:ci-secret", `oci:${fx.single}:v1`, `docker://${tap.host}/ci/app:v1`]);
    const asked = tokenRequests(mark);
    expect(asked.some((r) => r.user === "ci" && r.status === 200 && r.query.getAll("scope").some((s) => s.startsWith("repository:ci/app:") && s.includes("push")))).toBe(true);
    // after the token, /v2 saw Bearer only
    const v2 = since(mark).filter((r) => r.path.startsWith("/v2/ci/app/"));
    expect(v2.some((r) => r.scheme === "bearer" && r.method === "PUT")).toBe(true);
    expect(v2.every((r) => r.scheme !== "basic")).toBe(true);
    await skopeo.ok(["inspect", "--raw", "--tls-verify=false", "--creds", "ci:ci-secret", `docker://${tap.host}/ci/app:v1`]);
    expect((await skopeo.run(["inspect", "--raw", "--tls-verify=false", "--creds", "ci:nope", `docker://${tap.host}/ci/app:v1`])).code).not.toBe(0);
    expect((await skopeo.run(["inspect", "--raw", "--tls-verify=false", `docker://${tap.host}/ci/app:v1`])).code).not.toBe(0);
    // a viewer's token carries pull only: its push is refused
    expect((await skopeo.run(["copy", "-q", "--dest-tls-verify=false", "--dest-creds", "viewer:viewer-pw", `oci:${fx.single}:v1`, `docker://${tap.host}/ci/other:v1`])).code).not.toBe(0);
    // anonymous pull of a public repository, through an anonymous token
    await skopeo.ok(["copy", "-q", "--dest-tls-verify=false", "--dest-creds", "ci:ci-secret", `oci:${fx.single}:v1`, `docker://${tap.host}/public/base:v1`]);
    const anon = tap.seen.length;
    await skopeo.ok(["inspect", "--raw", "--tls-verify=false", `docker://${tap.host}/public/base:v1`]);
    expect(tokenRequests(anon).some((r) => r.user === undefined && r.status === 200)).toBe(true);
  });

  test("podman login, pull and push follow the challenge; a wrong password is refused", async () => {
    using podman = new Podman([tap.host]);
    // the auth file explicitly: each podman run is its own sandbox (a fresh XDG_RUNTIME_DIR)
    const auth = ["--authfile", join(podman.dir, "auth.json")];
    expect((await podman.run(["login", ...auth, "--tls-verify=false", "-u", "ci", "-p", "wrong", tap.host])).code).not.toBe(0);
    await podman.ok(["login", ...auth, "--tls-verify=false", "-u", "ci", "-p", "ci-secret", tap.host]);
    expect((await podman.run(["pull", "--quiet", "--tls-verify=false", `${tap.host}/ci/app:v1`])).code).not.toBe(0);
    const mark = tap.seen.length;
    await podman.ok(["pull", ...auth, "--quiet", "--tls-verify=false", `${tap.host}/ci/app:v1`]);
    await podman.ok(["tag", `${tap.host}/ci/app:v1`, `${tap.host}/ci/copied:v1`]);
    await podman.ok(["push", ...auth, "--tls-verify=false", `${tap.host}/ci/copied:v1`]);
    expect(tokenRequests(mark).some((r) => r.user === "ci" && r.status === 200)).toBe(true);
    expect(since(mark).some((r) => r.path.startsWith("/v2/ci/copied/") && r.scheme === "bearer")).toBe(true);
    const tags = await fetch(`${daemon.url}/v2/ci/copied/tags/list`, { headers: basic("ci", "ci-secret") });
    expect(((await tags.json()) as { tags: string[] }).tags).toEqual(["v1"]);
  });

  test("ctr --user pulls through the OAuth2 password grant; a wrong password is refused", async () => {
    await using ctd: Containerd = await startContainerd();
    const mark = tap.seen.length;
    await ctd.ctrOk(["images", "pull", "--plain-http", "--user", "ci:ci-secret", `${tap.host}/ci/app:v1`]);
    expect(tokenRequests(mark).some((r) => r.method === "POST" && r.status === 200)).toBe(true);
    const bad = tap.seen.length;
    expect((await ctd.ctr(["images", "pull", "--plain-http", "--user", "ci:bad", `${tap.host}/ci/app:v1`])).code).not.toBe(0);
    const refused = tokenRequests(bad);
    expect(refused.some((r) => r.method === "POST" && r.status === 401)).toBe(true);
    expect(refused.every((r) => r.status === 401)).toBe(true);
  });
});

describe("API keys with real clients", () => {
  test("berth keys create/list/revoke; the key is a Basic password and works in the token flow; revocation is immediate", async () => {
    const made = await berthKeys(["create", "--label", "runner", "--expires", "1d", "--scope", "ci/*:pull"], "ci", "ci-secret");
    expect(made.stderr).toContain("shown once");
    expect(made.code).toBe(0);
    const key = made.stdout.trim();
    expect(key).toMatch(/^berth_[0-9a-f]{16}_/);
    const id = key.slice(6, 22);
    expect(statSync(join(daemon.root, ".berth", "apikeys.json")).mode & 0o777).toBe(0o600);
    const listed = await berthKeys(["list"], "ci", "ci-secret");
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(id);
    expect(listed.stdout).toContain("ci/*:pull");
    expect(listed.stdout).not.toContain(key.slice(23));
    expect((await berthKeys(["list"], "viewer", "viewer-pw")).stdout).not.toContain(id);
    expect((await berthKeys(["list"], "admin", "admin-pw")).stdout).toContain(id);
    expect((await berthKeys(["list"], "ci", "wrong")).code).toBe(1);
    expect((await berthKeys(["revoke", id], "viewer", "viewer-pw")).code).toBe(1);

    // curl with the key as the Basic password, any user name
    const curl = (k: string, path: string) => run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", `anyone:${k}`, `${daemon.url}${path}`]);
    expect((await curl(key, "/v2/ci/app/tags/list")).stdout).toBe("200");
    // outside the key's scope (the owner could push): refused
    expect((await fetch(`${daemon.url}/v2/ci/app/blobs/uploads/`, { method: "POST", headers: basic("x", key) })).status).toBe(403);
    // a key cannot mint keys
    expect((await fetch(`${daemon.url}/api/v1/keys`, { method: "POST", headers: basic("ci", key), body: JSON.stringify({ label: "x" }) })).status).toBe(403);
    // the token flow with the key
    await skopeo.ok(["inspect", "--raw", "--tls-verify=false", "--creds", `ci:${key}`, `docker://${tap.host}/ci/app:v1`]);
    const tokenRes = await fetch(`${daemon.url}/auth/token?service=berth-test&scope=repository:ci/app:pull,push`, { headers: basic("ci", key) });
    const { token } = (await tokenRes.json()) as { token: string };
    const claims = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString());
    expect(claims.access).toEqual([{ type: "repository", name: "ci/app", actions: ["pull"] }]);
    const withToken = () => fetch(`${daemon.url}/v2/ci/app/tags/list`, { headers: { Authorization: `Bearer ${token}` } });
    expect((await withToken()).status).toBe(200);

    const revoked = await berthKeys(["revoke", id], "ci", "ci-secret");
    expect(revoked.code).toBe(0);
    expect((await curl(key, "/v2/ci/app/tags/list")).stdout).toBe("401");
    expect((await withToken()).status).toBe(401);
    expect((await skopeo.run(["inspect", "--raw", "--tls-verify=false", "--creds", `ci:${key}`, `docker://${tap.host}/ci/app:v1`])).code).not.toBe(0);
  });
});
