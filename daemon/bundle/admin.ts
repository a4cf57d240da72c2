/**
 * `POST /api/v1/bundle/import?path=…`: an admin imports a bundle that sits on the device
 * (a USB stick mounted under one of `[bundle] import_dirs`), in the daemon, as background
 * work under the scheduler's IO budget (local.ts), followed as a task with progress. The
 * path must resolve (symbolic links followed) inside one of the listed directories: the
 * endpoint reads nothing else of the device. Loaded on the first call.
 */
import { realpath, stat } from "node:fs/promises";
import { sep } from "node:path";
import { ClientError, EXIT } from "../client/errors";
import type { Registry } from "../registry/registry";
import type { BackgroundIo } from "../scheduler/task";
import type { Storage } from "../storage/api";
import type { TaskProgress } from "../tasks/tasks";
import { importBundle, type ImportReport } from "./import";
import { localTarget } from "./local";

/** What the admin import needs of the daemon. */
export interface AdminImportDeps {
  registry: Registry;
  storage: Storage;
  io: BackgroundIo;
  /** `[bundle] import_dirs`. */
  dirs: readonly string[];
}

/** An error the admin API answers with `status`. */
class ImportRefused extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

const STATUS: Record<number, number> = { [EXIT.usage]: 400, [EXIT.denied]: 403, [EXIT.notFound]: 404 };

/** Imports the bundle at `path` (inside `deps.dirs`); rejects with an {@link ImportRefused} carrying the HTTP status. */
export async function adminImport(deps: AdminImportDeps, path: string, options: { dryRun: boolean; repo?: string }, progress: (p: TaskProgress) => void): Promise<ImportReport> {
  let real: string;
  try {
    real = await realpath(path);
    if (!(await stat(real)).isFile()) throw new Error("not a regular file");
  } catch (err) {
    throw new ImportRefused(`cannot read the bundle "${path}": ${(err as Error).message}`, 404);
  }
  const allowed = await Promise.all(deps.dirs.map((d) => realpath(d).catch(() => undefined)));
  if (!allowed.some((d) => d !== undefined && real.startsWith(d.endsWith(sep) ? d : d + sep))) {
    throw new ImportRefused(`"${path}" is not inside a directory of [bundle] import_dirs (${deps.dirs.join(", ")})`, 403);
  }
  try {
    return await importBundle(localTarget(deps.registry, deps.storage, { io: deps.io }), real, {
      dryRun: options.dryRun,
      ...(options.repo !== undefined && { repo: options.repo }),
      progress: { update: (p) => progress({ done: p.done, bytes: p.bytes, ...(p.total !== null && { total: p.total }), ...(p.totalBytes !== null && { totalBytes: p.totalBytes }) }), finish: () => {} },
    });
  } catch (err) {
    if (err instanceof ClientError) throw new ImportRefused(err.message, STATUS[err.exit] ?? 422);
    throw err;
  }
}
