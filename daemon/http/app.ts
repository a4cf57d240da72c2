/**
 * The HTTP front. Requests under /v2 go straight to the distribution handler (the hot path
 * pays for no framework routing or body parsing), and the health probes are answered here
 * too. Everything else goes to the Elysia app of admin and extension APIs, which is loaded
 * on first use: importing Elysia costs about 10 MiB of resident memory, which a registry
 * that is only ever pulled from and probed should not pay.
 */
import { timingSafeEqual } from "node:crypto";
import { errorBody } from "../oci/errors";
import { VERSION } from "../version";
import type { HttpMetrics } from "../metrics/http";
import type { AdminDeps } from "./admin";
import { type RateLimiter, isReadMethod, tooManyRequests } from "./ratelimit";
import type { Principal } from "../auth/identity";
import type { LoginAttempts } from "../auth/attempts";

/** What the front needs. */
export interface AppDeps extends AdminDeps {
  /** The /v2 handler, told the peer (per-client caps on upload sessions). */
  v2: (req: Request, peer?: Peer) => Promise<Response>;
  /** Request counting and the /metrics page; no metrics when absent. */
  metrics?: { http: HttpMetrics; render(): Promise<string> };
  /** The token the admin API requires (`[http] admin_token_file`); none: see {@link adminGuard}. */
  adminToken?: string;
  /** Request rates per client address (`[limits]`); none: no limit. Health probes are never limited. */
  rateLimiter?: RateLimiter;
  /** The failed-login lockout, asked before credentials are verified (auth/attempts.ts); none: no lockout. */
  loginAttempts?: Pick<LoginAttempts, "refuse">;
  /**
   * Told every admin API request that changes something (not GET/HEAD/OPTIONS), let through
   * or refused, with its answer's status and who sent it (the audit trail).
   */
  onAdmin?: (req: Request, path: string, status: number, address: string | undefined, principal: Principal | undefined) => void;
}

/**
 * What the front asks of the server: the peer's address (Bun's `server.requestIP`), and
 * whether the request target was rewritten before `req.url` was built (platform/rawtarget.ts).
 */
export interface Peer {
  requestIP(req: Request): { address: string } | null;
  rewritten?(req: Request): boolean;
}

