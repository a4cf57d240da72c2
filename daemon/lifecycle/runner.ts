/**
 * A minimal periodic runner for background tasks, behind the task shape the scheduler
 * (issue 4) takes: `{ name, heavy, run(signal) }`. It exists until that scheduler is merged;
 * at the merge the tasks from `Lifecycle.tasks` are handed to it and this file goes.
 *
 * Each task runs every `intervalMs` (0 = never), never overlapping itself; a failure is
 * logged and the next run happens on schedule. Timers do not keep the process alive.
 * `stop()` aborts runs in flight and waits for them.
 */
import type { Logger } from "../log";

/** A background task, as the scheduler takes it. */
export interface Task {
  readonly name: string;
  /** Heavy tasks (long I/O: scrub, GC) are the ones a scheduler keeps to maintenance windows. */
  readonly heavy: boolean;
  run(signal: AbortSignal): Promise<void>;
}

/** Runs tasks on fixed intervals. */
export class IntervalRunner {
  private readonly timers: ReturnType<typeof setInterval>[] = [];
  private readonly running = new Map<string, Promise<void>>();
  private readonly abort = new AbortController();

  constructor(private readonly log: Logger) {}

  /** Schedules `task` every `intervalMs` milliseconds (0 = not at all). */
  every(task: Task, intervalMs: number): void {
    if (intervalMs <= 0) return;
    const timer = setInterval(() => void this.runNow(task), intervalMs);
    timer.unref?.();
    this.timers.push(timer);
  }

  /** Runs `task` now unless it is already running (then joins that run). */
  runNow(task: Task): Promise<void> {
    const current = this.running.get(task.name);
    if (current) return current;
    if (this.abort.signal.aborted) return Promise.resolve();
    const run = task
      .run(this.abort.signal)
      .catch((err) => this.log.error("background task failed", { task: task.name, error: err }))
      .finally(() => this.running.delete(task.name));
    this.running.set(task.name, run);
    return run;
  }

  /** Stops the timers, aborts runs in flight and waits for them to end. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.abort.abort();
    await Promise.all(this.running.values());
  }
}
