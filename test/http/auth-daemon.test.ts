/**
 * Authentication on the real daemon (issue 10): an htpasswd file made by `htpasswd -B`,
 * the admin API and /metrics governed by identities (the admin token still an admin),
 * start-up refusals of an unusable htpasswd file naming the key and the fix, and policy
 * reloads on SIGHUP (an invalid file keeps the running policy).
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startDaemon, tempDir } from "../helpers/daemon";
import { run, runOk, waitFor } from "../helpers/clients";
import { basic } from "../helpers/auth";

const MAIN = join(import.meta.dir, "../../daemon/main.ts");

/** An htpasswd file made by the real tool, 0600. */
async function htpasswdFile(dir: string, users: Record<string, string>): Promise<string> {
  const path = join(dir, "htpasswd");
  let first = true;
  for (const [user, password] of Object.entries(users)) {
    await runOk(["htpasswd", "-B", "-b", "-C", "4", ...(first ? ["-c"] : []), path, user, password]);
    first = false;
  }
  chmodSync(path, 0o600);
  return path;
}

const policy = (htpasswd: string, viewerRepos = "**") => `
[auth]
htpasswd = "${htpasswd}"
admins = ["admin"]
metrics = ["prom"]
[[access]]
repos = ["${viewerRepos}"]
users = { viewer = ["pull"], ci = ["pull", "push"] }
`;

describe("the real daemon with htpasswd", () => {
  test("admin API, /metrics and /v2 follow the identities; the admin token stays an admin", async () => {
    using dir = tempDir();
    const htpasswd = await htpasswdFile(dir.path, { admin: "admin-pw", viewer: "viewer-pw", prom: "prom-pw", ci: "ci-pw" });
    const token = "edge-0123456789abcdef";
    writeFileSync(join(dir.path, "token"), `${token}\n`, { mode: 0o600 });
    await using berth = await startDaemon({ http: `admin_token_file = "${join(dir.path, "token")}"`, extra: policy(htpasswd) });
    const get = (path: string, headers: Record<string, string> = {}, method = "GET") => fetch(`${berth.url}${path}`, { method, headers });
    // /v2
    const anon = await get("/v2/");
    expect(anon.status).toBe(401);
    expect(anon.headers.get("www-authenticate")).toBe('Basic realm="berth", charset="UTF-8"');
    expect((await get("/v2/", basic("viewer", "viewer-pw"))).status).toBe(200);
    expect((await get("/v2/", basic("viewer", "wrong"))).status).toBe(401);
    expect((await get("/v2/x/blobs/uploads/", basic("viewer", "viewer-pw"), "POST")).status).toBe(403);
    expect((await get("/v2/x/blobs/uploads/", basic("ci", "ci-pw"), "POST")).status).toBe(202);
    // the admin API: admins, and the admin token
    expect((await get("/api/v1/info")).status).toBe(401);
    expect((await get("/api/v1/info")).headers.get("www-authenticate")).toContain("Basic");
    expect((await get("/api/v1/info", basic("viewer", "viewer-pw"))).status).toBe(403);
    expect((await get("/api/v1/info", basic("admin", "wrong"))).status).toBe(401);
    expect((await get("/api/v1/info", basic("admin", "admin-pw"))).status).toBe(200);
    expect((await get("/api/v1/info", { Authorization: `Bearer ${token}` })).status).toBe(200);
    expect((await get("/api/v1/storage/gc?dry_run=true", basic("admin", "admin-pw"), "POST")).status).toBe(200);
    expect((await get("/api/v1/storage/gc?dry_run=true", basic("ci", "ci-pw"), "POST")).status).toBe(403);
    // /metrics: the metrics reader and admins
    expect((await get("/metrics")).status).toBe(401);
    expect((await get("/metrics", basic("viewer", "viewer-pw"))).status).toBe(403);
    const metrics = await get("/metrics", basic("prom", "prom-pw"));
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain("# TYPE");
    expect((await get("/metrics", basic("admin", "admin-pw"))).status).toBe(200);
    // probes stay open
    expect((await get("/livez")).status).toBe(200);
    expect((await get("/readyz")).status).toBe(200);
  });

  test("SIGHUP reloads the policy; an invalid file keeps the running one", async () => {
    using dir = tempDir();
    const htpasswd = await htpasswdFile(dir.path, { viewer: "viewer-pw", ci: "ci-pw" });
    await using berth = await startDaemon({ extra: policy(htpasswd) });
    const viewerTags = () => fetch(`${berth.url}/v2/a/b/tags/list`, { headers: basic("viewer", "viewer-pw") }).then((r) => r.status);
    expect(await viewerTags()).toBe(404); // may pull, the repository does not exist
    const base = `[http]\naddress = "127.0.0.1"\nport = 0\n[storage]\nroot = "${berth.root}"\n`;
    writeFileSync(berth.configPath, base + policy(htpasswd, "other/**"));
    berth.proc.kill("SIGHUP");
    await waitFor("the new policy", async () => (await viewerTags()) === 403);
    writeFileSync(berth.configPath, `${base}[[access]]\nrepos = ["**"]\nanonymous = ["fly"]\n`);
    berth.proc.kill("SIGHUP");
    await waitFor("the reload failure", () => berth.logs().includes("reload failed; keeping the running configuration"));
    expect(await viewerTags()).toBe(403);
    expect(berth.logs()).toContain('access[0].anonymous: \\"fly\\" is not an action');
  });

  test("an unusable htpasswd file stops the start, naming the key and the fix", async () => {
    using dir = tempDir();
    const md5 = join(dir.path, "md5");
    await runOk(["htpasswd", "-m", "-b", "-c", md5, "bob", "pw"]);
    chmodSync(md5, 0o600);
    const open = await htpasswdFile(dir.path, { alice: "pw" });
    chmodSync(open, 0o644);
    for (const [file, why] of [[md5, `line 1: user "bob" has an MD5 ($apr1$) hash; berth accepts only bcrypt: run htpasswd -B "${md5}" bob`], [open, `run chmod 600 "${open}"`], [join(dir.path, "absent"), "ENOENT"]] as const) {
      const configPath = join(dir.path, "berth.toml");
      writeFileSync(configPath, `[http]\naddress = "127.0.0.1"\nport = 0\n[storage]\nroot = "${join(dir.path, "root")}"\n${policy(file)}`);
      const r = await run([process.execPath, MAIN, "serve", "--config", configPath], { timeoutMs: 30_000 });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("auth.htpasswd");
      expect(r.stderr).toContain(why);
    }
  });

  test("without [auth], a non-loopback address is warned about and /v2 stays open", async () => {
    using dir = tempDir();
    await using berth = await startDaemon({ config: `[http]\naddress = "0.0.0.0"\nport = 0\n[storage]\nroot = "${join(dir.path, "root")}"\n` });
    expect(berth.logs()).toContain("authentication is off and berth listens on a non-loopback address");
    expect((await fetch(`http://127.0.0.1:${berth.port}/v2/`)).status).toBe(200);
  });
});
