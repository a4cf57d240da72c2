/**
 * The admin and extension APIs, on Elysia with typed routes. Loaded lazily by app.ts.
 */
import { Elysia } from "elysia";
import { VERSION } from "../version";

/** What the admin API reads. */
export interface AdminDeps {
  /** True once start-up recovery is done and the registry serves requests. */
  ready: () => boolean;
  /** Figures about the running registry. */
  info: () => Record<string, unknown>;
}

/** Builds the Elysia app and returns its request handler. */
export function createAdminApp(deps: AdminDeps): (req: Request) => Response | Promise<Response> {
  const started = Date.now();
  const app = new Elysia({ prefix: "/api/v1" }).get("/info", () => ({
    version: VERSION,
    ready: deps.ready(),
    uptimeSeconds: Math.round((Date.now() - started) / 1000),
    ...deps.info(),
  }));
  return (req) => app.handle(req);
}
