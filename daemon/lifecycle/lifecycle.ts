/**
 * The storage lifecycle of one running registry, composed: usage statistics, touch marks,
 * garbage collection, scrubbing, retention, quota with eviction, write accounting, and the
 * background tasks that run them. The registry reports what it serves to the lifecycle's
 * marks (touch marks, pull/push statistics), so those are made first; the lifecycle, whose
 * collectors need the registry, is built in one step after it:
 *
 *   const marks = new LifecycleMarks(options.gc.graceMs, new UsageStats(db));
 *   const registry = new Registry(store, meta, { ..., hooks: marks.hooks }, log);
 *   const lc = new Lifecycle({ store, registry, meta, marks, log, options });
 *   lc.start(scheduler.every);                               // tasks on the scheduler
 *   ...; await lc.close();                                   // flushes statistics
 *
 * The store asks the lifecycle to admit upload bytes (quota), and the lifecycle is built over
 * the store: that one edge stays late-bound, by whoever builds both (main.ts, late.ts).
 */
import type { Logger } from "../log";
import type { Meta } from "../meta/meta";
import type { UsageStats } from "../meta/usage";
import type { DiskCounters } from "../platform/countingdisk";
import { readProcIo } from "../platform/procio";
import type { RegistryHooks } from "../registry/hooks";
import type { Registry } from "../registry/registry";
import type { DedupeFigures, Storage } from "../storage/api";
import { type EvictionRecord, Evictor } from "./evict";
import { type Excluded, GarbageCollector, type GcOptions, type GcReport } from "./gc";
import { PinPatterns, RepoPatterns } from "./patterns";
import { Quota, type QuotaFigures, type QuotaOptions } from "./quota";
import { Retention, type RetentionPolicy, type RetentionReport } from "./retention";
import type { Task } from "../scheduler/task";
import { type ScrubCounters, Scrubber, type ScrubProgress, type ScrubReport } from "./scrub";
import { Touches } from "./touches";

/** Everything the lifecycle is configured with (times in milliseconds). */
export interface LifecycleOptions {
  gc: Omit<GcOptions, "maxManifestBytes"> & { intervalMs: number };
  scrubIntervalMs: number;
  retention: { intervalMs: number; dryRun: boolean; policies: RetentionPolicy[] };
  quota: QuotaOptions & { evictable: string[]; pinned: string[] };
  statsFlushMs: number;
  maxManifestBytes: number;
}

/**
 * What the registry tells the lifecycle while it serves, all in memory: touch marks (GC's
 * grace for blobs just written) and pull/push statistics. Made before the registry, which
 * takes {@link LifecycleMarks.hooks}; the {@link Lifecycle} built after it reads them.
 */
export class LifecycleMarks {
  readonly touches: Touches;

  /** `graceMs`: how long a touch mark protects a blob (`[gc] grace`); `usage` may be shared by several roots. */
  constructor(graceMs: number, readonly usage: UsageStats) {
    this.touches = new Touches(graceMs);
  }

  /** Hooks for the registry: statistics and touch marks. */
  readonly hooks: RegistryHooks = {
    pulled: (repo, reference, digest) => this.usage.pulled(repo, reference, digest),
    pushed: (repo, digest, tags) => this.usage.pushed(repo, digest, tags),
    deleted: (repo, reference, blobs) => {
      this.usage.forget(repo, reference);
      if (blobs) this.touches.settle(repo, blobs);
    },
    touched: (repo, digest) => this.touches.touch(repo, digest),
  };
}

/** Everything a {@link Lifecycle} is built over. */
export interface LifecycleDeps {
  store: Storage;
  /** The registry over `store`, built with `marks.hooks`. */
  registry: Registry;
  meta: Meta;
  marks: LifecycleMarks;
  log: Logger;
  options: LifecycleOptions;
  /** Bytes and operations berth wrote through the counting disk (write accounting), when counted. */
  diskCounters?: DiskCounters;
}

