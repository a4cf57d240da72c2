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
  /** The storage lifecycle (GC, scrub, retention, quota, write accounting), when present. */
  storage?: StorageAdmin;
}

/** What the storage admin routes call. */
export interface StorageAdmin {
  /** Usage, quota, write counters, scrub counters, last passes. */
  stats(): Record<string, unknown>;
  /** Quarantined blobs. */
  quarantine(): unknown[];
  gc(dryRun: boolean): Promise<unknown>;
  retention(dryRun: boolean): Promise<unknown>;
  scrub(): Promise<unknown>;
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
  const storage = deps.storage;
  if (storage) {
    const dry = (q: Record<string, string | undefined>) => q.dry_run === "true" || q.dry_run === "1";
    app
      .get("/storage", () => storage.stats())
      .get("/storage/quarantine", () => ({ quarantined: storage.quarantine() }))
      .post("/storage/gc", ({ query }) => storage.gc(dry(query)))
      .post("/storage/retention", ({ query }) => storage.retention(dry(query)))
      .post("/storage/scrub", () => storage.scrub());
  }
  return (req) => app.handle(req);
}
