/**
 * The web UI in Debian's Chromium (issue 12) against the real daemon with [auth] and the
 * token service, its store filled through the real /v2 API: navigation and search, the
 * repository and image pages, login and logout, a user without delete rights (no button,
 * and a forced call refused), a delete with confirmation by a user the policy lets delete,
 * the appliance pages and GC with confirmation, API keys, and every page on a phone-sized
 * viewport without JavaScript errors. One browser for the file; screenshots in
 * .tmp/ui-screenshots/.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Browser, Page } from "playwright-core";
import { basic, writeHtpasswd } from "../helpers/auth";
import { launchChromium, screenshot, watchProblems, type PageProblems } from "../helpers/browser";
import { type Daemon, startDaemon, tempDir } from "../helpers/daemon";
import { fillStore, pushSharedBlob } from "./fill";
import { profileFor } from "../../daemon/board/profiles";
import { identifyBoard } from "../../daemon/board/identify";

/** The page's document, in the functions run in the browser (the tests are typed without the DOM library). */
declare const document: { querySelector(s: string): Element | null; querySelectorAll(s: string): Element[]; documentElement: { scrollWidth: number } };
interface Element {
  tagName: string;
  id: string;
  className: string;
  textContent: string | null;
  hasAttribute(name: string): boolean;
  closest(s: string): Element | null;
  getBoundingClientRect(): { right: number };
}

const USERS = { admin: "admin-pw", dev: "dev-pw", viewer: "viewer-pw" };

let dir: ReturnType<typeof tempDir>;
let berth: Daemon;
let browser: Browser & AsyncDisposable;
/** Bytes of one blob pushed into three repositories: dedupe stores it once, saving two copies. */
let sharedSize = 0;

beforeAll(async () => {
  dir = tempDir("berth-ui-");
  const htpasswd = await writeHtpasswd(dir.path, USERS);
  berth = await startDaemon({
    extra: `[auth]\nhtpasswd = "${htpasswd}"\nadmins = ["admin"]\n[auth.token]\nenabled = true\n` +
      `[[access]]\nrepos = ["apps/**"]\nusers = { viewer = ["pull"], dev = ["pull", "push", "delete"] }\n` +
      `[[access]]\nrepos = ["tools/**"]\nusers = { viewer = ["pull"] }\n`,
  });
  await fillStore({ url: berth.url, headers: basic("admin", USERS.admin) });
  sharedSize = await pushSharedBlob({ url: berth.url, headers: basic("admin", USERS.admin) }, ["apps/web", "tools/cli", "secret/vault"], "a layer three repositories share ".repeat(300));
  browser = await launchChromium();
}, 30_000);

afterAll(async () => {
  await browser?.close();
  await berth?.[Symbol.asyncDispose]();
  dir?.[Symbol.dispose]();
});

/** A fresh page (its own context: its own sessionStorage) with its problems recorded. */
async function open(viewport = { width: 1200, height: 900 }): Promise<{ page: Page; problems: PageProblems }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  return { page, problems: watchProblems(page) };
}

async function login(page: Page, user: keyof typeof USERS): Promise<void> {
  await page.goto(`${berth.url}/#/login`);
  await page.fill("#username", user);
  await page.fill("#password", USERS[user]);
  await page.click("form.login button[type=submit]");
  await page.waitForSelector("#repo-count");
  expect(await page.textContent("#who")).toBe(user);
}

const repoNames = (page: Page) => page.$$eval("#repo-list li > a", (els) => els.map((e) => e.textContent));

async function tagsOf(repo: string): Promise<string[]> {
  const res = await fetch(`${berth.url}/v2/${repo}/tags/list`, { headers: basic("admin", USERS.admin) });
  return ((await res.json()) as { tags: string[] | null }).tags ?? [];
}

