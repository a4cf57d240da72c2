/**
 * The contract between the scheduler and the background work it runs (sync, GC, scrub,
 * layout adoption, statistics flushes). Kept tiny on purpose, in zot's shape: a task has a
 * name and a run method; a source yields tasks lazily, each with a priority.
 *
 * ```ts
 * scheduler.add({ name: "scrub", priority: 1, heavy: true, async run(ctx) {
 *   for (const blob of blobs) {
 *     if (ctx.signal.aborted) return;            // stop promptly when asked
 *     await ctx.io.read(blob.size);               // wait for read budget (bytes + one op)
 *     ...
 *   }
 * }});
 * ```
 */
import type { BackgroundIo } from "./io";

export type { BackgroundIo } from "./io";

/** What a running task gets. */
export interface TaskContext {
  /** Aborted when the scheduler stops or the task is cancelled; a task returns soon after. */
  readonly signal: AbortSignal;
  /** The IO budget, for background reads and writes (see {@link BackgroundIo}). */
  readonly io: BackgroundIo;
  /** Reports progress shown in the scheduler's state (free text, e.g. "3/12 blobs"). */
  progress(text: string): void;
}

/** One unit of background work. */
export interface Task {
  /** Shown in the state and logs; tasks with the same name never run at the same time. */
  readonly name: string;
  /** Higher runs first (default 0). */
  readonly priority?: number;
  /** A heavy task (GC, scrub, full sync) starts only inside a maintenance window. */
  readonly heavy?: boolean;
  /** Started without the scheduler's random jitter (start-up work requests may wait on). */
  readonly prompt?: boolean;
  /** Does the work; a thrown error is logged and the task is not retried by the scheduler. */
  run(ctx: TaskContext): Promise<void>;
}

/**
 * A lazy producer of tasks, polled when the scheduler has room: return the next task to
 * run, or undefined when there is nothing to do right now. `priority` orders sources.
 */
export interface TaskSource {
  readonly name: string;
  readonly priority?: number;
  next(): Task | undefined;
}
