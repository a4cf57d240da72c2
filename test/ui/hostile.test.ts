/**
 * Hostile content pushed through the API is shown as text by the web UI (review of the UI):
 * markup and script in annotations, labels, environment, history, referrers' artifact types
 * and tags' neighbours never become elements or run, on every page that shows them (the
 * repository list, the repository page, the image page), in Debian's Chromium.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Browser } from "playwright-core";
import { launchChromium, watchProblems } from "../helpers/browser";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { sha256 } from "../helpers/registry";
import { putManifest, pushReferrer } from "./fill";

declare const window: { __pwned?: number };
declare const document: { querySelectorAll(s: string): { length: number }; body: { textContent: string | null } };

const HTML = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>"><svg onload="window.__pwned=3">`;
let berth: Daemon;
let browser: Browser & AsyncDisposable;

beforeAll(async () => {
  berth = await startDaemon({ extra: "[search]\nenabled = true\n" });
  const t = { url: berth.url, headers: {} };
  const put = async (data: string) => {
    const res = await fetch(`${berth.url}/v2/evil/app/blobs/uploads/?digest=${sha256(data)}`, { method: "POST", body: data });
    expect(res.status).toBe(201);
    return { digest: sha256(data), size: Buffer.byteLength(data) };
  };
  const config = JSON.stringify({
    created: "2026-11-30T10:00:00Z",
    architecture: "amd64",
    os: "linux",
    config: { Env: [`X=${HTML}`], Cmd: [HTML], Labels: { [HTML]: HTML, "org.opencontainers.image.title": HTML } },
    rootfs: { type: "layers", diff_ids: [] },
    history: [{ created: "2026-11-30T09:59:00Z", created_by: HTML }],
  });
  const c = await put(config);
  const l = await put("layer");
  const image = await putManifest(t, "evil/app", "v1", {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...c },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...l }],
    annotations: { "org.opencontainers.image.description": HTML, "org.opencontainers.image.source": "javascript:window.__pwned=4", [HTML]: HTML },
  });
  await pushReferrer(t, "evil/app", image, `application/x-${encodeURIComponent("<b>")}+json`, HTML);
  browser = await launchChromium();
}, 30_000);

afterAll(async () => {
  await browser?.close();
  await berth?.[Symbol.asyncDispose]();
});

test("markup from the registry is text on the list, repository and image pages; nothing runs", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = watchProblems(page);
  // each page is checked once it shows what it is about (the image page: its hostile strings)
  for (const [route, shown] of [["repos", "evil/app"], ["repo/evil/app", "v1"], ["image/evil/app:v1", HTML]] as const) {
    await page.goto(`${berth.url}/#/${route}`);
    await page.waitForFunction((text) => (document.body.textContent ?? "").includes(text), shown);
    await page.waitForLoadState("networkidle");
    expect(await page.evaluate(() => window.__pwned)).toBeUndefined();
    expect(await page.evaluate(() => document.querySelectorAll("img[src='x'], script:not([src]), svg[onload], a[href^='javascript']").length)).toBe(0);
  }
  // the image page shows the hostile strings literally
  expect(await page.textContent("body")).toContain(HTML);
  expect(problems.take()).toEqual([]);
  await context.close();
}, 30_000);
