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
import type { Access } from "../access/access";
import { ADMIN_TOKEN_PRINCIPAL, type Authenticator, type Identified, UI_SESSION_PATH, type UiSessionSlot } from "../auth/authenticator";
import { TOKEN_PATH, type TokenEndpoint } from "../auth/hooks";
import type { KeysApi } from "./keys";
import type { Principal } from "../auth/identity";
import type { UiFlags } from "./ui";

/** What the front needs. */
export interface AppDeps extends AdminDeps {
  /** The /v2 handler, told the peer (per-client caps on upload sessions). */
  v2: (req: Request, peer?: Peer, principal?: Principal) => Promise<Response>;
  /** Request counting and the /metrics page; no metrics when absent. */
  metrics?: { http: HttpMetrics; render(): Promise<string> };
  /** The token the admin API requires (`[http] admin_token_file`); none: see {@link adminGuard}. */
  adminToken?: string;
  /** Request rates per client address (`[limits]`); none: no limit. Health probes are never limited. */
  rateLimiter?: RateLimiter;
  /**
   * Told every admin API request that changes something (not GET/HEAD/OPTIONS), let through
   * or refused, with its answer's status and who sent it (the audit trail).
   */
  onAdmin?: (req: Request, path: string, status: number, address: string | undefined, principal: Principal | undefined) => void;
  /** Authentication and authorization (`[auth]`); absent: berth is open as before (see {@link adminGuard}). */
  auth?: FrontAuth;
  /**
   * The trust store's routes (trust/api.ts, with `[trust] enabled`): /api/v1/trust/* and
   * zot's /v2/_zot/ext/cosign and /v2/_zot/ext/notation, admins only (as the admin API).
   */
  trustApi?: (req: Request, path: string) => Promise<Response>;
  /** The web UI at `/` (`[ui] enabled`), told what the server offers; absent: no UI. Loaded on its first request. */
  ui?: UiFlags;
  /**
   * The vulnerability API (`/api/v1/cve`, `[cve] enabled`): open to readers, each answer cut
   * to what the caller may pull; imports and scans for admins (see cve/api.ts).
   */
  cve?: { handle(req: Request, caller: { admin: boolean; visible: (repo: string) => boolean }): Promise<Response> };
}

/**
 * What the front needs when `[auth]` is configured: who is asking (decided here, once per
 * request, before dispatch) and what they may do. The token service mounts its endpoint
 * at {@link TOKEN_PATH} through `tokenEndpoint`.
 */
export interface FrontAuth {
  authenticator: Authenticator;
  access: Access;
  tokenEndpoint?: TokenEndpoint;
  /** The API key routes (`/api/v1/keys`), for any logged-in identity, when API keys are on. */
  keysApi?: KeysApi;
  /** The web UI's sessions (`[ui] enabled`): {@link UI_SESSION_PATH} logs in and out (auth/uisession.ts). */
  uiSessions?: UiSessionSlot;
  /**
   * Admin API path prefixes open to any authenticated identity, not only admins (e.g.
   * "/api/v1/keys" for users managing their own API keys); the route itself must then
   * check what the caller ({@link requestPrincipal}) may do.
   */
  identityRoutes?: readonly string[];
}

const PRINCIPALS = new WeakMap<Request, Principal>();

/**
 * The principal the front authenticated for a request it handed to the admin app
 * (undefined: anonymous, or authentication off). Routes under /api/v1 use it to know who
 * is asking (e.g. who creates an API key).
 */
