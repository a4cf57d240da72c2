/**
 * The HTTP front: the `/v2` handler takes every request under /v2 directly (the hot path
 * pays for no framework routing or body parsing), and Elysia carries everything else:
 * health endpoints now, the extension and admin APIs with their OpenAPI document later.
 */
import { Elysia } from "elysia";
import { VERSION } from "../version";

/** What the front needs to answer health checks. */
export interface AppDeps {
  v2: (req: Request) => Promise<Response>;
  /** True once start-up recovery is done and the registry serves requests. */
  ready: () => boolean;
}

/** Builds the request handler for the whole server. */
export function createApp(deps: AppDeps): (req: Request) => Promise<Response> | Response {
  const app = new Elysia({ aot: true })
    .get("/livez", () => ({ status: "ok", version: VERSION }))
    .get("/readyz", ({ set }) => {
      if (deps.ready()) return { status: "ready" };
      set.status = 503;
      return { status: "starting" };
    });
  const other = app.handle.bind(app);
  return (req) => {
    const url = req.url;
    const pathStart = url.indexOf("/", url.indexOf("//") + 2);
    if (url.startsWith("/v2", pathStart)) return deps.v2(req);
    return other(req);
  };
}
