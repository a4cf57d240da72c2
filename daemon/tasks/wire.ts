/**
 * The admin task API's wire type: what `GET /api/v1/tasks/{id}` (and a 202 to an
 * `?async=true` action) answers. One declaration for the three parties that speak it: the
 * daemon's task board (daemon/tasks/tasks.ts) writes it, the CLI client (daemon/client/)
 * and the web UI (ui/src/tasks.ts) read it. Pure types: this module imports nothing, so the
 * client and the UI bundle take none of the daemon with it.
 */

/** Where a task is in its life. */
export type TaskState = "running" | "succeeded" | "failed";

/** A task as the API shows it (JSON). */
export interface TaskView {
  id: string;
  /** What runs: "gc", "scrub", "retention", "sync", "bundle-import", … */
  kind: string;
  state: TaskState;
  /** Items done so far, and of how many (null until known). */
  done: number;
  total: number | null;
  /** Bytes done so far, and of how many (null until known). */
  bytes: number;
  totalBytes: number | null;
  /** ISO 8601 times; `finished` is null while it runs. */
  started: string;
  finished: string | null;
  /** The action's answer once it succeeded (what the synchronous call returns). */
  result: unknown;
  /** Why it failed; null otherwise. */
  error: string | null;
}