/** The storage lifecycle of one store. */
export class Lifecycle {
  readonly touches: Touches;
  readonly usage: UsageStats;
  readonly quota: Quota;
  /** The evictor: sync marks repositories evictable through it. */
  readonly evictor: Evictor;
  /** The scrubber (counters and quarantine list). */
  readonly scrubber: Scrubber;
  private readonly collector: GarbageCollector;
  private readonly retainer: Retention;
  private readonly store: Storage;
  private readonly log: Logger;
  private readonly options: LifecycleOptions;
  private readonly diskCounters: DiskCounters | undefined;
  private lastGc: GcReport | undefined;
  private lastRetention: RetentionReport | undefined;
  private gcPasses = 0;

  constructor(deps: LifecycleDeps) {
    const { store, registry, meta, log, options: o } = deps;
    this.store = store;
    this.log = log;
    this.options = o;
    this.diskCounters = deps.diskCounters;
    this.touches = deps.marks.touches;
    this.usage = deps.marks.usage;
    this.collector = new GarbageCollector(
      { store, registry, meta, touches: this.touches, usage: this.usage, log },
      { ...o.gc, maxManifestBytes: o.maxManifestBytes },
    );
    this.retainer = new Retention(store, registry, this.usage, o.retention.policies, o.maxManifestBytes, log, Date.now, this.collector.cache);
    const evictor = new Evictor(
      { store, registry, gc: this.collector, usage: this.usage, log },
      new RepoPatterns(o.quota.evictable),
      new PinPatterns(o.quota.pinned),
      o.maxManifestBytes,
    );
    this.evictor = evictor;
    this.quota = new Quota(store, o.quota, log);
    this.quota.setEvictor((shortfall) => evictor.evictOne(shortfall));
    this.scrubber = new Scrubber(store, log);
  }

  /** Admission of upload bytes (quota, prefix quotas, free-space floor, eviction). */
  admit(repo: string, bytes: number): Promise<void> {
    return this.quota.admit(repo, bytes);
  }

  /**
   * One garbage-collection pass. A manual pass (admin API, `berth gc`) always logs one line
   * with its summary; a scheduled one (`scheduled`) only when it removed, held back or
   * skipped something.
   */
  async gc(opts: { dryRun?: boolean; signal?: AbortSignal; excluded?: Excluded; scheduled?: boolean } = {}): Promise<GcReport> {
    const report = await this.collector.run(opts);
    if (!report.dryRun) {
      this.lastGc = report;
      this.gcPasses++;
    }
    const s = summary(report);
    const h = report.heldBack;
    const noteworthy = s.removed > 0 || h.manifests + h.blobs + h.pool > 0 || report.skipped.length > 0 || report.unreadable.length > 0;
    if (!opts.scheduled || noteworthy) {
      this.log.info(report.dryRun ? "gc: dry run done (nothing changed)" : "gc: pass done", {
        trigger: opts.scheduled ? "scheduled" : "manual",
        ...s,
        emptyRepositories: report.emptyRepositories,
        skipped: report.skipped,
      });
    }
    return report;
  }

  /** One retention pass (dry when configured so, or asked); a manual one logs its summary. */
  async retention(opts: { dryRun?: boolean; signal?: AbortSignal; scheduled?: boolean } = {}): Promise<RetentionReport> {
    const dryRun = opts.dryRun ?? this.options.retention.dryRun;
    const report = await this.retainer.run({ dryRun, signal: opts.signal });
    if (dryRun && (report.tags.length > 0 || report.manifests.length > 0)) this.log.info("retention (dry run) would delete", { tags: report.tags, manifests: report.manifests });
    if (!opts.scheduled) {
      this.log.info(dryRun ? "retention: dry run done (nothing changed)" : "retention: pass done", {
        trigger: "manual",
        policies: this.retainer.active,
        tags: report.tags.length,
        manifests: report.manifests.length,
      });
    }
    if (!dryRun) this.lastRetention = report;
    return report;
  }

  /** One scrub; a manual one, or one that quarantined something, logs its summary. */
  async scrub(signal?: AbortSignal, scheduled = false, progress?: (p: ScrubProgress) => void): Promise<ScrubReport> {
    const report = await this.scrubber.run(signal, progress);
    if (!scheduled || report.quarantined.length > 0) {
      this.log.info("scrub: done", {
        trigger: scheduled ? "scheduled" : "manual",
        blobsChecked: report.blobsChecked,
        bytesChecked: report.bytesChecked,
        quarantined: report.quarantined.length,
        aborted: report.aborted,
      });
    }
    return report;
  }

