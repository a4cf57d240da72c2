/**
 * Serves the web UI (ui/): `GET /` is the page, `/ui/app.<hash>.js|css` its two assets.
 * app.ts imports this module on the first UI request only, so a registry nobody browses
 * never loads it. The assets come from the bundle embedded in the binary (scripts/build runs
 * ui/build.ts, and `bun build --compile` embeds its one output file), or, in a source run,
 * from Bun.build on the first request. They are kept in memory with their gzip forms
 * (precompressed by ui/build.ts in a binary; ~37 KiB raw, ~13 KiB gzipped in all), served with content-hashed names (immutable for a year) from a page
 * that is never cached, under a Content-Security-Policy that allows this origin only.
 */
import { readFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import { hashBytes } from "../platform/hash";
import { COMPILED, NODE_BUILD } from "../version";

/** What the page tells the script about the server (no secrets: the same for everyone). */
export interface UiFlags {
  /** `[auth]` is on (a login means something). */
  auth: boolean;
  /** The token service answers /auth/token (used to ask what an identity may delete). */
  tokens: boolean;
  /** API keys can be managed (/api/v1/keys). */
  keys: boolean;
  /** The search API answers (/v2/_zot/ext/search): push and pull times, pulls, signatures, vulnerabilities. */
  search?: boolean;
}

interface Asset {
  body: Uint8Array;
  gzip?: Uint8Array;
  type: string;
  cache: string;
}

/** Everything a UI response carries: this origin only; no framing, no referrer to other sites. */
export const UI_HEADERS: Record<string, string> = {
  "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
};

const IMMUTABLE = "public, max-age=31536000, immutable";

/**
 * The built script and stylesheet: embedded in a compiled binary, a file beside the bundle
 * in the Node.js build (its name relative to the bundle), built now in a source run.
 */
async function loadBundle(): Promise<{ js: string; css: string; jsGzip?: string; cssGzip?: string }> {
  if (COMPILED || NODE_BUILD) {
    const { default: path } = await import("./ui-embedded");
    return JSON.parse(await readFile(path.startsWith("/") ? path : new URL(path, import.meta.url), "utf8"));
  }
  const { buildUi } = await import("../../ui/build");
  return buildUi();
}

/** An asset; its gzip form as built (base64), else compressed now, else none (the page: a few hundred bytes). */
function asset(text: string, type: string, cache: string, gzip?: string | "now"): Asset {
  const body = new TextEncoder().encode(text);
  const packed = gzip === undefined ? undefined : gzip === "now" ? gzipSync(body, { level: 9 }) : Uint8Array.from(Buffer.from(gzip, "base64"));
  return { body, ...(packed ? { gzip: packed } : {}), type, cache };
}

function page(js: string, css: string, flags: UiFlags): string {
  const meta = (name: string, on: boolean) => `<meta name="berth-${name}" content="${on ? "on" : "off"}">`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>berth</title><link rel="icon" href="data:,">${meta("auth", flags.auth)}${meta("token", flags.tokens)}${meta("keys", flags.keys)}${meta("search", flags.search === true)}` +
    `<link rel="stylesheet" href="/ui/${css}"><script type="module" src="/ui/${js}"></script></head><body></body></html>`;
}

/** Builds the UI's request handler (asynchronously: the bundle is read or built first). */
export async function createUi(flags: UiFlags): Promise<(req: Request, path: string) => Response> {
  const bundle = await loadBundle();
  const hash = (s: string) => hashBytes("sha256", new TextEncoder().encode(s)).slice(0, 16);
  const jsName = `app.${hash(bundle.js)}.js`;
  const cssName = `app.${hash(bundle.css)}.css`;
  const assets = new Map<string, Asset>([
    ["/", asset(page(jsName, cssName, flags), "text/html; charset=utf-8", "no-cache")],
    [`/ui/${jsName}`, asset(bundle.js, "text/javascript; charset=utf-8", IMMUTABLE, bundle.jsGzip ?? "now")],
    [`/ui/${cssName}`, asset(bundle.css, "text/css; charset=utf-8", IMMUTABLE, bundle.cssGzip ?? "now")],
  ]);
  return (req, path) => {
    const a = assets.get(path);
    if (!a) return new Response(JSON.stringify({ error: `no UI asset "${path.slice(0, 200)}"` }), { status: 404, headers: { "Content-Type": "application/json", ...UI_HEADERS } });
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response(JSON.stringify({ error: `method ${req.method} is not supported on the web UI` }), { status: 405, headers: { "Content-Type": "application/json", Allow: "GET, HEAD" } });
    }
    const gzip = a.gzip !== undefined && /\bgzip\b/.test(req.headers.get("accept-encoding") ?? "");
    const body = gzip ? a.gzip! : a.body;
    const headers: Record<string, string> = { ...UI_HEADERS, "Content-Type": a.type, "Cache-Control": a.cache, Vary: "Accept-Encoding", "Content-Length": String(body.length) };
    if (gzip) headers["Content-Encoding"] = "gzip";
    return new Response(req.method === "HEAD" ? null : body, { headers });
  };
}
