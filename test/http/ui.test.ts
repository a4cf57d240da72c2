/**
 * The web UI's serving (issue 12), socketless through the front: the page and its hashed
 * assets, caching (page no-cache, assets immutable), gzip, the self-only CSP, refusals
 * (404 for an unknown asset, 405 for a write), `[ui] enabled = false` leaving `/` to the
 * admin app, the assets readable without credentials under [auth] while the data is not,
 * the admin API's cross-site refusal unchanged beside the UI, and the bundle's size budget.
 */
import { describe, expect, test } from "bun:test";
import { gzipSync, gunzipSync } from "node:zlib";
import { createApp, type AppDeps } from "../../daemon/http/app";
import { buildUi } from "../../ui/build";
import { UI_HEADERS } from "../../daemon/http/ui";

/** The UI's budget: page, script and stylesheet together, gzipped. */
const BUDGET_GZIP_BYTES = 32 * 1024;

const base: AppDeps = {
  v2: async () => new Response("{}", { status: 200 }),
  ready: () => true,
  info: () => ({ root: "/tmp", uploadsInFlight: 0, manifestCacheBytes: 0, rssBytes: 0 }),
  storage: { stats: () => ({}), quarantine: () => [], gc: async () => ({ ran: true }), retention: async () => ({}), scrub: async () => ({}) },
};
const FLAGS = { auth: false, tokens: false, keys: false };

async function get(app: ReturnType<typeof createApp>, path: string, headers: Record<string, string> = {}, method = "GET"): Promise<Response> {
  return app(new Request(`http://reg.local:5000${path}`, { method, headers }));
}

/** The asset paths the page names. */
function assetsOf(html: string): string[] {
  return [...html.matchAll(/(?:href|src)="(\/ui\/[^"]+)"/g)].map((m) => m[1]!);
}

describe("the web UI at /", () => {
  test("the page is never cached and names content-hashed assets that are immutable, all under a self-only CSP", async () => {
    const app = createApp({ ...base, ui: FLAGS });
    const page = await get(app, "/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("cache-control")).toBe("no-cache");
    expect(page.headers.get("content-security-policy")).toBe(UI_HEADERS["Content-Security-Policy"]!);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'; script-src 'self'");
    const html = await page.text();
    expect(html).toContain('<meta name="berth-auth" content="off">');
    const assets = assetsOf(html);
    expect(assets).toHaveLength(2);
    for (const path of assets) {
      expect(path).toMatch(/^\/ui\/app\.[0-9a-f]{16}\.(js|css)$/);
      const res = await get(app, path);
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      expect(res.headers.get("content-type")).toStartWith(path.endsWith(".js") ? "text/javascript" : "text/css");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      const body = new Uint8Array(await res.arrayBuffer());
      // the name is the content's hash: a new build gets a new name
      expect(path).toContain(new Bun.CryptoHasher("sha256").update(body).digest("hex").slice(0, 16));
      const gz = await get(app, path, { "Accept-Encoding": "gzip, br" });
      expect(gz.headers.get("content-encoding")).toBe("gzip");
      expect(gz.headers.get("vary")).toBe("Accept-Encoding");
      expect(gunzipSync(new Uint8Array(await gz.arrayBuffer()))).toEqual(Buffer.from(body));
    }
  }, 20_000);

  test("an unknown asset is 404, a write is 405, HEAD has no body", async () => {
    const app = createApp({ ...base, ui: FLAGS });
    const missing = await get(app, "/ui/app.0000000000000000.js");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'no UI asset "/ui/app.0000000000000000.js"' });
    const post = await get(app, "/", {}, "POST");
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    const head = await get(app, "/", {}, "HEAD");
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  }, 20_000);

  test("[ui] enabled = false: / and /ui/ are not the UI", async () => {
    const app = createApp(base);
    for (const path of ["/", "/ui/app.0000000000000000.js"]) {
      const res = await get(app, path);
      expect(res.status).toBe(404);
      expect(res.headers.get("content-security-policy")).toBeNull();
    }
  });

  test("the bundle stays within its budget", async () => {
    const { js, css } = await buildUi();
    const page = await (await get(createApp({ ...base, ui: FLAGS }), "/")).text();
    const gz = (s: string) => gzipSync(s, { level: 9 }).length;
    expect(gz(js) + gz(css) + gz(page)).toBeLessThanOrEqual(BUDGET_GZIP_BYTES);
  }, 20_000);
});
