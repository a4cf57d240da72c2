/**
 * The CLI client with authentication, through its real process against the real daemon:
 * `berth login` stores credentials 0600 (and nothing when the registry refuses them), a
 * file readable by others is refused, the Docker token flow (Bearer challenge → /auth/token)
 * and Basic challenges both work, and a user without the right to delete gets exit 4 from
 * `berth rm` with nothing changed; the admin commands need an admin.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDaemon, type Daemon } from "../helpers/daemon";
import { writeHtpasswd, basic } from "../helpers/auth";
import { berth, shown } from "../helpers/cli";
import { makePki } from "../helpers/pki";

const ACCESS = `
[[access]]
repos = ["team/**"]
users = { ci = ["pull", "push", "delete"], viewer = ["pull"] }
`;

let work: string;
let tokens: Daemon;
let basicOnly: Daemon;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "berth-cli-auth-"));
  const htpasswd = await writeHtpasswd(work, { root: "root-pw", ci: "ci-pw", viewer: "viewer-pw" });
  const auth = `[auth]\nhtpasswd = "${htpasswd}"\nadmins = ["root"]\n`;
  [tokens, basicOnly] = await Promise.all([startDaemon({ extra: `${auth}[auth.token]\nenabled = true\n${ACCESS}` }), startDaemon({ extra: `${auth}${ACCESS}` })]);
});
afterAll(async () => {
  await Promise.all([tokens?.[Symbol.asyncDispose](), basicOnly?.[Symbol.asyncDispose]()]);
  rmSync(work, { recursive: true, force: true });
});

/** A fresh credentials home. */
function home(): string {
  return mkdtempSync(join(work, "home-"));
}

const credentials = (h: string) => join(h, "berth", "credentials.json");

/** Tags of team/app as the daemon's admin sees them. */
async function tagsOf(d: Daemon): Promise<string[]> {
  const res = await fetch(`${d.url}/v2/team/app/tags/list`, { headers: basic("root", "root-pw") });
  if (res.status === 401) {
    const token = (await (await fetch(`${d.url}/auth/token?service=${encodeURIComponent(new URL(d.url).host)}&scope=repository:team/app:pull`, { headers: basic("root", "root-pw") })).json()) as { token?: string; access_token?: string };
    return ((await (await fetch(`${d.url}/v2/team/app/tags/list`, { headers: { Authorization: `Bearer ${token.token ?? token.access_token}` } })).json()) as { tags: string[] }).tags;
  }
  return ((await res.json()) as { tags: string[] }).tags;
}

