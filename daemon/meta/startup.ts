/**
 * The start-up work berth does after it listens: the walk of every layout that removes the
 * temp files a killed run left (storage/store.ts `sweepTemps`), and the reconcile of the
 * derived index with every repository's index.json (a layout dropped in, changed or removed
 * while berth was stopped). On a store of 10,000 repositories both take seconds; neither is
 * needed to answer a request correctly, so they run as one scheduler task right after the
 * server listens, within the IO budget and yielding to requests between directories.
 *
 * Why requests stay correct meanwhile: a temp file is never served (its name is neither a
 * digest nor index.json), and this process's own temp files are told apart by their name
 * (platform/disk.ts `OWN_TEMP_PREFIX`). Manifests, tags and blobs are served from the layout,
 * never from the derived index; what does read the derived index reconciles the repository
 * first (referrers, deletes, pushes: registry/registry.ts) or waits for {@link StartupWork.done}
 * (the catalog reconciles everything itself; GC, retention, scrub and search wait).
 */
import type { Logger } from "../log";
import type { Scheduler } from "../scheduler/scheduler";
import type { Task, TaskContext } from "../scheduler/task";

/** What the start-up work is made of (main wiring passes the roots and the registry). */
export interface StartupDeps {
  scheduler: Scheduler;
  /** Removes the last run's temp files in every root; resolves to how many, and every repository found. */
  sweep(pace: (ops: number) => Promise<void>): Promise<{ tempFilesRemoved: number; repositories: string[] }>;
  /** Reconciles the derived index with `repositories`; resolves to how many were re-indexed. */
  reconcileAll(repositories: string[], pace: () => Promise<void>): Promise<number>;
  log: Logger;
}

/** What the start-up work found, logged when it is done. */
export interface StartupReport {
  repositories: number;
  reindexed: number;
  tempFilesRemoved: number;
  ms: number;
  /** Set when it stopped early (berth stopping) or failed; then the next start does it again. */
  error?: string;
}

/** Longest stretch of work between two turns of the event loop (requests are served in between). */
const SLICE_MS = 8;

/** The start-up work: built before the server listens (so handlers can wait on it), started after. */
export class StartupWork {
  /** Resolves when the work is done, failed or was cancelled (never rejects). */
  readonly done: Promise<StartupReport>;
  private finish!: (r: StartupReport) => void;
  private report: StartupReport | undefined;

  constructor(private readonly deps: StartupDeps) {
    this.done = new Promise((resolve) => (this.finish = resolve));
  }

  /** Queues the work on the scheduler (call once the server listens). */
  start(): void {
    const queued = this.deps.scheduler.add({ name: "start-up sweep", priority: 1000, prompt: true, run: (ctx) => this.run(ctx) });
    if (!queued) this.settle({ repositories: 0, reindexed: 0, tempFilesRemoved: 0, ms: 0, error: "the scheduler had stopped" });
  }

  /** `task`, waiting for {@link done} before it runs (periodic GC, retention and scrub). */
  before(task: Task): Task {
    return { ...task, run: async (ctx) => {
      await this.done;
      return task.run(ctx);
    } };
  }

  /** True once {@link done} has resolved. */
  settled(): boolean {
    return this.report !== undefined;
  }

  /** Resolves {@link done} for whoever waits (berth stopping before the task ran). */
  cancel(): void {
    this.settle({ repositories: 0, reindexed: 0, tempFilesRemoved: 0, ms: 0, error: "cancelled: berth is stopping" });
  }

  /**
   * Waits for {@link done} at most `ms`; true when it is done. For a request with a
   * deadline (search) that answers a retryable error instead of waiting longer.
   */
  async within(ms: number): Promise<boolean> {
    if (this.report) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    try {
      return await Promise.race([this.done.then(() => true), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private settle(r: StartupReport): void {
    if (this.report) return;
    this.report = r;
    this.finish(r);
  }

  private async run(ctx: TaskContext): Promise<void> {
    const t0 = performance.now();
    let slice = performance.now();
    const turn = async () => {
      if (performance.now() - slice < SLICE_MS) return;
      await new Promise<void>((resolve) => setImmediate(resolve));
      slice = performance.now();
    };
    const pace = async (ops: number) => {
      await ctx.io.take("read", 0, ops, ctx.signal);
      await turn();
    };
    const report: StartupReport = { repositories: 0, reindexed: 0, tempFilesRemoved: 0, ms: 0 };
    try {
      const { tempFilesRemoved, repositories } = await this.deps.sweep(pace);
      report.tempFilesRemoved = tempFilesRemoved;
      report.repositories = repositories.length;
      ctx.progress(`temp files swept; reconciling ${repositories.length} repositories`);
      await turn();
      report.reindexed = await this.deps.reconcileAll(repositories, () => pace(1));
    } catch (err) {
      report.error = (err as Error)?.message ?? String(err);
      throw err;
    } finally {
      report.ms = Math.round(performance.now() - t0);
      if (report.error) this.deps.log.warn("start-up sweep stopped early: the next start does it again", { ...report });
      else this.deps.log.info("start-up sweep finished", { ...report });
      this.settle(report);
    }
  }
}