const METRICS_HEADERS = { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" };

const JSON_HEADERS = { "Content-Type": "application/json" };

/** Builds the request handler for the whole server. */
export function createApp(deps: AppDeps): (req: Request, server?: Peer) => Promise<Response> | Response {
  let admin: Promise<(req: Request) => Response | Promise<Response>> | undefined;
  const adminApp = () => (admin ??= import("./admin").then((m) => m.createAdminApp(deps)));
  const guard = adminGuard(deps.adminToken);
  const limiter = deps.rateLimiter;
  const attempts = deps.loginAttempts;
  const route = (req: Request, server?: Peer): Promise<Response> | Response => {
    const url = req.url;
    // Bun hands over a bare path when the Host header is unusable
    const pathStart = url.startsWith("/") ? 0 : url.indexOf("/", url.indexOf("//") + 2);
    // routing is on the target as sent: one whose dot segments the URL parser resolved is refused
    if (server?.rewritten?.(req)) return rewrittenTarget(url.startsWith("/v2", pathStart));
    if ((limiter || attempts) && !isProbe(url, pathStart)) {
      const address = peerAddress(server, req);
      const refused = (limiter && limit(limiter, req, address)) || attempts?.refuse(req, address);
      if (refused) return refused;
    }
    if (url.startsWith("/v2", pathStart)) {
      const next = url.charCodeAt(pathStart + 3);
      if (Number.isNaN(next) || next === 47 /* / */ || next === 63 /* ? */) return deps.v2(req, server);
    }
    const pathAndQuery = url.slice(pathStart);
    const path = pathAndQuery.split("?")[0];
    if (path === "/livez") return new Response(JSON.stringify({ status: "ok", version: VERSION }), { headers: JSON_HEADERS });
    if (path === "/readyz") {
      const ready = deps.ready();
      return new Response(JSON.stringify({ status: ready ? "ready" : "starting" }), { status: ready ? 200 : 503, headers: JSON_HEADERS });
    }
    if (path === "/metrics" && deps.metrics) return deps.metrics.render().then((text) => new Response(text, { headers: METRICS_HEADERS }));
    const refused = guard(req, path!, server);
    const onAdmin = deps.onAdmin && isAdminChange(req.method, path!) ? deps.onAdmin : undefined;
    if (refused) {
      onAdmin?.(req, path!, refused.status, peerAddress(server, req), undefined);
      return refused;
    }
    // Elysia misreads the path of a URL whose host is very short ("http://reg/api/…", a
    // plausible LAN alias), so it is handed the request under a canonical origin.
    const answer = adminApp().then((handle) => handle(new Request(`http://localhost${pathAndQuery}`, req)));
    if (!onAdmin) return answer;
    return answer.then((res) => {
      onAdmin(req, path!, res.status, peerAddress(server, req), deps.adminToken !== undefined ? ADMIN_TOKEN_PRINCIPAL : undefined);
      return res;
    });
  };
  const http = deps.metrics?.http;
  if (!http) return route;
  // Counting wraps every request: a timestamp, then one callback when the response is ready.
  return (req, server) => {
    const started = http.begin();
    let res: Promise<Response> | Response;
    try {
      res = route(req, server);
    } catch (err) {
      http.abort();
      throw err;
    }
    if (res instanceof Response) {
      http.end(started, req, res);
      return res;
    }
    return res.then(
      (r) => {
        http.end(started, req, r);
        return r;
      },
      (err) => {
        http.abort();
        throw err;
      },
    );
  };
}

/** Who an admin request that passed the `[http] admin_token_file` check is, for the audit trail. */
const ADMIN_TOKEN_PRINCIPAL: Principal = { name: "admin-token", groups: [], source: "admin-token" };

/** True for a request to the admin API that may change something. */
function isAdminChange(method: string, path: string): boolean {
  return !isReadMethod(method) && (path === API_PREFIX || path.startsWith(`${API_PREFIX}/`));
}

/** The peer's address; undefined when unknown (a socketless test) or when asking fails. */
function peerAddress(server: Peer | undefined, req: Request): string | undefined {
  try {
    return server?.requestIP(req)?.address;
  } catch {
    return undefined;
  }
}

/** True for the health probes (/livez, /readyz), which no limit or lockout ever refuses. */
function isProbe(url: string, pathStart: number): boolean {
  if (!url.startsWith("/livez", pathStart) && !url.startsWith("/readyz", pathStart)) return false;
  const path = url.slice(pathStart).split("?")[0];
  return path === "/livez" || path === "/readyz";
}

/**
 * The 429 for a request over its client's rate, or undefined. A request whose peer is
 * unknown (a socketless caller) is not limited.
 */
function limit(limiter: RateLimiter, req: Request, address: string | undefined): Response | undefined {
  if (address === undefined) return undefined;
  const wait = limiter.take(address, isReadMethod(req.method));
  if (wait === 0) return undefined;
  return tooManyRequests(req.method, wait, `${address} sent more ${isReadMethod(req.method) ? "reads" : "writes"} than [limits] allows; retry after ${wait} s`);
}

/**
 * The answer to a request whose target had `.`/`..` segments or backslashes: 400, with
 * NAME_INVALID in the OCI shape where the resolved path is under /v2.
 */
function rewrittenTarget(v2: boolean): Response {
  const detail = 'the request path has "." or ".." segments (perhaps percent-encoded) or backslashes; berth routes on the path as sent and does not resolve them';
  if (!v2) return adminError(400, detail);
  return new Response(errorBody("NAME_INVALID", detail), {
    status: 400,
    headers: { ...JSON_HEADERS, "Docker-Distribution-API-Version": "registry/2.0" },
  });
}

const API_PREFIX = "/api/v1";

/**
 * Who may use the admin API. With a token configured, every /api/v1 request must carry it
 * as a Bearer credential (the API documentation stays readable). Without one, reads are
 * open (they show what `/v2` shows, plus state) and changes (POST: GC, retention, scrub, a
 * sync run) are accepted only from loopback, so an appliance on a shared network cannot be
 * driven by its neighbours until its owner sets a token. Returns the refusal, or undefined.
 */
export function adminGuard(token: string | undefined): (req: Request, path: string, server?: Peer) => Response | undefined {
  const expected = token === undefined ? undefined : Buffer.from(`Bearer ${token}`);
  return (req, path, server) => {
    if (path !== API_PREFIX && !path.startsWith(`${API_PREFIX}/`)) return undefined;
    if (expected) {
      const given = Buffer.from(req.headers.get("authorization") ?? "");
      if (given.length === expected.length && timingSafeEqual(given, expected)) return undefined;
      return adminError(401, "the admin API requires the token of [http] admin_token_file as `Authorization: Bearer <token>`", { "WWW-Authenticate": 'Bearer realm="berth-admin"' });
    }
    if (req.method === "GET" || req.method === "HEAD") return undefined;
    const address = server?.requestIP(req)?.address;
    if (address === undefined || !isLoopback(address)) {
      return adminError(403, "admin changes are accepted only from loopback while no token is set; set [http] admin_token_file to allow them over the network");
    }
    if (fromWebPage(req)) {
      return adminError(403, "admin changes from a web page of another site are refused while no token is set; set [http] admin_token_file");
    }
    return undefined;
  };
}

/**
 * A loopback request that a browser sent for another site's page (cross-site request
 * forgery), or under a DNS name rebound to 127.0.0.1: a cross-site `Sec-Fetch-Site`, an
 * `Origin` that is not this Host, or a Host that is a dotted DNS name. Tools such as curl
 * send none of these headers; the API docs page on this host passes.
 */
function fromWebPage(req: Request): boolean {
  const site = req.headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin" && site !== "none") return true;
  const host = req.headers.get("host") ?? new URL(req.url, "http://localhost").host;
  const origin = req.headers.get("origin");
  if (origin !== null && origin.replace(/^https?:\/\//, "") !== host) return true;
  // a name that resolves to loopback from the outside is what a rebinding attack needs:
  // anything dotted but localhost names and IP literals (single-label aliases pass)
  const name = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.replace(/:\d+$/, "");
  const literal = /^\d{1,3}(\.\d{1,3}){3}$/.test(name) || name.includes(":");
  return !(literal || !name.includes(".") || name.endsWith(".localhost"));
}

function isLoopback(address: string): boolean {
  return address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.");
}

/** An admin API error, in the admin API's own shape (`{ error }`). */
function adminError(status: number, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error: message }), { status, headers: { ...JSON_HEADERS, ...headers } });
}
