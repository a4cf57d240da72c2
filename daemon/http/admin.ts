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
  /** The background scheduler's state: queue, running tasks, recent results, IO budget. */
  scheduler?: () => unknown;
  /** Sync's state: upstreams (up/down), fetches in flight, last runs, pins. */
  sync?: () => unknown;
  /** Queues a full sync of the named upstream; false when there is none. */
  syncRun?: (name: string) => boolean;
}

/** Builds the Elysia app and returns its request handler. */
export function createAdminApp(deps: AdminDeps): (req: Request) => Response | Promise<Response> {
  const started = Date.now();
  const app = new Elysia({ prefix: "/api/v1" }).get("/info", () => ({
    version: VERSION,
    ready: deps.ready(),
    uptimeSeconds: Math.round((Date.now() - started) / 1000),
    ...deps.info(),
  }))
    .get("/scheduler", () => deps.scheduler?.() ?? {})
    .get("/sync", () => deps.sync?.() ?? {})
    .post("/sync/:name/run", ({ params, set }) => {
      if (deps.syncRun?.(params.name)) {
        set.status = 202;
        return { queued: params.name };
      }
      set.status = 404;
      return { error: `no upstream named "${params.name}" in [[sync.registries]]` };
    });
  return (req) => app.handle(req);
}
