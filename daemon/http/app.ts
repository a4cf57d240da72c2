/**
 * The HTTP front. Requests under /v2 go straight to the distribution handler (the hot path
 * pays for no framework routing or body parsing), and the health probes are answered here
 * too. Everything else goes to the Elysia app of admin and extension APIs, which is loaded
 * on first use: importing Elysia costs about 10 MiB of resident memory, which a registry
 * that is only ever pulled from and probed should not pay.
 */
import { VERSION } from "../version";
import type { HttpMetrics } from "../metrics/http";
import type { AdminDeps } from "./admin";

/** What the front needs. */
export interface AppDeps extends AdminDeps {
  v2: (req: Request) => Promise<Response>;
  /** Request counting and the /metrics page; no metrics when absent. */
  metrics?: { http: HttpMetrics; render(): Promise<string> };
}

const METRICS_HEADERS = { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" };

const JSON_HEADERS = { "Content-Type": "application/json" };

/** Builds the request handler for the whole server. */
export function createApp(deps: AppDeps): (req: Request) => Promise<Response> | Response {
  let admin: Promise<(req: Request) => Response | Promise<Response>> | undefined;
  const adminApp = () => (admin ??= import("./admin").then((m) => m.createAdminApp(deps)));
  const route = (req: Request): Promise<Response> | Response => {
    const url = req.url;
    const pathStart = url.indexOf("/", url.indexOf("//") + 2);
    if (url.startsWith("/v2", pathStart)) {
      const next = url.charCodeAt(pathStart + 3);
      if (Number.isNaN(next) || next === 47 /* / */ || next === 63 /* ? */) return deps.v2(req);
    }
    const pathAndQuery = url.slice(pathStart);
    const path = pathAndQuery.split("?")[0];
    if (path === "/livez") return new Response(JSON.stringify({ status: "ok", version: VERSION }), { headers: JSON_HEADERS });
    if (path === "/readyz") {
      const ready = deps.ready();
      return new Response(JSON.stringify({ status: ready ? "ready" : "starting" }), { status: ready ? 200 : 503, headers: JSON_HEADERS });
    }
    if (path === "/metrics" && deps.metrics) return deps.metrics.render().then((text) => new Response(text, { headers: METRICS_HEADERS }));
    // Elysia misreads the path of a URL whose host is very short ("http://reg/api/…", a
    // plausible LAN alias), so it is handed the request under a canonical origin.
    return adminApp().then((handle) => handle(new Request(`http://localhost${pathAndQuery}`, req)));
  };
  const http = deps.metrics?.http;
  if (!http) return route;
  // Counting wraps every request: a timestamp, then one callback when the response is ready.
  return (req) => {
    const started = http.begin();
    let res: Promise<Response> | Response;
    try {
      res = route(req);
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
