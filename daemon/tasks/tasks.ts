/**
 * Long admin tasks (GC, scrub, retention, sync runs) followed by id instead of holding a
 * request open until they end. `POST /api/v1/storage/gc?async=true` (or with the header
 * `Prefer: respond-async`) answers 202 with a task; `GET /api/v1/tasks/{id}` shows its state,
 * progress (done/total items, bytes/totalBytes), start and end times and its result.
 *
 * Bounded: at most {@link TaskOptions.maxRunning} run at once (one more is refused with 429
 * by the caller) and the newest {@link TaskOptions.keepFinished} finished tasks are kept;
 * older ones are forgotten (their GET is a 404). Pure bookkeeping: no timers, no I/O.
 */
import type { TaskState, TaskView } from "./wire";

export type { TaskState, TaskView } from "./wire";

/** What a task reports while it runs; every field optional, totals unknown until set. */
export interface TaskProgress {
  done?: number;
  total?: number;
  bytes?: number;
  totalBytes?: number;
}

/** Limits of a {@link TaskBoard}. */
export interface TaskOptions {
  /** Tasks running at once; default 4. */
  maxRunning?: number;
  /** Finished tasks kept for GET; default 32. */
  keepFinished?: number;
}

/** Thrown by {@link TaskBoard.start} when {@link TaskOptions.maxRunning} tasks already run. */
export class TooManyTasksError extends Error {}

interface Entry {
  view: TaskView;
  seq: number;
  ended: Promise<TaskView>;
}

/** The tasks of one daemon: started, followed, and forgotten in order. */
export class TaskBoard {
  private readonly tasks = new Map<string, Entry>();
  private seq = 0;
  private readonly maxRunning: number;
  private readonly keepFinished: number;

  constructor(options: TaskOptions = {}) {
    this.maxRunning = options.maxRunning ?? 4;
    this.keepFinished = options.keepFinished ?? 32;
  }

  /**
   * Starts `run` as a task of `kind` and returns its view at once. `run` receives a progress
   * callback; its resolved value becomes the result, a rejection the error (message only).
   * Throws {@link TooManyTasksError} when too many tasks run.
   */
  start(kind: string, run: (progress: (p: TaskProgress) => void) => Promise<unknown>): TaskView {
    if (this.full()) throw new TooManyTasksError(`${this.maxRunning} tasks are running already; wait for one to finish`);
    const seq = ++this.seq;
    const id = `${kind}-${Date.now().toString(36)}-${seq}`;
    const view: TaskView = { id, kind, state: "running", done: 0, total: null, bytes: 0, totalBytes: null, started: new Date().toISOString(), finished: null, result: null, error: null };
    const progress = (p: TaskProgress) => {
      if (view.state !== "running") return;
      if (p.done !== undefined) view.done = p.done;
      if (p.total !== undefined) view.total = p.total;
      if (p.bytes !== undefined) view.bytes = p.bytes;
      if (p.totalBytes !== undefined) view.totalBytes = p.totalBytes;
    };
    const end = (state: TaskState, result: unknown, error: string | null) => {
      view.state = state;
      view.result = result;
      view.error = error;
      view.finished = new Date().toISOString();
      this.trim();
    };
    // started on the next turn so that the caller has the view before any progress
    const ended = Promise.resolve()
      .then(() => run(progress))
      .then((result) => end("succeeded", result ?? null, null), (err) => end("failed", null, err instanceof Error ? err.message : String(err)))
      .then(() => view);
    this.tasks.set(id, { view, seq, ended });
    return view;
  }

  /** True when {@link TaskOptions.maxRunning} tasks run (a {@link start} would throw). */
  full(): boolean {
    let running = 0;
    for (const e of this.tasks.values()) if (e.view.state === "running") running++;
    return running >= this.maxRunning;
  }

  /** Resolves with the task's final view once it has ended (undefined for an unknown id). */
  settled(id: string): Promise<TaskView> | undefined {
    return this.tasks.get(id)?.ended;
  }

  /** One task by id, or undefined (unknown or forgotten). */
  get(id: string): TaskView | undefined {
    return this.tasks.get(id)?.view;
  }

  /** Every known task, newest first. */
  list(): TaskView[] {
    return [...this.tasks.values()].sort((a, b) => b.seq - a.seq).map((e) => e.view);
  }

  private trim(): void {
    const finished = [...this.tasks.values()].filter((e) => e.view.state !== "running").sort((a, b) => a.seq - b.seq);
    for (const e of finished.slice(0, Math.max(0, finished.length - this.keepFinished))) this.tasks.delete(e.view.id);
  }
}

/** True when a request asks for an asynchronous answer (`?async=true|1` or `Prefer: respond-async`). */
export function wantsAsync(query: Record<string, string | undefined>, headers: Record<string, string | undefined>): boolean {
  if (query.async === "true" || query.async === "1") return true;
  return /(^|,)\s*respond-async\s*(,|;|$)/i.test(headers.prefer ?? "");
}