/** A byte count as the UI prints it (ui/src/dom.ts bytes). */
function bytesText(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** Tag -> size in bytes, as the search API reports them (an admin asks). */
async function searchSizes(repo: string): Promise<Record<string, number>> {
  const query = `{ ExpandedRepoInfo(repo: "${repo}") { Images { Tag Size } } }`;
  const res = await fetch(`${berth.url}/v2/_zot/ext/search`, { method: "POST", headers: { ...basic("admin", USERS.admin), "Content-Type": "application/json" }, body: JSON.stringify({ query }) });
  const body = (await res.json()) as { data: { ExpandedRepoInfo: { Images: { Tag: string; Size: string }[] } } };
  return Object.fromEntries(body.data.ExpandedRepoInfo.Images.map((i) => [i.Tag, Number(i.Size)]));
}

describe("the web UI in Chromium", () => {
  test("the UI's files are public, the data behind them is not; the admin API still refuses other sites' pages", async () => {
    const page = await fetch(`${berth.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("set-cookie")).toBeNull();
    expect(await page.text()).toContain('<meta name="berth-auth" content="on">');
    expect((await fetch(`${berth.url}/v2/_catalog`)).status).toBe(401);
    expect((await fetch(`${berth.url}/api/v1/storage`)).status).toBe(401);
    const gc = (headers: Record<string, string>) => fetch(`${berth.url}/api/v1/storage/gc?dry_run=true`, { method: "POST", headers: { ...basic("admin", USERS.admin), ...headers } });
    // a page of another site, even with an admin's credential (a browser-cached one), is refused
    const forgeries: Record<string, string>[] = [{ Origin: "http://evil.example" }, { "Sec-Fetch-Site": "cross-site" }];
    for (const forged of forgeries) {
      const res = await gc(forged);
      expect(res.status).toBe(403);
      expect(await res.json()).toEqual({ error: "admin changes from a web page of another site are refused" });
    }
    // what the UI sends (same origin, its own Authorization header) passes
    expect((await gc({ Origin: berth.url, "Sec-Fetch-Site": "same-origin" })).status).toBe(200);
  });

  test("anonymous: the page loads, the catalog is refused, a login is offered", async () => {
    const { page, problems } = await open();
    await page.goto(`${berth.url}/`);
    await page.waitForSelector("#page-error");
    expect(await page.textContent("#page-error")).toContain("UNAUTHORIZED");
    expect(await page.isVisible("#login")).toBe(true);
    await screenshot(page, "anonymous");
    // the one refusal the page asked for, reported by the browser as a failed load
    expect(problems.take().filter((p) => !/status of 401/.test(p))).toEqual([]);
    await page.context().close();
  }, 20_000);

  test("a viewer: search, filters, repository and image pages; no delete button, a forced delete refused; logout", async () => {
    const { page, problems } = await open();
    await login(page, "viewer");
    // the policy's view: secret/vault is not listed
    expect((await repoNames(page)).sort()).toEqual(["apps/db", "apps/web", "tools/cli"]);
    // not an admin: the appliance pages (the admin API's) are not offered
    await page.waitForFunction(() => document.querySelector("#admin-links")?.hasAttribute("hidden") === true);
    expect(await page.isVisible("#nav >> text=Storage")).toBe(false);
    await page.fill("#search", "web");
    expect(await repoNames(page)).toEqual(["apps/web"]);
    await page.fill("#search", "");
    await page.selectOption("#namespace", "tools");
    expect(await repoNames(page)).toEqual(["tools/cli"]);
    await page.selectOption("#namespace", "*");
    // the platform filter (from search's summaries): apps/db has only an amd64 image
    await page.selectOption("#platform", "linux/arm64");
    expect((await repoNames(page)).sort()).toEqual(["apps/web", "tools/cli"]);
    await page.selectOption("#platform", "*");
    expect(await page.textContent("#repo-list")).toContain("vulnerabilities: not scanned");
    await screenshot(page, "repositories");

    await page.click("text=apps/web");
    await page.waitForSelector("#tags");
    const rows = await page.$$eval("#tags tbody tr", (trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)));
    const byTag = Object.fromEntries(rows.map((r) => [r[0], r]));
    expect(Object.keys(byTag).sort()).toEqual(["1.0", "latest", "latest-amd64", "latest-arm64"]);
    // from search (zot's Platform has no variant), not from manifest GETs that would count as pulls
    expect(byTag.latest![2]).toBe("linux/amd64, linux/arm64");
    // sizes as search reports them (an index: its platforms' images, not its own few hundred bytes)
    const sizes = await searchSizes("apps/web");
    expect(sizes.latest!).toBeGreaterThan(sizes["latest-amd64"]! + sizes["latest-arm64"]!);
    expect(byTag.latest![3]).toBe(`${(sizes.latest! / 1024).toFixed(1)} KiB`);
    expect(byTag["1.0"]![3]).toBe(`${(sizes["1.0"]! / 1024).toFixed(1)} KiB`);
    // pushed and pulled times, pulls and vulnerabilities come from search (nothing is scanned here)
    expect(byTag["1.0"]![5]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d$/);
    expect(byTag["1.0"]!.slice(7, 9)).toEqual(["0", "not scanned"]);
    expect(byTag["1.0"]![2]).toBe("linux/amd64");
    expect(byTag["1.0"]![9]).toContain("signed");
    expect(byTag["1.0"]![9]).toContain("SBOM");
    expect(byTag["latest-amd64"]![9]).toContain("unsigned");
    expect(await page.$$eval(".pull code", (cs) => cs.map((c) => c.textContent))).toEqual([
      `podman pull --tls-verify=false ${berth.host}/apps/web:latest`,
      `docker pull ${berth.host}/apps/web:latest`,
      `ctr images pull --plain-http ${berth.host}/apps/web:latest`,
      `skopeo copy --src-tls-verify=false docker://${berth.host}/apps/web:latest oci:web`,
    ]);
    expect(await page.$$("[data-delete]")).toHaveLength(0);
    await screenshot(page, "repository");

    await page.click("#tags >> text=1.0");
    await page.waitForSelector("#layers");
    expect(await page.$$("#layers tbody tr")).toHaveLength(2);
    expect(await page.textContent("#labels")).toContain("apps/web test image");
    expect(await page.textContent("#history")).toContain("ADD rootfs.tar /");
    expect(await page.textContent("#referrers")).toContain("application/spdx+json");
    expect(await page.textContent("#vulns")).toBe("not scanned");
    expect(await page.$$("[data-delete]")).toHaveLength(0);
    await screenshot(page, "image");

    // the button is absent; a call forced from the page with the viewer's session is refused
    const token = await page.evaluate(() => sessionStorage.getItem("berth.session"));
    expect(token).toStartWith("berthui.");
    const forced = await page.evaluate(async (t) => {
      const res = await fetch("/v2/apps/web/manifests/1.0", { method: "DELETE", headers: { Authorization: `Bearer ${t}` } });
      return res.status;
    }, token);
    expect(forced).toBe(403);
    expect(await tagsOf("apps/web")).toContain("1.0");
    expect(problems.take().filter((p) => !/status of 403/.test(p))).toEqual([]);

    await page.click("#logout");
    await page.waitForSelector("#login");
    expect(await page.evaluate(() => sessionStorage.getItem("berth.session"))).toBeNull();
    // logging out ended the session on the server too
    expect((await fetch(`${berth.url}/v2/_catalog`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(401);
    expect(problems.take().filter((p) => !/status of 401/.test(p))).toEqual([]);
    await page.context().close();
  }, 20_000);

  test("a user allowed to delete in apps/: delete asks first, cancel keeps the tag, confirm deletes it", async () => {
    const { page, problems } = await open();
    await login(page, "dev");
    expect((await repoNames(page)).sort()).toEqual(["apps/db", "apps/web"]);
    await page.goto(`${berth.url}/#/repo/apps/db`);
    await page.waitForSelector('[data-delete="2"]');
    await page.click('[data-delete="2"]');
    await page.waitForSelector("dialog[open]");
    await screenshot(page, "delete-confirmation");
    await page.click("dialog[open] >> text=Cancel");
    expect(await tagsOf("apps/db")).toEqual(["2"]);
    await page.click('[data-delete="2"]');
    await page.click("dialog[open] [data-confirm]");
    await page.waitForSelector("#status.ok");
    expect(await page.textContent("#status")).toBe("Deleted apps/db:2.");
    expect(await page.$$('#tags tr[data-tag="2"]')).toHaveLength(0);
    expect(await tagsOf("apps/db")).toEqual([]);
    // no admin: the appliance pages say so rather than break
    await page.goto(`${berth.url}/#/storage`);
    await page.waitForSelector("#page-error");
    expect(await page.textContent("#page-error")).toContain('"dev" is not an admin');
    expect(problems.take().filter((p) => !/status of 403/.test(p))).toEqual([]);
    await page.context().close();
  }, 20_000);

  test("an admin: storage with GC after confirmation, sync, tasks, health; API keys created and revoked", async () => {
    const { page, problems } = await open();
    await login(page, "admin");
    // search lists repositories with images, as zot's does: apps/db, emptied above, is gone
    expect((await repoNames(page)).sort()).toEqual(["apps/web", "secret/vault", "tools/cli"]);
    await page.click("#nav >> text=Storage");
    await page.waitForSelector('[data-action="gc"]');
    // the shared blob is stored once for three repositories: two copies saved
    expect(await page.textContent('[data-card="Dedupe savings"] .big')).toBe(bytesText(2 * sharedSize));
    await page.click('[data-action="gc"]');
    await page.click("dialog[open] [data-confirm]");
    await page.waitForSelector("#status.ok");
    expect(await page.textContent("#status")).toContain("Run GC: done.");
    // followed as a task (?async=true), shown with its progress bar until it ended
    expect(await page.getAttribute("#status .progress", "data-state")).toBe("succeeded");
    await page.click('[data-action="scrub"]');
    await page.click("dialog[open] [data-confirm]");
    await page.waitForSelector("#status.ok");
    expect(await page.textContent("#status")).toContain("Scrub: done.");
    const scrubBar = await page.$eval("#status progress", (e) => [(e as unknown as { value: number }).value, (e as unknown as { max: number }).max]);
    expect(scrubBar[1]).toBeGreaterThan(0);
    expect(scrubBar[0]).toBe(scrubBar[1]);
    const scrubTask = ((await (await fetch(`${berth.url}/api/v1/tasks`, { headers: basic("admin", USERS.admin) })).json()) as { tasks: { done: number; total: number | null }[] }).tasks[0]!;
    expect(await page.textContent("#status")).toContain(`${scrubTask.done}/${scrubTask.total}`);
    await page.click('[data-action="retention"]');
    await page.click("dialog[open] [data-confirm]");
    await page.waitForSelector('#status .progress[data-state="succeeded"]');
    expect(await page.textContent("#status")).toContain("Retention: done.");
    const tasks = ((await (await fetch(`${berth.url}/api/v1/tasks`, { headers: basic("admin", USERS.admin) })).json()) as { tasks: { kind: string; state: string; total: number | null; done: number }[] }).tasks;
    expect(tasks.map((t) => [t.kind, t.state])).toEqual([["retention", "succeeded"], ["scrub", "succeeded"], ["gc", "succeeded"]]);
    await screenshot(page, "storage");
    for (const [hash, heading] of [["sync", "Sync"], ["tasks", "Background tasks"], ["health", "Health and board"]] as const) {
      await page.goto(`${berth.url}/#/${hash}`);
      await page.waitForSelector(`h1:text-is("${heading}")`);
      await screenshot(page, hash);
      if (hash === "tasks") {
        // the recent tasks, newest first; the queue (the lifecycle's periodic work) and the budget
        expect(await page.$$eval("#tasks tbody tr", (rows) => rows.map((r) => r.getAttribute("data-kind")))).toEqual(["retention", "scrub", "gc"]);
        expect(await page.textContent("#tasks")).toContain("succeeded");
        expect(await page.textContent('[data-card="Background reads"] .big')).toBe("unlimited");
      }
    }
    // the board: the profile in use (none configured) and what this machine is detected as
    expect(await page.textContent('#board [data-card="Profile in use"] .big')).toBe("none");
    expect(await page.textContent('#board [data-card="Detected board"] .big')).toBe(profileFor(identifyBoard()) ?? "none");
    expect(await page.textContent('#board [data-card="IO profile"] .big')).toBe("none");
    expect(await page.textContent("main")).toContain("200 ok");

    await page.goto(`${berth.url}/#/keys`);
    await page.fill("#key-label", "ci-runner");
    await page.click("text=Create key");
    await page.waitForSelector("#status.ok code");
    const key = (await page.textContent("#status.ok code"))!;
    expect((await fetch(`${berth.url}/v2/_catalog`, { headers: basic("admin", key) })).status).toBe(200);
    expect(await page.textContent("#keys")).toContain("ci-runner");
    await screenshot(page, "keys");
    await page.click("#keys >> text=Revoke");
    await page.click("dialog[open] [data-confirm]");
    await page.waitForFunction(() => !document.querySelector("#keys")?.textContent?.includes("ci-runner"));
    expect((await fetch(`${berth.url}/v2/_catalog`, { headers: basic("admin", key) })).status).toBe(401);
    expect(problems.take()).toEqual([]);
    await page.context().close();
  }, 20_000);

  test("a phone-sized viewport: every page renders without JavaScript errors or sideways scrolling", async () => {
    const { page, problems } = await open({ width: 360, height: 740 });
    await login(page, "admin");
    for (const route of ["repos", "repo/apps/web", "image/apps/web:1.0", "image/apps/web:latest", "storage", "sync", "tasks", "health", "keys"]) {
      await page.goto(`${berth.url}/#/${route}`);
      await page.waitForFunction(() => !document.querySelector("#loading"));
      expect(await page.$("#page-error")).toBeNull();
      const wide = await page.evaluate(() => [...document.querySelectorAll("body *")].filter((e: Element) => e.getBoundingClientRect().right > 361 && !e.closest(".scroll, pre, .cmd code")).map((e: Element) => `${e.tagName}#${e.id}.${e.className}`).slice(0, 5));
      expect({ route, wide }).toEqual({ route, wide: [] });
      expect({ route, width: await page.evaluate(() => document.documentElement.scrollWidth) }).toEqual({ route, width: 360 });
      await screenshot(page, `phone-${route.replace(/[/:]/g, "_")}`);
    }
    expect(problems.take()).toEqual([]);
    await page.context().close();
  }, 20_000);
});