  /**
   * The background tasks for the scheduler, each with its interval (0 = not periodic). GC
   * and scrub are heavy: the scheduler starts them only inside maintenance windows.
   */
  get tasks(): { task: Task; intervalMs: number }[] {
    const o = this.options;
    return [
      { task: { name: "gc", heavy: true, priority: 1, run: async (ctx) => void (await this.gc({ signal: ctx.signal, scheduled: true })) }, intervalMs: o.gc.intervalMs },
      { task: { name: "scrub", heavy: true, priority: 0, run: async (ctx) => void (await this.scrub(ctx.signal, true)) }, intervalMs: o.scrubIntervalMs },
      { task: { name: "retention", heavy: false, priority: 2, run: async (ctx) => void (await this.retention({ signal: ctx.signal, scheduled: true })) }, intervalMs: this.retainer.active ? o.retention.intervalMs : 0 },
    ];
  }

  /** Starts the statistics flusher and hands the periodic tasks to `every` (the scheduler's). */
  start(every: (intervalMs: number, make: () => Task) => void): void {
    this.usage.startFlushing(this.options.statsFlushMs, (err) => this.log.error("usage statistics flush failed", { error: err }));
    for (const { task, intervalMs } of this.tasks) if (intervalMs > 0) every(intervalMs, () => task);
  }

  /** Flushes the statistics (the scheduler that runs the tasks is stopped by its owner). */
  async close(): Promise<void> {
    this.usage.stopFlushing();
    this.usage.flush();
  }

  /** Figures for the admin API and the metrics endpoint. */
  stats(): LifecycleStats {
    const out: LifecycleStats = {
      writes: { berth: this.diskCounters ? { ...this.diskCounters } : undefined, process: readProcIo() },
      usage: this.usage.figures(),
      // the last pool walk's figure (quota, metrics) when under a minute old, else a walk of the pool alone
      dedupe: this.store.meter.dedupe(),
      gcPasses: this.gcPasses,
      touches: this.touches.size(),
      quota: this.quota.active ? this.quota.figures() : { active: false },
      scrub: { ...this.scrubber.counters },
      quarantined: this.scrubber.quarantine().length,
      evictions: this.evictor.history.slice(-20),
    };
    if (this.lastGc) out.lastGc = summary(this.lastGc);
    if (this.lastRetention) out.lastRetention = { tags: this.lastRetention.tags.length, manifests: this.lastRetention.manifests.length };
    return out;
  }
}

/** What {@link Lifecycle.stats} reports: the admin API's /storage and the metrics' source. */
export interface LifecycleStats {
  writes: { berth: DiskCounters | undefined; process: ReturnType<typeof readProcIo> };
  usage: ReturnType<UsageStats["figures"]>;
  /** Bytes dedupe saves (each pooled blob's size times its repository links - 1). */
  dedupe: DedupeFigures;
  gcPasses: number;
  touches: number;
  quota: QuotaFigures | { active: false };
  scrub: ScrubCounters | undefined;
  quarantined: number | undefined;
  evictions: EvictionRecord[];
  lastGc?: GcSummary;
  lastRetention?: { tags: number; manifests: number };
}

/** The figures of a GC report, for the log and the admin API. */
export type GcSummary = ReturnType<typeof summary>;

/** The figures of a GC report, for the log and the admin API. */
function summary(r: GcReport) {
  const removed = r.manifests.length + r.blobs.length + r.pool.length + r.emptyRepositories.length;
  return {
    removed,
    manifests: r.manifests.length,
    blobs: r.blobs.length,
    pool: r.pool.length,
    emptyRepositories: r.emptyRepositories.length,
    bytesFreed: r.bytesFreed,
    heldBack: r.heldBack,
    skipped: r.skipped.length,
    unreadable: r.unreadable.length,
    durationMs: r.durationMs,
  };
}