describe.each([
  ["token service", () => tokens],
  ["Basic only", () => basicOnly],
])("with %s", (_name, daemonOf) => {
  test("login: refused credentials are not stored (exit 4); good ones are, 0600 in a 0700 directory", async () => {
    const d = daemonOf();
    const h = home();
    const bad = await berth(h, ["login", d.url, "--user", "viewer", "--password-stdin"], "wrong\n");
    expect(bad.code, shown(bad)).toBe(4);
    expect(existsSync(credentials(h))).toBe(false);
    const good = await berth(h, ["login", d.url, "--alias", "edge", "--user", "viewer", "--password-stdin"], "viewer-pw\n");
    expect(good.code, shown(good)).toBe(0);
    expect(statSync(credentials(h)).mode & 0o777).toBe(0o600);
    expect(statSync(join(h, "berth")).mode & 0o777).toBe(0o700);
    const file = JSON.parse(readFileSync(credentials(h), "utf8"));
    expect(file).toEqual({ default: "edge", registries: { edge: { url: d.url, username: "viewer", password: "viewer-pw" } } });
  });

  test("a user who may pull but not delete: rm exits 4 and the tag stays; the pusher's rm works", async () => {
    const d = daemonOf();
    const ci = home();
    expect((await berth(ci, ["login", d.url, "--user", "ci", "--password-stdin"], "ci-pw")).code).toBe(0);
    // the default alias is used without --registry
    const push = await berth(ci, ["bench", "--repo", "team/app", "--count", "2", "--size", "1KiB", "--seed", "3", "--json"]);
    expect(push.code, shown(push)).toBe(0);
    expect(JSON.parse(push.stdout).results[0].ops[0]).toMatchObject({ op: "push", count: 2, errors: 0 });
    const viewer = home();
    expect((await berth(viewer, ["login", d.url, "--user", "viewer", "--password-stdin"], "viewer-pw")).code).toBe(0);
    const images = await berth(viewer, ["images", "team/app", "--json"]);
    expect(images.code, shown(images)).toBe(0);
    expect(JSON.parse(images.stdout).images.map((i: { tag: string }) => i.tag).sort()).toEqual(["bench-3-0", "bench-3-1"]);
    const denied = await berth(viewer, ["rm", "team/app:bench-3-0", "--yes"]);
    expect(denied.code, shown(denied)).toBe(4);
    expect((await tagsOf(d)).sort()).toEqual(["bench-3-0", "bench-3-1"]);
    // not an admin: the admin commands are denied too
    expect((await berth(viewer, ["status"])).code).toBe(4);
    expect((await berth(viewer, ["gc", "--registry", d.url, "--dry-run"])).code).toBe(4);
    // the task API is the admin API's: nothing of it for a non-admin or for nobody
    expect((await fetch(`${d.url}/api/v1/tasks`, { headers: basic("viewer", "viewer-pw") })).status).toBe(403);
    expect((await fetch(`${d.url}/api/v1/tasks`)).status).toBe(401);
    expect((await fetch(`${d.url}/api/v1/storage/scrub?async=true`, { method: "POST", headers: basic("viewer", "viewer-pw") })).status).toBe(403);
    const removed = await berth(ci, ["rm", "team/app:bench-3-0", "--yes"]);
    expect(removed.code, shown(removed)).toBe(0);
    expect(await tagsOf(d)).toEqual(["bench-3-1"]);
  });
});

describe("API keys", () => {
  test("a key is a password with any user name: login with it, pull-scoped key cannot delete", async () => {
    const created = await fetch(`${tokens.url}/api/v1/keys`, {
      method: "POST",
      headers: { ...basic("ci", "ci-pw"), "Content-Type": "application/json" },
      body: JSON.stringify({ label: "cli", scopes: [{ repos: ["team/**"], actions: ["pull"] }] }),
    });
    expect(created.status).toBe(201);
    const { key } = (await created.json()) as { key: string };
    const h = home();
    const login = await berth(h, ["login", tokens.url, "--user", "robot", "--password-stdin"], key);
    expect(login.code, shown(login)).toBe(0);
    const push = await berth(home(), ["bench", tokens.url, "--repo", "team/keyed", "--count", "1", "--size", "1KiB", "--seed", "5"], "", {});
    expect(push.code).toBe(4); // anonymous: no push
    const ci = home();
    expect((await berth(ci, ["login", tokens.url, "--user", "ci", "--password-stdin"], "ci-pw")).code).toBe(0);
    expect((await berth(ci, ["bench", "--repo", "team/keyed", "--count", "1", "--size", "1KiB", "--seed", "5"])).code).toBe(0);
    const images = await berth(h, ["images", "team/keyed", "--json"]);
    expect(images.code, shown(images)).toBe(0);
    expect(JSON.parse(images.stdout).images.map((i: { tag: string }) => i.tag)).toEqual(["bench-5-0"]);
    const rm = await berth(h, ["rm", "team/keyed:bench-5-0", "--yes"]);
    expect(rm.code, shown(rm)).toBe(4);
  });
});

