/**
 * The web UI's login is a session token, not a stored password (daemon/auth/uisession.ts):
 * in Debian's Chromium against the daemon with [auth] and no token service (no signing key),
 * the tab's storage holds the token and never the password or a Basic credential; an expired
 * session leads back to the login page, which says why; a session follows the same access
 * policy as the password (nothing of a forbidden repository shows), ends at logout, dies with
 * the API key it was opened with, and cannot be minted from another session or cross-site.
 * The daemon runs in this process so the sessions' clock can be moved (no waiting).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { startDaemon as startBerth } from "../../daemon/main";
import { createLogger } from "../../daemon/log";
import { basic, configOf, writeHtpasswd } from "../helpers/auth";
import { launchChromium, watchProblems } from "../helpers/browser";
import { tempDir } from "../helpers/daemon";
import { pushImage } from "./fill";

/** The page's storage, in functions run in the browser (the tests are typed without the DOM library). */
declare const sessionStorage: { length: number; key(i: number): string | null; getItem(k: string): string | null };
declare const localStorage: typeof sessionStorage;

type Berth = Awaited<ReturnType<typeof startBerth>>;
const USERS = { viewer: "viewer-secret-pw", admin: "admin-secret-pw" };
const TTL_S = 600;

describe("the web UI's session token", () => {
  const dir = tempDir("berth-ui-session-");
  let berth: Berth;
  let url: string;
  let browser: Browser & AsyncDisposable;
  let clock = Date.now();

  beforeAll(async () => {
    const htpasswd = await writeHtpasswd(dir.path, USERS);
    const config = configOf(`
[http]
address = "127.0.0.1"
port = 0
[storage]
root = "${join(dir.path, "root")}"
[auth]
htpasswd = "${htpasswd}"
admins = ["admin"]
[auth.apikeys]
enabled = true
[ui]
session_ttl = ${TTL_S}
[[access]]
repos = ["apps/**"]
users = { viewer = ["pull"] }
`);
    const log = createLogger("error", "json", () => undefined);
    berth = await startBerth(config, log, log);
    url = `http://127.0.0.1:${berth.server.port}`;
    // the sessions' clock: moved by the tests, never waited for
    berth.auth!.front.uiSessions!.now = () => clock;
    const admin = { url, headers: basic("admin", USERS.admin) };
    await pushImage(admin, "apps/web", "1.0");
    await pushImage(admin, "secret/vault", "1.0");
    browser = await launchChromium();
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await berth?.close(1000);
    dir[Symbol.dispose]();
  });

  const storage = (page: Page) =>
    page.evaluate(() => {
      const dump = (s: typeof sessionStorage) => Array.from({ length: s.length }, (_, i) => [s.key(i)!, s.getItem(s.key(i)!) ?? ""]);
      return { session: dump(sessionStorage), local: dump(localStorage) };
    });

  async function login(page: Page, user: keyof typeof USERS): Promise<void> {
    await page.goto(`${url}/#/login`);
    await page.fill("#username", user);
    await page.fill("#password", USERS[user]);
    await page.click("form.login button[type=submit]");
    await page.waitForSelector("#repo-count");
    expect(await page.textContent("#who")).toBe(user);
  }

  test("after a login the tab keeps a session token, never the password or a Basic credential; it sees what the password would", async () => {
    const page = await (await browser.newContext()).newPage();
    const problems = watchProblems(page);
    await login(page, "viewer");
    const { session, local } = await storage(page);
    const everything = JSON.stringify([session, local]);
    expect(everything).not.toContain(USERS.viewer);
    expect(everything).not.toContain(Buffer.from(`viewer:${USERS.viewer}`).toString("base64"));
    expect(everything).not.toContain("Basic ");
    expect(local).toEqual([]);
    const token = Object.fromEntries(session)["berth.session"];
    expect(token).toStartWith("berthui.");
    // the access policy is the password's: the forbidden repository is not listed, not readable
    expect(await page.$$eval("#repo-list li > a", (els) => els.map((e) => e.textContent))).toEqual(["apps/web"]);
    const bearer = { Authorization: `Bearer ${token}` };
    expect(await (await fetch(`${url}/v2/_catalog`, { headers: bearer })).json()).toEqual({ repositories: ["apps/web"] });
    expect((await fetch(`${url}/v2/secret/vault/tags/list`, { headers: bearer })).status).toBe(403);
    expect((await fetch(`${url}/api/v1/info`, { headers: bearer })).status).toBe(403);
    // a session cannot open another one
    expect((await fetch(`${url}/auth/ui/session`, { method: "POST", headers: bearer })).status).toBe(401);
    // the viewer is no admin: the UI's one question to the admin API is answered 403
    expect(problems.take().filter((p) => !/status of 403/.test(p))).toEqual([]);
    await page.context().close();
  }, 20_000);

  test("an expired session leads back to the login page, which says why; logging in again works", async () => {
    const page = await (await browser.newContext()).newPage();
    await login(page, "viewer");
    await page.click('#nav a[href="#/health"]');
    await page.waitForSelector("#nav a.here[href='#/health']");
    await page.waitForSelector("#loading", { state: "detached" });
    clock += (TTL_S + 1) * 1000;
    await page.click('#nav a[href="#/repos"]');
    await page.waitForSelector("form.login");
    expect(await page.textContent("#status")).toContain("Your session has ended");
    expect(await page.evaluate(() => sessionStorage.getItem("berth.session"))).toBeNull();
    expect(await page.$("#who")).toBeNull();
    await login(page, "viewer");
    // requests renew the session: just inside the idle time after the last one, it still works
    clock += (TTL_S - 1) * 1000;
    await page.click('#nav a[href="#/repos"]');
    await page.waitForSelector("#repo-count");
    expect(await page.textContent("#who")).toBe("viewer");
    await page.context().close();
  }, 20_000);

  test("a session opened with an API key ends when the key is revoked; logout ends a session on the server", async () => {
    const created = await fetch(`${url}/api/v1/keys`, { method: "POST", headers: { ...basic("admin", USERS.admin), "Content-Type": "application/json" }, body: JSON.stringify({ label: "ui", expires_in: 3600 }) });
    expect(created.status).toBe(201);
    const key = (await created.json()) as { key: string; id: string };
    const opened = await fetch(`${url}/auth/ui/session`, { method: "POST", headers: basic("admin", key.key) });
    expect(opened.status).toBe(201);
    const { token, user } = (await opened.json()) as { token: string; user: string };
    expect(user).toBe("admin");
    const bearer = { Authorization: `Bearer ${token}` };
    expect((await fetch(`${url}/api/v1/info`, { headers: bearer })).status).toBe(200);
    expect((await fetch(`${url}/api/v1/keys/${key.id}`, { method: "DELETE", headers: basic("admin", USERS.admin) })).status).toBe(204);
    expect((await fetch(`${url}/api/v1/info`, { headers: bearer })).status).toBe(401);

    const again = (await (await fetch(`${url}/auth/ui/session`, { method: "POST", headers: basic("admin", USERS.admin) })).json()) as { token: string };
    const other = { Authorization: `Bearer ${again.token}` };
    expect((await fetch(`${url}/v2/_catalog`, { headers: other })).status).toBe(200);
    expect((await fetch(`${url}/auth/ui/session`, { method: "DELETE", headers: other })).status).toBe(204);
    expect((await fetch(`${url}/v2/_catalog`, { headers: other })).status).toBe(401);
  });

  test("a wrong password opens nothing; a login posted from another site is refused", async () => {
    expect((await fetch(`${url}/auth/ui/session`, { method: "POST", headers: basic("viewer", "wrong") })).status).toBe(401);
    expect((await fetch(`${url}/auth/ui/session`, { method: "POST" })).status).toBe(401);
    const forged = await fetch(`${url}/auth/ui/session`, { method: "POST", headers: { ...basic("viewer", USERS.viewer), Origin: "https://evil.example", "Sec-Fetch-Site": "cross-site" } });
    expect(forged.status).toBe(403);
    expect((await fetch(`${url}/auth/ui/session`, { method: "GET", headers: basic("viewer", USERS.viewer) })).status).toBe(405);
  });
});
