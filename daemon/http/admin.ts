/**
 * The admin and extension APIs, on Elysia with typed routes, and their OpenAPI document
 * (@elysiajs/openapi) with Swagger UI. Loaded lazily by app.ts.
 *
 * The UI works with no internet: its script and stylesheet come from the swagger-ui-dist
 * package, embedded in the binary (`with { type: "file" }`) and served under /api/docs/assets/,
 * and the validator badge (which would call validator.swagger.io) is off.
 */
import { openapi } from "@elysiajs/openapi";
import { Elysia, t } from "elysia";
import swaggerCss from "swagger-ui-dist/swagger-ui.css" with { type: "file" };
import swaggerJs from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "file" };
import { resourceError } from "../registry/translate";
import { errorHeaders } from "./headers";
import { fileBody } from "../platform/serve";
import { VERSION } from "../version";
import { TaskBoard, TooManyTasksError, wantsAsync, type TaskProgress } from "../tasks/tasks";

/** What the admin API reads. */
export interface AdminDeps {
  /** True once start-up recovery is done and the registry serves requests. */
  ready: () => boolean;
  /** When the daemon started (ms since the epoch); default: when the process started. */
  startedAt?: number;
  /** Figures about the running registry. */
  info: () => Record<string, unknown>;
  /** The background scheduler's state: queue, running tasks, recent results, IO budget. */
  scheduler?: () => unknown;
  /** Sync's state: upstreams (up/down), fetches in flight, last runs, pins. */
  sync?: () => unknown;
  /** Queues a full sync of the named upstream; false when there is none. `done` is told when the run ends. */
  syncRun?: (name: string, done?: (error?: string, report?: unknown) => void) => boolean;
  /** The storage lifecycle (GC, scrub, retention, quota, write accounting), when present. */
  storage?: StorageAdmin;
  /**
   * Imports the air-gap bundle at `path` (on the device) under the IO budget; absent when
   * `[bundle] import_dirs` is empty. Rejects with an error whose `status` (400, 403, 404,
   * 422) the synchronous answer takes.
   */
  bundleImport?: (path: string, options: { dryRun: boolean; repo?: string }, progress: (p: TaskProgress) => void) => Promise<unknown>;
}

/** What the storage admin routes call. */
export interface StorageAdmin {
  /** Usage, quota, write counters, scrub counters, last passes (sent as JSON). */
  stats(): object;
  /** Quarantined blobs. */
  quarantine(): unknown[];
  /** A GC pass; `progress` (optional) is told repositories done out of the total (the pool sweep counts as one). */
  gc(dryRun: boolean, progress?: (p: TaskProgress) => void): Promise<unknown>;
  /** A retention pass; `progress` (optional) is told repositories done out of the total. */
  retention(dryRun: boolean, progress?: (p: TaskProgress) => void): Promise<unknown>;
  /** A scrub; `progress` (optional) is told blobs and bytes checked out of the totals. */
  scrub(progress?: (p: TaskProgress) => void): Promise<unknown>;
}

/** Where the document and the UI are served. */
export const DOCS_PATH = "/api/docs";

const ASSETS: Record<string, { path: string; type: string }> = {
  "swagger-ui-bundle.js": { path: swaggerJs, type: "text/javascript; charset=utf-8" },
  "swagger-ui.css": { path: swaggerCss, type: "text/css; charset=utf-8" },
};

// `url` is spread over the plugin's own relative spec URL (which would resolve against
// /api/ from the UI page); its options type omits the key, hence a variable, not a literal.
const SWAGGER = {
  url: `${DOCS_PATH}/json`,
  cdn: `${DOCS_PATH}/assets/swagger-ui-bundle.js`,
  theme: `${DOCS_PATH}/assets/swagger-ui.css`,
  validatorUrl: "none",
  autoDarkMode: false,
};

const Info = t.Object(
  {
    version: t.String({ description: "berth's version" }),
    ready: t.Boolean({ description: "Start-up recovery is done and requests are served" }),
    uptimeSeconds: t.Number(),
    root: t.String({ description: "Storage root" }),
    uploadsInFlight: t.Number(),
    manifestCacheBytes: t.Number(),
    rssBytes: t.Number({ description: "Resident memory of the daemon" }),
  },
  { additionalProperties: true },
);

