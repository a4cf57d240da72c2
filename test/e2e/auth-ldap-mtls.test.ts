/**
 * LDAP users and client certificates on the real daemon (issue 10), over HTTPS with
 * `[http] tls_client_ca`: a real slapd (StartTLS with the test CA) behind `[auth.ldap]`,
 * group-based `[[access]]` rules, skopeo / podman / curl logging in as LDAP users, devices
 * pulling with certificates made by openssl (curl --cert, skopeo --cert-dir), a foreign-CA
 * certificate being no identity, and the LDAP server going away: 503 for LDAP logins while
 * certificate and cached requests go on.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Fixtures, Podman, Skopeo, buildFixtures, makeTemp, run } from "../helpers/clients";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { type CertFiles, makePki, type Pki } from "../helpers/pki";
import { SERVICE_DN, SERVICE_PASSWORD, SUFFIX, type Slapd, startSlapd } from "../helpers/slapd";

setDefaultTimeout(60_000);

let work: string;
let pki: Pki;
let slapd: Slapd;
let daemon: Daemon;
let skopeo: Skopeo;
let fx: Fixtures;
let host: string;
let device: CertFiles;
let foreign: CertFiles;
/** A cert dir with the CA only (server verification), and one with the device's certificate too. */
let caDir: string;
let deviceDir: string;

beforeAll(async () => {
  work = makeTemp("berth-e2e-aldap-");
  pki = makePki();
  device = pki.client("device", { subject: "/O=fleet/OU=devices/CN=camera-7" });
  foreign = pki.client("foreign", { subject: "/OU=devices/CN=camera-7", foreign: true });
  slapd = await startSlapd(
    [
      { uid: "alice", password: "alice-pw", groups: ["ci"] },
      { uid: "vera", password: "vera-pw", groups: ["viewers"] },
      { uid: "nobody", password: "nobody-pw" },
    ],
    { ca: pki.ca, ...pki.server },
  );
  const bindPw = join(work, "bind.pw");
  writeFileSync(bindPw, `${SERVICE_PASSWORD}\n`, { mode: 0o600 });
  caDir = join(work, "certs-ca");
  deviceDir = join(work, "certs-device");
  mkdirSync(caDir);
  mkdirSync(deviceDir);
  copyFileSync(pki.ca, join(caDir, "ca.crt"));
  copyFileSync(pki.ca, join(deviceDir, "ca.crt"));
  copyFileSync(device.cert, join(deviceDir, "client.cert"));
  copyFileSync(device.key, join(deviceDir, "client.key"));
  skopeo = new Skopeo();
  [fx, daemon] = await Promise.all([
    buildFixtures(join(work, "fixtures")),
    startDaemon({
      http: `tls_cert = "${pki.server.cert}"\ntls_key = "${pki.server.key}"\ntls_client_ca = "${pki.ca}"`,
      extra: `
[auth.ldap]
url = "${slapd.startTlsUrl}"
start_tls = true
ca_file = "${pki.ca}"
bind_dn = "${SERVICE_DN}"
bind_password_file = "${bindPw}"
base_dn = "ou=people,${SUFFIX}"
user_filter = "(&(objectClass=inetOrgPerson)(uid={user}))"
timeout = "1s"
[auth.mtls]
identity = "cn"
groups = "ou"
[[access]]
repos = ["**"]
groups = { ci = ["pull", "push", "delete"], viewers = ["pull"], devices = ["pull"] }
# wrong passwords and an LDAP outage on purpose, all from 127.0.0.1; the lockout has its own test
[limits]
login_failures = 0
login_failures_per_user = 0
`,
    }),
  ]);
  host = `127.0.0.1:${daemon.port}`;
}, 60_000);

afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
  await slapd?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  pki?.[Symbol.dispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** curl over HTTPS verified with the test CA; returns the status code and headers. */
async function curl(path: string, args: string[] = []): Promise<{ status: number; headers: string }> {
  const r = await run(["curl", "-sS", "-o", "/dev/null", "-D", "-", "-w", "%{http_code}", "--max-time", "20", "--cacert", pki.ca, ...args, `https://${host}${path}`]);
  const status = Number(r.stdout.slice(-3));
  return { status, headers: r.stdout.slice(0, -3).toLowerCase() };
}
const certArgs = (c: CertFiles) => ["--cert", c.cert, "--key", c.key];
const MANIFEST = ["-H", "Accept: application/vnd.oci.image.manifest.v1+json"];

describe("LDAP users and client certificates on the real daemon", () => {
  test("skopeo pushes as an LDAP user in a group that may push; a viewer may pull but not push", async () => {
    await skopeo.ok(["copy", "-q", "--dest-cert-dir", caDir, "--dest-creds", "alice:alice-pw", `oci:${fx.single}:v1`, `docker://${host}/fleet/app:v1`]);
    const inspect = await skopeo.run(["inspect", "--raw", "--cert-dir", caDir, "--creds", "vera:vera-pw", `docker://${host}/fleet/app:v1`]);
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).toContain("schemaVersion");
    const push = await skopeo.run(["copy", "-q", "--dest-cert-dir", caDir, "--dest-creds", "vera:vera-pw", `oci:${fx.single}:v1`, `docker://${host}/fleet/app:v2`]);
    expect(push.code).not.toBe(0);
    // a user in no group gets nothing; a wrong password is 401
    expect((await curl("/v2/fleet/app/manifests/v1", [...MANIFEST, "-u", "nobody:nobody-pw"])).status).toBe(403);
    expect((await curl("/v2/fleet/app/manifests/v1", [...MANIFEST, "-u", "alice:wrong"])).status).toBe(401);
    expect((await curl("/v2/fleet/app/manifests/v1", [...MANIFEST, "-u", "alice:alice-pw"])).status).toBe(200);
  });

  test("podman login as an LDAP user succeeds, with a wrong password fails", async () => {
    using podman = new Podman([]);
    const auth = join(podman.dir, "auth.json");
    const ok = await podman.run(["login", "--authfile", auth, "--cert-dir", caDir, "-u", "alice", "-p", "alice-pw", host]);
    expect(ok.stdout + ok.stderr).toContain("Login Succeeded");
    const bad = await podman.run(["login", "--authfile", auth, "--cert-dir", caDir, "-u", "alice", "-p", "nope", host]);
    expect(bad.code).not.toBe(0);
  });

  test("a device certificate pulls without a password; no or a foreign certificate is anonymous", async () => {
    expect((await curl("/v2/fleet/app/manifests/v1", [...MANIFEST, ...certArgs(device)])).status).toBe(200);
    expect((await curl("/v2/fleet/app/manifests/v1", MANIFEST)).status).toBe(401);
    expect((await curl("/v2/fleet/app/manifests/v1", [...MANIFEST, ...certArgs(foreign)])).status).toBe(401);
    // devices may pull, not push
    expect((await curl("/v2/fleet/app/blobs/uploads/", ["-X", "POST", ...certArgs(device)])).status).toBe(403);
    const r = await skopeo.run(["inspect", "--raw", "--cert-dir", deviceDir, `docker://${host}/fleet/app:v1`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("schemaVersion");
  });

  test("with the LDAP server gone, LDAP logins get 503 while certificates and cached logins go on", async () => {
    // alice's login is cached from the tests above; vera's password "other" never succeeded
    await slapd.stop();
    const down = await curl("/v2/fleet/app/manifests/v1", [...MANIFEST, "-u", "vera:other"]);
    expect(down.status).toBe(503);
    expect(down.headers).toContain("retry-after:");
    expect((await curl("/v2/fleet/app/manifests/v1", [...MANIFEST, "-u", "alice:alice-pw"])).status).toBe(200);
    expect((await curl("/v2/fleet/app/manifests/v1", [...MANIFEST, ...certArgs(device)])).status).toBe(200);
    expect(daemon.logs()).toContain("LDAP check failed");
  });
});
