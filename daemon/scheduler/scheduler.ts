/**
 * The one scheduler for background work. Tasks ({@link Task}) wait in a queue ordered by
 * priority (then arrival); at most `concurrency` run at once; a task whose name is already
 * running waits; heavy tasks start only inside the maintenance windows; every start is
 * delayed by a random jitter of up to `jitterMs`, so periodic work of many appliances does
 * not hit an upstream at the same instant. Sources ({@link TaskSource}) are polled when
 * there is room. Periodic work is registered with {@link Scheduler.every}.
 *
 * The scheduler holds the {@link IoBudget}; tasks receive it as `ctx.io`. Its state
 * (queue, running, recent, budget) is read by the admin API. A finished task is logged at
 * debug level, a heavy one at info, a failed one as a warning.
 */
import type { Logger } from "../log";
import type { IoBudget } from "./budget";
import type { Task, TaskSource } from "./task";
import { type Window, inWindows } from "./windows";

/** Options for {@link Scheduler}. */
export interface SchedulerOptions {
  /** Tasks running at once (>= 1). */
  concurrency: number;
  /** Largest random delay before a task starts, in ms (0 = none). */
  jitterMs: number;
  /** Maintenance windows for heavy tasks; empty = always. */
  windows: readonly Window[];
  /** The clock (tests pass their own). */
  now?: () => Date;
}

interface Queued {
  task: Task;
  seq: number;
  notBefore: number;
  enqueued: number;
}

interface Running {
  task: Task;
  started: number;
  progress: string;
  controller: AbortController;
  done: Promise<void>;
}

/** A finished task, kept for the state. */
export interface Finished {
  name: string;
  startedAt: string;
  ms: number;
  outcome: "ok" | "failed" | "aborted";
  error?: string;
}

const RECENT = 20;

/** The background scheduler. */
export class Scheduler {
  private readonly queue: Queued[] = [];
  private readonly running = new Set<Running>();
  private readonly sources: TaskSource[] = [];
  private readonly recent: Finished[] = [];
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private seq = 0;
  private stopped = false;
  private tick: ReturnType<typeof setInterval> | undefined;

  constructor(
    readonly budget: IoBudget,
    private readonly options: SchedulerOptions,
    private readonly log: Logger,
  ) {}

  /** Starts the 1-second tick that re-checks windows and delays. */
  start(): void {
    this.tick ??= setInterval(() => this.pump(), 1000);
    (this.tick as { unref?: () => void }).unref?.();
  }

  /** Queues a task (after `delayMs` plus jitter). Returns false once the scheduler stopped. */
  add(task: Task, delayMs = 0): boolean {
    if (this.stopped) return false;
    const jitter = this.options.jitterMs > 0 && !task.prompt ? Math.random() * this.options.jitterMs : 0;
    this.queue.push({ task, seq: this.seq++, notBefore: Date.now() + delayMs + jitter, enqueued: Date.now() });
    this.queue.sort((a, b) => (b.task.priority ?? 0) - (a.task.priority ?? 0) || a.seq - b.seq);
    this.arm(delayMs + jitter);
    this.pump();
    return true;
  }

  /** Registers a source polled for tasks whenever there is room. */
  addSource(source: TaskSource): void {
    this.sources.push(source);
    this.sources.sort((a, b) => (b.priority ?? 0) - (a.priority ?? 0));
    this.pump();
  }

  /**
   * Runs `make()` every `intervalMs` (plus jitter): a task is queued once the previous one
   * of the same name has finished, so a slow run never piles up. The first run is after
   * `firstDelayMs` (default: one interval).
   */
  every(intervalMs: number, make: () => Task, firstDelayMs = intervalMs): void {
    const schedule = (delay: number) => {
      if (this.stopped) return;
      const inner = make();
      this.add({
        name: inner.name,
        priority: inner.priority,
        heavy: inner.heavy,
        run: async (ctx) => {
          try {
            await inner.run(ctx);
          } finally {
            schedule(intervalMs);
          }
        },
      }, delay);
    };
    schedule(firstDelayMs);
  }

