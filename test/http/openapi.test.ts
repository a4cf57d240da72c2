/**
 * The OpenAPI document and its UI, in a real headless browser (Debian's chromium) against the
 * real daemon. External name resolution is disabled and every request the browser makes is
 * recorded in a net log: the UI must render the admin operations from the document using
 * only what the daemon serves (no CDN).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { makeTemp, runOk } from "../helpers/clients";
import { rmSync } from "node:fs";

setDefaultTimeout(90_000);

let daemon: Daemon;
let work: string;

beforeAll(async () => {
  work = makeTemp("berth-openapi-");
  daemon = await startDaemon();
});
afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

function chromium(profile: string, ...args: string[]): string[] {
  return [
    "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage",
    `--user-data-dir=${join(work, profile)}`, '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    "--virtual-time-budget=15000", "--window-size=1280,900", ...args,
  ];
}

/**
 * URLs of the requests made on behalf of the page: the net log's URL_REQUEST_START_JOB events
 * whose network isolation key is the page's site. Chromium's own background traffic (update
 * checks, accounts) has another key or none, and is not the page's doing.
 */
function pageRequests(netlog: string): string[] {
  const log = JSON.parse(readFileSync(netlog, "utf8")) as {
    constants: { logEventTypes: Record<string, number> };
    events: { type: number; params?: { url?: string; network_isolation_key?: string } }[];
  };
  const start = log.constants.logEventTypes.URL_REQUEST_START_JOB;
  return log.events
    .filter((e) => e.type === start && e.params?.url && e.params.network_isolation_key?.startsWith("http://127.0.0.1"))
    .map((e) => e.params!.url!);
}

test("the document describes the admin API", async () => {
  const res = await fetch(`${daemon.url}/api/docs/json`);
  expect(res.status).toBe(200);
  const doc = (await res.json()) as { openapi: string; info: { title: string }; paths: Record<string, { get: { responses: Record<string, { content: Record<string, { schema: { required: string[] } }> }> } }> };
  expect(doc.openapi).toMatch(/^3\./);
  expect(doc.info.title).toBe("berth admin and extension API");
  expect(Object.keys(doc.paths)).toContain("/api/v1/info");
  expect(doc.paths["/api/v1/info"]?.get.responses["200"]?.content["application/json"]?.schema.required).toContain("version");
  expect(Object.keys(doc.paths).some((p) => p.includes("assets"))).toBe(false);
});

test("Swagger UI renders offline in chromium, loading nothing but the daemon's own URLs", async () => {
  const netlog = join(work, "net.json");
  const dom = await runOk(chromium("p1", `--log-net-log=${netlog}`, "--dump-dom", `${daemon.url}/api/docs`), { timeoutMs: 80_000 });
  // Rendered by swagger-ui's script from the fetched document (not in the served HTML):
  expect(dom.stdout).toContain("opblock-summary-path");
  expect(dom.stdout).toContain("/api/v1/info");
  expect(dom.stdout).toContain("Version, readiness and figures of the running registry");
  const urls = pageRequests(netlog);
  expect(urls).toContain(`${daemon.url}/api/docs/assets/swagger-ui-bundle.js`);
  expect(urls).toContain(`${daemon.url}/api/docs/assets/swagger-ui.css`);
  expect(urls).toContain(`${daemon.url}/api/docs/json`);
  expect(urls.filter((u) => !u.startsWith(`${daemon.url}/`))).toEqual([]);
  const shot = join(work, "docs.png");
  await runOk(chromium("p2", `--screenshot=${shot}`, `${daemon.url}/api/docs`), { timeoutMs: 80_000 });
  expect(readFileSync(shot).subarray(1, 4).toString()).toBe("PNG");
  if (process.env.BERTH_KEEP_SCREENSHOT) await Bun.write(process.env.BERTH_KEEP_SCREENSHOT, Bun.file(shot));
});
