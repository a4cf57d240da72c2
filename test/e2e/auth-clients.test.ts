/**
 * Real clients against the real daemon with authentication on (issue 10): an htpasswd file
 * made by `htpasswd -B`, and skopeo (`--creds`), podman (`login` with a wrong password must
 * fail, then push and pull), containerd's ctr (`--user`) and curl, each allowed where the
 * policy grants and refused where it does not.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { type Containerd, type Fixtures, Podman, Skopeo, buildFixtures, describeRun, layoutTag, makeTemp, run, runOk, startContainerd } from "../helpers/clients";

setDefaultTimeout(90_000);

let daemon: Daemon;
let skopeo: Skopeo;
let podman: Podman;
let ctd: Containerd;
let work: string;
let fx: Fixtures;

const USERS = { ci: "ci-Secret-1", viewer: "viewer-Secret-2", admin: "admin-Secret-3" };

beforeAll(async () => {
  work = makeTemp("berth-e2e-auth-");
  const htpasswd = join(work, "htpasswd");
  let first = true;
  for (const [user, password] of Object.entries(USERS)) {
    await runOk(["htpasswd", "-B", "-b", ...(first ? ["-c"] : []), htpasswd, user, password]);
    first = false;
  }
  chmodSync(htpasswd, 0o600);
  skopeo = new Skopeo();
  [fx, daemon, ctd] = await Promise.all([
    buildFixtures(join(work, "fixtures")),
    startDaemon({
      extra: `
[auth]
htpasswd = "${htpasswd}"
admins = ["admin"]
[[access]]
repos = ["**"]
users = { ci = ["pull", "push", "delete"], viewer = ["pull"] }
[[access]]
repos = ["public/**"]
anonymous = ["pull"]
users = { ci = ["*"] }
# these tests send wrong passwords on purpose, all from 127.0.0.1; the lockout has its own test (abuse.test.ts)
[limits]
login_failures = 0
login_failures_per_user = 0
`,
    }),
    startContainerd(),
  ]);
  podman = new Podman([daemon.host]);
}, 90_000);

afterAll(async () => {
  await ctd?.[Symbol.asyncDispose]();
  await daemon?.[Symbol.asyncDispose]();
  podman?.[Symbol.dispose]();
  skopeo?.[Symbol.dispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

const creds = (user: keyof typeof USERS, password = USERS[user]) => `${user}:${password}`;

function copy(dest: string, flags: string[]) {
  return skopeo.run(["copy", "-q", "--dest-tls-verify=false", ...flags, `oci:${fx.single}:v1`, `docker://${daemon.host}/${dest}`]);
}

describe("skopeo --creds", () => {
  test("ci pushes; viewer, anonymous and a wrong password may not", async () => {
    const ok = await copy("team/app:v1", ["--dest-creds", creds("ci")]);
    expect(ok.code, describeRun(ok)).toBe(0);
    for (const flags of [["--dest-creds", creds("viewer")], [], ["--dest-creds", creds("ci", "wrong")]]) {
      const refused = await copy("team/app:v2", flags);
      expect(refused.code, describeRun(refused)).not.toBe(0);
      expect(refused.stderr).toMatch(/unauthorized|denied|authentication required/i);
    }
    expect((await skopeo.run(["inspect", "--raw", "--tls-verify=false", "--creds", creds("ci"), `docker://${daemon.host}/team/app:v2`])).code).not.toBe(0);
  });
  test("viewer pulls with --creds; anonymous may pull only public/**", async () => {
    await copy("public/app:v1", ["--dest-creds", creds("ci")]);
    const digest = layoutTag(fx.single, "v1").digest;
    const viewer = await skopeo.run(["inspect", "--raw", "--tls-verify=false", "--creds", creds("viewer"), `docker://${daemon.host}/team/app:v1`]);
    expect(viewer.code, describeRun(viewer)).toBe(0);
    const into = join(work, "pulled");
    const pulled = await skopeo.run(["copy", "-q", "--src-tls-verify=false", "--src-creds", creds("viewer"), `docker://${daemon.host}/team/app:v1`, `oci:${into}:v1`]);
    expect(pulled.code, describeRun(pulled)).toBe(0);
    expect(layoutTag(into, "v1").digest).toBe(digest);
    expect((await skopeo.run(["inspect", "--raw", "--tls-verify=false", `docker://${daemon.host}/public/app:v1`])).code).toBe(0);
    const anon = await skopeo.run(["inspect", "--raw", "--tls-verify=false", "--no-creds", `docker://${daemon.host}/team/app:v1`]);
    expect(anon.code).not.toBe(0);
    const tags = await skopeo.run(["list-tags", "--tls-verify=false", "--creds", creds("viewer"), `docker://${daemon.host}/team/app`]);
    expect(JSON.parse(tags.stdout).Tags).toEqual(["v1"]);
  });
});

describe("podman", () => {
  const authfile = () => join(podman.dir, "auth.json");
  test("login with a wrong password fails; with the right one succeeds", async () => {
    const wrong = await podman.run(["login", "--authfile", authfile(), "--tls-verify=false", "-u", "ci", "-p", "wrong", daemon.host]);
    expect(wrong.code, describeRun(wrong)).not.toBe(0);
    expect(wrong.stdout + wrong.stderr).not.toContain("Login Succeeded");
    const unknown = await podman.run(["login", "--authfile", authfile(), "--tls-verify=false", "-u", "mallory", "-p", "x", daemon.host]);
    expect(unknown.code).not.toBe(0);
    const right = await podman.run(["login", "--authfile", authfile(), "--tls-verify=false", "-u", "ci", "-p", USERS.ci, daemon.host]);
    expect(right.code, describeRun(right)).toBe(0);
    expect(right.stdout).toContain("Login Succeeded");
  });
  test("after login, push and pull; without credentials, the private repository is refused", async () => {
    await podman.ok(["import", "--quiet", fx.rootfs, `${daemon.host}/team/podman:v1`]);
    const pushed = await podman.run(["push", "--authfile", authfile(), "--tls-verify=false", `${daemon.host}/team/podman:v1`]);
    expect(pushed.code, describeRun(pushed)).toBe(0);
    await podman.ok(["rmi", `${daemon.host}/team/podman:v1`]);
    const pulled = await podman.run(["pull", "--authfile", authfile(), "--tls-verify=false", `${daemon.host}/team/podman:v1`]);
    expect(pulled.code, describeRun(pulled)).toBe(0);
    await podman.ok(["rmi", `${daemon.host}/team/podman:v1`]);
    const empty = join(podman.dir, "none.json");
    writeFileSync(empty, "{}\n");
    const anon = await podman.run(["pull", "--authfile", empty, "--tls-verify=false", `${daemon.host}/team/podman:v1`]);
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).toMatch(/unauthorized|authentication required/i);
    await podman.ok(["import", "--quiet", fx.rootfs, `${daemon.host}/team/nope:v1`]);
    const viewer = await podman.run(["push", "--tls-verify=false", "--creds", creds("viewer"), `${daemon.host}/team/nope:v1`]);
    expect(viewer.code).not.toBe(0);
    expect(viewer.stderr).toMatch(/denied/i);
  });
});

describe("ctr --user", () => {
  test("pull with credentials; a wrong password and no credentials fail; push needs push", async () => {
    const ref = `${daemon.host}/team/app:v1`;
    const ok = await ctd.ctr(["images", "pull", "--plain-http", "--user", creds("viewer"), ref]);
    expect(ok.code, describeRun(ok)).toBe(0);
    const wrong = await ctd.ctr(["images", "pull", "--plain-http", "--user", creds("viewer", "nope"), `${daemon.host}/team/app:v1`]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/401|unauthorized/i);
    await ctd.ctrOk(["images", "rm", ref]);
    const anon = await ctd.ctr(["images", "pull", "--plain-http", ref]);
    expect(anon.code).not.toBe(0);
    await ctd.ctrOk(["images", "pull", "--plain-http", "--user", creds("viewer"), ref]);
    const denied = await ctd.ctr(["images", "push", "--plain-http", "--user", creds("viewer"), `${daemon.host}/team/ctr:v1`, ref]);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/403|denied/i);
    await ctd.ctrOk(["images", "tag", ref, `${daemon.host}/team/ctr:v1`]);
    const pushed = await ctd.ctr(["images", "push", "--plain-http", "--user", creds("ci"), `${daemon.host}/team/ctr:v1`]);
    expect(pushed.code, describeRun(pushed)).toBe(0);
  });
});

describe("curl", () => {
  test("-u gets in; no credentials get 401 with a Basic challenge; the catalog is filtered", async () => {
    const anon = await run(["curl", "-s", "-i", `${daemon.url}/v2/`]);
    expect(anon.stdout).toMatch(/^HTTP\/1\.1 401/);
    expect(anon.stdout).toMatch(/www-authenticate: Basic realm="berth"/i);
    const ci = await run(["curl", "-s", "-f", "-u", creds("ci"), `${daemon.url}/v2/_catalog`]);
    expect(ci.code, describeRun(ci)).toBe(0);
    expect(JSON.parse(ci.stdout).repositories).toContain("team/app");
    const pub = await run(["curl", "-s", "-f", `${daemon.url}/v2/_catalog`]);
    expect(JSON.parse(pub.stdout).repositories).toEqual(["public/app"]);
    const wrong = await run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", creds("ci", "bad"), `${daemon.url}/v2/_catalog`]);
    expect(wrong.stdout).toBe("401");
    const del = await run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", "-u", creds("viewer"), `${daemon.url}/v2/team/app/manifests/v1`]);
    expect(del.stdout).toBe("403");
  });
});