function dryRun(query: Record<string, string | undefined>): boolean {
  return query.dry_run === "true" || query.dry_run === "1";
}

function noStorage(set: { status?: number | string }): { error: string } {
  set.status = 404;
  return { error: "the storage lifecycle is not running" };
}

/**
 * Runs `work` as the request asks: synchronously (the result is the answer, as before), or
 * with `?async=true` / `Prefer: respond-async` as a task (202, the task, `Location` of it).
 */
function maybeAsync(
  tasks: TaskBoard,
  kind: string,
  ctx: { query: Record<string, string | undefined>; headers: Record<string, string | undefined>; set: { status?: number | string; headers: Record<string, string | number> } },
  work: (progress: (p: TaskProgress) => void) => Promise<unknown>,
): unknown {
  if (!wantsAsync(ctx.query, ctx.headers)) return work(() => {});
  try {
    const task = tasks.start(kind, work);
    ctx.set.status = 202;
    ctx.set.headers["Location"] = `/api/v1/tasks/${task.id}`;
    return task;
  } catch (err) {
    if (!(err instanceof TooManyTasksError)) throw err;
    ctx.set.status = 429;
    return { error: err.message };
  }
}

/** Builds the Elysia app and returns its request handler. */
export function createAdminApp(deps: AdminDeps): (req: Request) => Response | Promise<Response> {
  // tasks live as long as the admin app (built on the first /api request): none before
  const tasks = new TaskBoard();
  // not the time of this call: the admin app is built on the first /api request
  const started = deps.startedAt ?? performance.timeOrigin;
  const app = new Elysia()
    // running out of descriptors or space is not the API's fault: 503/507, not 500
    .onError(({ error }) => {
      const refused = resourceError(error);
      if (!refused) return undefined;
      return new Response(JSON.stringify({ error: refused.detail }), { status: refused.status, headers: { "Content-Type": "application/json", ...errorHeaders(refused) } });
    })
    .use(
      openapi({
        path: DOCS_PATH,
        specPath: `${DOCS_PATH}/json`,
        provider: "swagger-ui",
        swagger: SWAGGER,
        exclude: { paths: [`${DOCS_PATH}/assets/:file`] },
        documentation: {
          info: { title: "berth admin and extension API", version: VERSION, description: "Administration of a berth registry. The OCI distribution API (/v2/) is specified by the OCI distribution-spec." },
          tags: [
            { name: "admin", description: "State of the running registry" },
            { name: "storage", description: "Garbage collection, retention, scrub, quotas" },
          ],
        },
      }),
    )
    .get(`${DOCS_PATH}/assets/:file`, ({ params, status }) => {
      // own keys only: "constructor" or "__proto__" must be a 404, not an inherited value
      const asset = Object.hasOwn(ASSETS, params.file) ? ASSETS[params.file] : undefined;
      if (!asset) return status(404, "no such asset");
      return new Response(fileBody(asset.path), { headers: { "Content-Type": asset.type, "Cache-Control": "max-age=86400" } });
    }, { detail: { hide: true } })
    .group("/api/v1", (api) =>
      api.get(
        "/info",
        () => ({
          version: VERSION,
          ready: deps.ready(),
          uptimeSeconds: Math.round((Date.now() - started) / 1000),
          ...(deps.info() as { root: string; uploadsInFlight: number; manifestCacheBytes: number; rssBytes: number }),
        }),
        { response: Info, detail: { tags: ["admin"], summary: "Version, readiness and figures of the running registry" } },
      )
        .get("/scheduler", () => deps.scheduler?.() ?? {}, {
          detail: { tags: ["admin"], summary: "Background scheduler: queue, running tasks, recent results, IO budget" },
        })
        .get("/sync", () => deps.sync?.() ?? {}, {
          detail: { tags: ["admin"], summary: "Upstream sync: upstreams up or down, fetches in flight, last runs, pins" },
        })
        .post(
          "/sync/:name/run",
          ({ params, set, query, headers }) => {
            const missing = () => {
              set.status = 404;
              return { error: `no upstream named "${params.name}" in [[sync.registries]]` };
            };
            if (wantsAsync(query, headers)) {
              if (tasks.full()) return maybeAsync(tasks, "sync", { query, headers, set }, async () => undefined);
              // the task ends when the queued run does
              let finish!: (error?: string, report?: unknown) => void;
              const ended = new Promise<unknown>((resolve, reject) => (finish = (error, report) => (error === undefined ? resolve({ upstream: params.name, report: report ?? null }) : reject(new Error(error)))));
              if (!deps.syncRun?.(params.name, finish)) return missing();
              return maybeAsync(tasks, "sync", { query, headers, set }, () => ended);
            }
            if (deps.syncRun?.(params.name)) {
              set.status = 202;
              return { queued: params.name };
            }
            return missing();
          },
          { detail: { tags: ["admin"], summary: "Queue a full sync of one upstream now (?async=true: as a task that ends with the run)" } },
        )
        .get("/tasks", () => ({ tasks: tasks.list() }), {
          detail: { tags: ["admin"], summary: "Long tasks started with ?async=true, newest first (the last 32 finished are kept)" },
        })
        .get("/tasks/:id", ({ params, set }) => {
          const task = tasks.get(params.id);
          if (task) return task;
          set.status = 404;
          return { error: `no task "${params.id}" (unknown, or finished long enough ago to be forgotten)` };
        }, {
          detail: { tags: ["admin"], summary: "One task: state, done/total, bytes, started/finished, result" },
        })
        .get("/storage", ({ set }) => (deps.storage ? deps.storage.stats() : noStorage(set)), {
          detail: { tags: ["storage"], summary: "Usage, quotas, write counters, scrub counters, last passes" },
        })
        .get("/storage/quarantine", ({ set }) => (deps.storage ? { quarantined: deps.storage.quarantine() } : noStorage(set)), {
          detail: { tags: ["storage"], summary: "Blobs moved to quarantine by scrub" },
        })
        .post("/storage/gc", ({ query, set, headers }) => {
          const storage = deps.storage;
          return storage ? maybeAsync(tasks, "gc", { query, headers, set }, (progress) => storage.gc(dryRun(query), progress)) : noStorage(set);
        }, {
          detail: { tags: ["storage"], summary: "Run a garbage-collection pass now (?dry_run=true reports only; ?async=true answers 202 with a task)" },
        })
        .post("/storage/retention", ({ query, set, headers }) => {
          const storage = deps.storage;
          return storage ? maybeAsync(tasks, "retention", { query, headers, set }, (progress) => storage.retention(dryRun(query), progress)) : noStorage(set);
        }, {
          detail: { tags: ["storage"], summary: "Apply the retention policies now (?dry_run=true reports only; ?async=true answers 202 with a task)" },
        })
        .post("/bundle/import", async ({ query, set, headers }) => {
          const run = deps.bundleImport;
          if (!run) return ((set.status = 404), { error: "bundle import through the admin API is off: list the directories it may read in [bundle] import_dirs" });
          if (!query.path) return ((set.status = 400), { error: "give the bundle's path on the device: ?path=/media/usb/bundle.tar" });
          const path = query.path;
          const options = { dryRun: dryRun(query), ...(query.repo ? { repo: query.repo } : {}) };
          if (wantsAsync(query, headers)) return maybeAsync(tasks, "bundle-import", { query, headers, set }, (progress) => run(path, options, progress));
          try {
            return await run(path, options, () => {});
          } catch (err) {
            const status = (err as { status?: number }).status;
            if (status === undefined) throw err;
            set.status = status;
            return { error: (err as Error).message };
          }
        }, {
          detail: { tags: ["storage"], summary: "Import an air-gap bundle (oci-archive) from a path on the device under [bundle] import_dirs (?dry_run=true lists what would change; ?repo= names the repository of entries that name none; ?async=true answers 202 with a task)" },
        })
        .post("/storage/scrub", ({ query, set, headers }) => {
          const storage = deps.storage;
          return storage ? maybeAsync(tasks, "scrub", { query, headers, set }, (progress) => storage.scrub(progress)) : noStorage(set);
        }, {
          detail: { tags: ["storage"], summary: "Re-hash every stored blob now; mismatches go to quarantine (?async=true answers 202 with a task)" },
        }),
    );
  return (req) => app.handle(req);
}