  /** True when a task of this name is queued or running. */
  has(name: string): boolean {
    return this.queue.some((q) => q.task.name === name) || [...this.running].some((r) => r.task.name === name);
  }

  /** Queue, running tasks, recent results, windows and the budget, for the admin API. */
  state() {
    const now = Date.now();
    return {
      concurrency: this.options.concurrency,
      jitterMs: this.options.jitterMs,
      windows: this.options.windows.map((w) => w.text),
      inWindow: inWindows(this.options.windows, this.clock()),
      queue: this.queue.map((q) => ({
        name: q.task.name,
        priority: q.task.priority ?? 0,
        heavy: q.task.heavy ?? false,
        waitingMs: now - q.enqueued,
        startsInMs: Math.max(0, Math.round(q.notBefore - now)),
      })),
      running: [...this.running].map((r) => ({ name: r.task.name, heavy: r.task.heavy ?? false, runningMs: Math.round(now - r.started), progress: r.progress })),
      recent: [...this.recent],
      budget: this.budget.state(),
    };
  }

  /** Aborts running tasks, drops the queue, and waits (up to `graceMs`) for tasks to return. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopped = true;
    if (this.tick) clearInterval(this.tick);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
    const running = [...this.running];
    for (const r of running) r.controller.abort(new Error("the scheduler is stopping"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([Promise.allSettled(running.map((r) => r.done)), new Promise((res) => (timer = setTimeout(res, graceMs)))]);
    clearTimeout(timer);
  }

  private clock(): Date {
    return this.options.now?.() ?? new Date();
  }

  private arm(delay: number): void {
    if (delay <= 0 || this.stopped) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.pump();
    }, delay + 1);
    this.timers.add(timer);
  }

  private runningNamed(name: string): boolean {
    for (const r of this.running) if (r.task.name === name) return true;
    return false;
  }

  /** Starts whatever may start now. */
  private pump(): void {
    if (this.stopped) return;
    const now = Date.now();
    const windowOpen = inWindows(this.options.windows, this.clock());
    for (let i = 0; i < this.queue.length && this.running.size < this.options.concurrency; ) {
      const q = this.queue[i]!;
      if (q.notBefore > now || (q.task.heavy && !windowOpen) || this.runningNamed(q.task.name)) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      this.launch(q.task);
    }
    for (const source of this.sources) {
      while (this.running.size < this.options.concurrency) {
        const task = source.next();
        if (!task) break;
        if ((task.heavy && !windowOpen) || this.runningNamed(task.name)) {
          this.add(task);
          break;
        }
        this.launch(task);
      }
    }
  }

  private launch(task: Task): void {
    const controller = new AbortController();
    const entry: Running = { task, started: performance.now(), progress: "", controller, done: Promise.resolve() };
    const startedAt = new Date().toISOString();
    this.running.add(entry);
    this.log.debug("task started", { task: task.name });
    entry.done = (async () => {
      let outcome: Finished["outcome"] = "ok";
      let error: string | undefined;
      try {
        await task.run({ signal: controller.signal, io: this.budget, progress: (text) => (entry.progress = text) });
      } catch (err) {
        outcome = controller.signal.aborted ? "aborted" : "failed";
        error = (err as Error)?.message ?? String(err);
      }
      this.running.delete(entry);
      const ms = Math.round(performance.now() - entry.started);
      const finished: Finished = { name: task.name, startedAt, ms, outcome };
      if (error !== undefined) finished.error = error;
      this.recent.unshift(finished);
      this.recent.length = Math.min(this.recent.length, RECENT);
      if (outcome === "failed") this.log.warn("task failed", { task: task.name, ms, error });
      else {
        // routine tasks (stats and pull flushes, freshness checks) finish every minute or so:
        // debug only, so an idle registry writes no log lines; heavy ones (GC, scrub) at info
        const fields: Record<string, unknown> = { task: task.name, ms, outcome };
        if (entry.progress) fields.progress = entry.progress;
        if (task.heavy) this.log.info("task finished", { ...fields, budget: this.budget.state().background });
        else this.log.debug("task finished", fields);
      }
      this.pump();
    })();
  }
}