export function requestPrincipal(req: Request): Principal | undefined {
  return PRINCIPALS.get(req);
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
  const onAdmin = deps.onAdmin;
  /** Tells the audit trail about an admin request that may change something, once answered. */
  const audited = (req: Request, path: string, server: Peer | undefined, principal: Principal | undefined, res: Promise<Response> | Response) => {
    if (!onAdmin || !isAdminChange(req.method, path)) return res;
    const report = (r: Response) => {
      onAdmin(req, path, r.status, peerAddress(server, req), principal);
      return r;
    };
    return res instanceof Response ? report(res) : res.then(report);
  };
  const auth = deps.auth;
  const ui = deps.ui && webUi(deps.ui);
  const v2 = auth ? authenticatedV2(auth, deps.v2) : deps.v2;
  /** zot's key and certificate uploads: admins only, as the admin API (OCI error shape: they live under /v2). */
  const trustUpload = (req: Request, path: string, server: Peer | undefined): Promise<Response> | Response => {
    const trustApi = deps.trustApi!;
    const denied = (status: number, code: "UNAUTHORIZED" | "DENIED", detail: string, headers: Record<string, string> = {}) =>
      new Response(errorBody(code, detail), { status, headers: { ...JSON_HEADERS, "Docker-Distribution-API-Version": "registry/2.0", ...headers } });
    if (!auth) {
      // the admin token's rule, as for /api/v1 changes (loopback only while no token is set)
      const refused = guard(req, `${API_PREFIX}/trust`, server);
      if (refused) return audited(req, `${API_PREFIX}/trust`, server, undefined, refused.status === 401 ? denied(401, "UNAUTHORIZED", "uploading trust material needs the admin token", { "WWW-Authenticate": 'Bearer realm="berth-admin"' }) : denied(403, "DENIED", "uploading trust material is accepted only from loopback while no admin token is set"));
      return audited(req, `${API_PREFIX}/trust`, server, deps.adminToken !== undefined ? ADMIN_TOKEN_PRINCIPAL : undefined, trustApi(req, path));
    }
    if (auth && !isReadMethod(req.method) && crossSite(req)) return denied(403, "DENIED", FORGED);
    return identified(auth, req, server, (who) => {
      if (who.kind === "refused") return v2Refusal(auth, req, who);
      const principal = principalOf(who);
      if (!auth.access.admin(principal)) {
        const answer = principal ? denied(403, "DENIED", `"${principal.name}" is not an admin; see [auth] admins`) : denied(401, "UNAUTHORIZED", "uploading trust material needs an admin's credentials", { "WWW-Authenticate": auth.authenticator.challenge(req) });
        return audited(req, `${API_PREFIX}/trust`, server, principal, answer);
      }
      return audited(req, `${API_PREFIX}/trust`, server, principal, trustApi(req, path));
    });
  };
  const route = (req: Request, server?: Peer): Promise<Response> | Response => {
    const url = req.url;
    // Bun hands over a bare path when the Host header is unusable
    const pathStart = url.startsWith("/") ? 0 : url.indexOf("/", url.indexOf("//") + 2);
    // routing is on the target as sent: one whose dot segments the URL parser resolved is refused
    if (server?.rewritten?.(req)) return rewrittenTarget(url.startsWith("/v2", pathStart));
    // before authentication: unauthenticated floods are limited too
    if (limiter && !isProbe(url, pathStart)) {
      const refused = limit(limiter, req, peerAddress(server, req));
      if (refused) return refused;
    }
    if (deps.trustApi && url.startsWith("/v2/_zot/ext/", pathStart)) {
      const zotPath = url.slice(pathStart).split("?")[0]!;
      if (zotPath === "/v2/_zot/ext/cosign" || zotPath === "/v2/_zot/ext/notation") return trustUpload(req, zotPath, server);
    }
    if (url.startsWith("/v2", pathStart)) {
      const next = url.charCodeAt(pathStart + 3);
      if (Number.isNaN(next) || next === 47 /* / */ || next === 63 /* ? */) return v2(req, server);
    }
    const pathAndQuery = url.slice(pathStart);
    const path = pathAndQuery.split("?")[0];
    if (path === "/livez") return new Response(JSON.stringify({ status: "ok", version: VERSION }), { headers: JSON_HEADERS });
    if (path === "/readyz") {
      const ready = deps.ready();
      return new Response(JSON.stringify({ status: ready ? "ready" : "starting" }), { status: ready ? 200 : 503, headers: JSON_HEADERS });
    }
    if (ui && (path === "/" || path!.startsWith("/ui/"))) return ui(req, path!);
    if (path === "/metrics" && deps.metrics) {
      const metrics = deps.metrics;
      const render = () => metrics.render().then((text) => new Response(text, { headers: METRICS_HEADERS }));
      if (!auth) return render();
      return identified(auth, req, server, (who) => {
        if (who.kind === "refused") return frontRefusal(auth, req, who);
        const principal = principalOf(who);
        if (auth.access.admin(principal)) return render();
        // a reader who is not an admin sees per-repository series only of what it may pull
        if (auth.access.metrics(principal)) {
          const visible = auth.access.visible(principal);
          return metrics.render().then((text) => new Response(repositoriesOnly(text, visible), { headers: METRICS_HEADERS }));
        }
        return principal ? adminError(403, "this identity may not read /metrics; see [auth] metrics") : unauthorized(auth, req, "/metrics needs credentials");
      });
    }
    if (auth?.uiSessions && path === UI_SESSION_PATH) {
      const slot = auth.uiSessions;
      if (!isReadMethod(req.method) && crossSite(req)) return adminError(403, FORGED);
      return identified(auth, req, server, async (who) => {
        if (who.kind === "refused") return frontRefusal(auth, req, who);
        if (!slot.store) {
          const { UiSessions } = await import("../auth/uisession");
          slot.store ??= new UiSessions(slot.idle, slot.keyActive, slot.now);
        }
        return slot.store.handle(req, who);
      });
    }
    if (auth && path === TOKEN_PATH && auth.tokenEndpoint) {
      const endpoint = auth.tokenEndpoint;
      return identified(auth, req, server, (who) =>
        who.kind === "refused" ? frontRefusal(auth, req, who) : endpoint(req, principalOf(who), (p, repo) => auth.access.grant(p, repo), { req, address: peerAddress(server, req) }));
    }
    if (auth && !isReadMethod(req.method) && (path === API_PREFIX || path!.startsWith(`${API_PREFIX}/`)) && crossSite(req)) {
      return audited(req, path!, server, undefined, adminError(403, FORGED));
    }
    if (deps.cve && (path === CVE_PREFIX || path!.startsWith(`${CVE_PREFIX}/`))) {
      const cve = deps.cve;
      const forwarded = () => new Request(`http://localhost${pathAndQuery}`, req);
      if (!auth) {
        // open registry: everyone reads everything; changes as the admin guard allows
        const refused = guard(req, path!, server);
        if (refused) return audited(req, path!, server, undefined, refused);
        return audited(req, path!, server, deps.adminToken !== undefined ? ADMIN_TOKEN_PRINCIPAL : undefined, cve.handle(forwarded(), { admin: true, visible: () => true }));
      }
      return identified(auth, req, server, (who) => {
        if (who.kind === "refused") return audited(req, path!, server, undefined, frontRefusal(auth, req, who));
        const principal = principalOf(who);
        return audited(req, path!, server, principal, cve.handle(forwarded(), { admin: auth.access.admin(principal), visible: auth.access.visible(principal) }));
      });
    }
    if (auth?.keysApi && (path === KEYS_PREFIX || path!.startsWith(`${KEYS_PREFIX}/`))) {
      // API keys: any logged-in identity manages its own (admins: every key); see http/keys.ts
      const keysApi = auth.keysApi;
      return identified(auth, req, server, (who) => {
        // creating and revoking keys are admin actions for the audit trail (never the key itself: only method, path, status)
        if (who.kind === "refused") return audited(req, path!, server, undefined, frontRefusal(auth, req, who));
        const principal = principalOf(who);
        if (!principal) return audited(req, path!, server, undefined, unauthorized(auth, req, "API keys are managed by a logged-in user"));
        return audited(req, path!, server, principal, keysApi(req, path!, { principal, admin: auth.access.admin(principal) }));
      });
    }
    if (auth && (path === API_PREFIX || path!.startsWith(`${API_PREFIX}/`))) {
      return identified(auth, req, server, (who) => {
        if (who.kind === "refused") return audited(req, path!, server, undefined, frontRefusal(auth, req, who));
        const principal = principalOf(who);
        const open = principal !== undefined && auth.identityRoutes?.some((p) => path === p || path!.startsWith(`${p}/`));
        if (!open && !auth.access.admin(principal)) {
          return audited(req, path!, server, principal, principal ? adminError(403, `"${principal.name}" is not an admin; see [auth] admins`) : unauthorized(auth, req, "the admin API needs an admin's credentials"));
        }
        const forwarded = new Request(`http://localhost${pathAndQuery}`, req);
        if (principal) PRINCIPALS.set(forwarded, principal);
        if (isTrustPath(path!) && deps.trustApi) return audited(req, path!, server, principal, deps.trustApi(forwarded, path!));
        return audited(req, path!, server, principal, adminApp().then((handle) => handle(forwarded)));
      });
    }
    const refused = auth ? undefined : guard(req, path!, server);
    if (refused) return audited(req, path!, server, undefined, refused);
    // Elysia misreads the path of a URL whose host is very short ("http://reg/api/…", a
    // plausible LAN alias), so it is handed the request under a canonical origin.
    const answer = isTrustPath(path!) && deps.trustApi
      ? deps.trustApi(new Request(`http://localhost${pathAndQuery}`, req), path!)
      : adminApp().then((handle) => handle(new Request(`http://localhost${pathAndQuery}`, req)));
    // without [auth], a request the guard let through with the admin token is the token's holder
    return audited(req, path!, server, deps.adminToken !== undefined ? ADMIN_TOKEN_PRINCIPAL : undefined, answer);
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

/**
 * The web UI's handler, imported on its first request (http/ui.ts); a failed load (a
 * source run whose UI does not build) answers 503 and is tried again on the next request.
 */
function webUi(flags: UiFlags): (req: Request, path: string) => Promise<Response> {
  let handler: Promise<(req: Request, path: string) => Response> | undefined;
  return async (req, path) => {
    const loading = (handler ??= import("./ui").then((m) => m.createUi(flags)));
    try {
      return (await loading)(req, path);
    } catch (err) {
      if (handler === loading) handler = undefined;
      return adminError(503, `the web UI could not be loaded: ${(err as Error).message}`);
    }
  };
}

/** The exposition `text` without the samples labelled with a repository `visible` rejects. */
export function repositoriesOnly(text: string, visible: (repo: string) => boolean): string {
  if (!text.includes('repository="')) return text;
  return text
    .split("\n")
    .filter((line) => {
      const m = /[{,]repository="([^"]*)"/.exec(line);
      return m === null || line.startsWith("#") || visible(m[1]!);
    })
    .join("\n");
}

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
 * The /v2 handler behind authentication: the identity is decided first; a bad credential
 * (or a source down, or a lockout) is refused here, in the OCI shape; otherwise the
 * handler gets the principal (undefined: anonymous) and asks the policy itself.
 */
export function authenticatedV2(
  auth: FrontAuth,
  v2: (req: Request, peer?: Peer, principal?: Principal) => Promise<Response>,
): (req: Request, peer?: Peer) => Promise<Response> | Response {
  return (req, peer) => identified(auth, req, peer, (who) => (who.kind === "refused" ? v2Refusal(auth, req, who) : v2(req, peer, principalOf(who))));
}

/** Runs `then` with the identity of `req` (synchronously when no credential has to be checked). */
function identified(
  auth: FrontAuth,
  req: Request,
  server: Peer | undefined,
  then: (who: Identified) => Promise<Response> | Response,
): Promise<Response> | Response {
  const who = auth.authenticator.identify(req, () => peerAddress(server, req), server);
  return who instanceof Promise ? who.then(then) : then(who);
}

function principalOf(who: Identified): Principal | undefined {
  return who.kind === "principal" ? who.principal : undefined;
}

/** Extra headers of a refusal: the challenge on 401, Retry-After on 429/503. */
function refusalHeaders(auth: FrontAuth, req: Request, who: Identified & { kind: "refused" }): Record<string, string> {
  if (who.status === 401) return { "WWW-Authenticate": auth.authenticator.challenge(req) };
  return { "Retry-After": String(who.retryAfter ?? 1) };
}

const REFUSAL_TEXT: Record<401 | 429 | 503, string> = {
  401: "the credentials were not accepted",
  429: "too many failed logins; retry later",
  503: "the identity source is unavailable; retry later",
};

/** A bad credential (or an identity source down, or a lockout) on /v2, in the OCI error shape. */
function v2Refusal(auth: FrontAuth, req: Request, who: Identified & { kind: "refused" }): Response {
  const code = who.status === 401 ? "UNAUTHORIZED" : who.status === 429 ? "TOOMANYREQUESTS" : "UNKNOWN";
  return new Response(req.method === "HEAD" ? null : errorBody(code, REFUSAL_TEXT[who.status]), {
    status: who.status,
    headers: { ...JSON_HEADERS, "Docker-Distribution-API-Version": "registry/2.0", ...refusalHeaders(auth, req, who) },
  });
}

/** The same refusal off /v2, in the admin API's shape. */
function frontRefusal(auth: FrontAuth, req: Request, who: Identified & { kind: "refused" }): Response {
  return adminError(who.status, REFUSAL_TEXT[who.status], refusalHeaders(auth, req, who));
}

/** 401 with the challenge, off /v2. */
function unauthorized(auth: FrontAuth, req: Request, message: string): Response {
  return adminError(401, message, { "WWW-Authenticate": auth.authenticator.challenge(req) });
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

/** True for the trust store's admin routes (trust/api.ts). */
function isTrustPath(path: string): boolean {
  return path === `${API_PREFIX}/trust` || path.startsWith(`${API_PREFIX}/trust/`);
}
/** The API key routes (http/keys.ts, loaded by the composition root only with [auth] on). */
const KEYS_PREFIX = `${API_PREFIX}/keys`;
const CVE_PREFIX = `${API_PREFIX}/cve`;

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
  if (crossSite(req)) return true;
  const host = req.headers.get("host") ?? new URL(req.url, "http://localhost").host;
  // a name that resolves to loopback from the outside is what a rebinding attack needs:
  // anything dotted but localhost names and IP literals (single-label aliases pass)
  const name = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.replace(/:\d+$/, "");
  const literal = /^\d{1,3}(\.\d{1,3}){3}$/.test(name) || name.includes(":");
  return !(literal || !name.includes(".") || name.endsWith(".localhost"));
}

/**
 * A request a browser sent for a page of another site: a cross-site `Sec-Fetch-Site`, or an
 * `Origin` that is not this Host. With `[auth]`, such a request that changes something is
 * refused: a browser would attach Basic credentials it cached for this registry (forgery).
 */
function crossSite(req: Request): boolean {
  const site = req.headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin" && site !== "none") return true;
  const origin = req.headers.get("origin");
  if (origin === null) return false;
  const host = req.headers.get("host") ?? new URL(req.url, "http://localhost").host;
  return origin.replace(/^https?:\/\//, "") !== host;
}

const FORGED = "admin changes from a web page of another site are refused";

function isLoopback(address: string): boolean {
  return address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.");
}

/** An admin API error, in the admin API's own shape (`{ error }`). */
function adminError(status: number, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error: message }), { status, headers: { ...JSON_HEADERS, ...headers } });
}