describe("berth keys on the stored login", () => {
  test("--registry ALIAS (or the default) takes the URL, user and password from berth login; --url still needs --user", async () => {
    const h = home();
    expect((await berth(h, ["login", tokens.url, "--alias", "tok", "--user", "ci", "--password-stdin"], "ci-pw")).code).toBe(0);
    const created = await berth(h, ["keys", "create", "--registry", "tok", "--label", "from-login", "--json"]);
    expect(created.code, shown(created)).toBe(0);
    const { id, key } = JSON.parse(created.stdout) as { id: string; key: string };
    // the key is ci's: it pulls what ci may pull
    expect((await fetch(`${tokens.url}/v2/_catalog`, { headers: basic("any", key) })).status).toBe(200);
    const listed = await berth(h, ["keys", "list", "--json"]);
    expect(listed.code, shown(listed)).toBe(0);
    expect((JSON.parse(listed.stdout) as { keys: { id: string; owner: string; label: string }[] }).keys.find((k) => k.id === id)).toMatchObject({ owner: "ci", label: "from-login" });
    const revoked = await berth(h, ["keys", "revoke", "--registry", "tok", id]);
    expect(revoked.code, shown(revoked)).toBe(0);
    expect((await fetch(`${tokens.url}/v2/_catalog`, { headers: basic("any", key) })).status).toBe(401);
    // the old flags: --url with --user and the password on stdin
    const old = await berth(home(), ["keys", "list", "--url", tokens.url, "--user", "root", "--password-stdin", "--json"], "root-pw");
    expect(old.code, shown(old)).toBe(0);
    expect(JSON.parse(old.stdout).keys.some((k: { id: string }) => k.id === id)).toBe(false);
    const noUser = await berth(home(), ["keys", "list", "--url", tokens.url]);
    expect(noUser.code).toBe(2);
    expect(noUser.stderr).toContain("--user is required with --url");
    // nothing stored and nothing named: a usage error
    const nothing = await berth(home(), ["keys", "list"]);
    expect(nothing.code, shown(nothing)).toBe(2);
    expect(nothing.stderr).toContain("no registry given");
  });
});

describe("credentials file", () => {
  test("a file readable by others is refused; logout removes the alias; anonymous is denied", async () => {
    const h = home();
    expect((await berth(h, ["login", tokens.url, "--alias", "adm", "--user", "root", "--password-stdin"], "root-pw")).code).toBe(0);
    const status = await berth(h, ["status", "--json"]);
    expect(status.code, shown(status)).toBe(0);
    expect(JSON.parse(status.stdout).info.ready).toBe(true);
    chmodSync(credentials(h), 0o644);
    const refused = await berth(h, ["repos"]);
    expect(refused.code, shown(refused)).toBe(1);
    expect(refused.stderr).toContain("readable by others");
    chmodSync(credentials(h), 0o600);
    const out = await berth(h, ["logout", "adm"]);
    expect(out.code, shown(out)).toBe(0);
    expect(JSON.parse(readFileSync(credentials(h), "utf8"))).toEqual({ registries: {} });
    expect((await berth(h, ["logout", "adm"])).code).toBe(3);
    // no credentials at all
    const anonymous = await berth(h, ["repos", "-r", tokens.url]);
    expect(anonymous.code, shown(anonymous)).toBe(4);
  });
});

describe("TLS with a custom CA", () => {
  test("--ca at login is stored and used; without it the registry is unreachable (exit 5)", async () => {
    using pki = makePki();
    await using d = await startDaemon({ http: `tls_cert = "${pki.server.cert}"\ntls_key = "${pki.server.key}"` });
    const url = `https://127.0.0.1:${d.port}`;
    const h = home();
    const untrusted = await berth(h, ["repos", "-r", url]);
    expect(untrusted.code, shown(untrusted)).toBe(5);
    expect(untrusted.stderr).toContain(`cannot reach ${url}`);
    const login = await berth(h, ["login", url, "--alias", "tls", "--user", "any", "--password-stdin", "--ca", pki.ca], "x");
    expect(login.code, shown(login)).toBe(0);
    expect(JSON.parse(readFileSync(credentials(h), "utf8")).registries.tls.ca).toBe(pki.ca);
    const repos = await berth(h, ["repos", "--json"]);
    expect(repos.code, shown(repos)).toBe(0);
    expect(JSON.parse(repos.stdout)).toEqual({ repositories: [] });
    // --ca on the command line works without a login
    expect((await berth(home(), ["repos", "-r", url, "--ca", pki.ca])).code).toBe(0);
  });
});
