/**
 * The storage lifecycle per root: one {@link Lifecycle} (quota, GC, scrub, retention,
 * eviction, touch marks) for each available root, over that root's own Storage, sharing one
 * set of pull/push statistics in meta.db. Registry hooks ({@link RootMarks}, made before the
 * registry) and upload admission are routed to the root that serves the repository; the
 * lifecycles are built in one step once the registry exists. The admin API's figures and passes run root by root
 * and are reported merged, with each root's own report under `roots` when there are several.
 * Scheduled tasks of a subpath root carry its prefix in their name ("gc factory/").
 *
 * Per-root options: a subpath's `max_bytes` and `min_free` are its quota (`[quota] max_bytes`
 * is the main root's), `[[quota.prefix]]` quotas apply within each root, `gc = false` /
 * `scrub = false` turn that root's periodic passes off.
 */
import type { Logger } from "../../log";
import type { Meta } from "../../meta/meta";
import { UsageStats } from "../../meta/usage";
import type { DiskCounters } from "../../platform/countingdisk";
import type { SqlDatabase } from "../../platform/sqlite";
import type { RegistryHooks } from "../../registry/hooks";
import type { Registry } from "../../registry/registry";
import type { Task } from "../../scheduler/task";
import type { Excluded, GcReport } from "../../lifecycle/gc";
import { Lifecycle, LifecycleMarks, type LifecycleOptions, type LifecycleStats } from "../../lifecycle/lifecycle";
import type { RetentionReport } from "../../lifecycle/retention";
import type { ScrubProgress, ScrubReport } from "../../lifecycle/scrub";
import type { OpenedRoot } from "./open";
import type { RootRouter } from "./route";

/** One root's lifecycle, with what names it. */
export interface RootLifecycle {
  prefix: string;
  dir: string;
  lc: Lifecycle;
}

/** A root as the admin API lists it. */
export interface RootStatus {
  prefix: string;
  root: string;
  available: boolean;
  problem?: string;
}

/**
 * Each available root's {@link LifecycleMarks} (its own touch marks, one set of pull/push
 * statistics for all), and the registry hooks routed to the root serving the repository.
 * Made before the registry, which takes {@link RootMarks.hooks}; {@link RootLifecycles} is
 * built over it after.
 */
export class RootMarks {
  private readonly byIndex: (LifecycleMarks | undefined)[];

  /** `graceMs`: `[gc] grace`, the same for every root. */
  constructor(opened: readonly OpenedRoot[], private readonly router: RootRouter, db: SqlDatabase, graceMs: number) {
    const usage = new UsageStats(db);
    this.byIndex = opened.map((r) => (r.store ? new LifecycleMarks(graceMs, usage) : undefined));
  }

  /** Root `index`'s marks (undefined for a root that is not available). */
  at(index: number): LifecycleMarks | undefined {
    return this.byIndex[index];
  }

  /** Registry hooks routed to the root of the repository. */
  readonly hooks: RegistryHooks = {
    pulled: (repo, reference, digest) => this.of(repo)?.hooks.pulled?.(repo, reference, digest),
    pushed: (repo, digest, tags) => this.of(repo)?.hooks.pushed?.(repo, digest, tags),
    deleted: (repo, reference, blobs) => this.of(repo)?.hooks.deleted?.(repo, reference, blobs),
    touched: (repo, digest) => this.of(repo)?.hooks.touched?.(repo, digest),
  };

  private of(repo: string): LifecycleMarks | undefined {
    return this.byIndex[this.router.route(repo)];
  }
}

/** What {@link RootLifecycles} is built over: the opened roots, and the registry built with `marks.hooks`. */
export interface RootLifecyclesDeps {
  opened: readonly OpenedRoot[];
  router: RootRouter;
  marks: RootMarks;
  registry: Registry;
  meta: Meta;
  log: Logger;
  options: LifecycleOptions;
  counters?: DiskCounters;
}

/** The lifecycles of every available root. */
export class RootLifecycles {
  readonly roots: RootLifecycle[] = [];
  private readonly byIndex: (Lifecycle | undefined)[];
  private readonly opened: readonly OpenedRoot[];
  private readonly router: RootRouter;

  constructor(deps: RootLifecyclesDeps) {
    const { opened, marks, registry, meta, log, options: base, counters } = deps;
    this.opened = opened;
    this.router = deps.router;
    this.byIndex = opened.map((r, i) => {
      const rootMarks = marks.at(i);
      if (!r.store || !rootMarks) return undefined;
      const sp = r.subpath;
      const options: LifecycleOptions = sp
        ? {
          ...base,
          gc: { ...base.gc, intervalMs: sp.gc ? base.gc.intervalMs : 0 },
          scrubIntervalMs: sp.scrub ? base.scrubIntervalMs : 0,
          quota: { ...base.quota, maxBytes: sp.maxBytes, minFree: sp.minFree ?? base.quota.minFree },
        }
        : base;
      const lc = new Lifecycle({ store: r.store, registry, meta, marks: rootMarks, log: sp ? withFields(log, { rootPrefix: sp.prefix }) : log, options, ...(counters ? { diskCounters: counters } : {}) });
      this.roots.push({ prefix: r.prefix, dir: r.dir, lc });
      return lc;
    });
  }

  /** The main root's lifecycle (always available). */
  get main(): Lifecycle {
    return this.byIndex[0]!;
  }

  /** The lifecycle of the root serving `repo`, if available. */
  of(repo: string): Lifecycle | undefined {
    return this.byIndex[this.router.route(repo)];
  }

  /** Upload admission for root `index`. */
  admit(index: number, repo: string, bytes: number): Promise<void> {
    return this.byIndex[index]?.admit(repo, bytes) ?? Promise.resolve();
  }

  /** Starts each root's tasks; a subpath root's task names carry its prefix. */
  start(every: (intervalMs: number, make: () => Task) => void): void {
    for (const r of this.roots) {
      r.lc.start(r.prefix === "" ? every : (ms, make) => every(ms, () => {
        const task = make();
        return { ...task, name: `${task.name} ${r.prefix}` };
      }));
    }
  }

  async close(): Promise<void> {
    for (const r of this.roots) await r.lc.close();
  }

  /** The roots, available or not. */
  status(): RootStatus[] {
    return this.opened.map((r) => ({ prefix: r.prefix, root: r.dir, available: r.store !== undefined, ...(r.problem ? { problem: r.problem } : {}) }));
  }

  /** The main root's figures (as with one root), plus each root's own under `roots` when there are several. */
  stats(): LifecycleStats & { roots?: (RootStatus & { stats?: LifecycleStats })[] } {
    const main = this.main.stats();
    if (this.opened.length === 1) return main;
    return { ...main, roots: this.status().map((s, i) => ({ ...s, ...(this.byIndex[i] ? { stats: this.byIndex[i]!.stats() } : {}) })) };
  }

  quarantine() {
    return this.roots.flatMap((r) => r.lc.scrubber.quarantine());
  }

  /** One GC pass per root, one after the other; the report merged, each root's under `roots`. */
  async gc(dryRun: boolean, excluded?: Excluded): Promise<GcReport & { roots?: { prefix: string; report: GcReport }[] }> {
    const reports: { prefix: string; report: GcReport }[] = [];
    for (const r of this.roots) reports.push({ prefix: r.prefix, report: await r.lc.gc({ dryRun, ...(excluded ? { excluded } : {}) }) });
    return this.opened.length === 1 ? reports[0]!.report : { ...mergeGc(reports.map((x) => x.report)), roots: reports };
  }

  async retention(dryRun: boolean): Promise<RetentionReport & { roots?: { prefix: string; report: RetentionReport }[] }> {
    const reports: { prefix: string; report: RetentionReport }[] = [];
    for (const r of this.roots) reports.push({ prefix: r.prefix, report: await r.lc.retention({ dryRun }) });
    if (this.opened.length === 1) return reports[0]!.report;
    const all = reports.map((x) => x.report);
    return { dryRun: all.every((x) => x.dryRun), tags: all.flatMap((x) => x.tags), manifests: all.flatMap((x) => x.manifests), roots: reports };
  }

  /** Scrubs root after root; progress counts across them. */
  async scrub(progress?: (p: ScrubProgress) => void): Promise<ScrubReport & { roots?: { prefix: string; report: ScrubReport }[] }> {
    const reports: { prefix: string; report: ScrubReport }[] = [];
    const before = { done: 0, total: 0, bytes: 0, totalBytes: 0 };
    for (const r of this.roots) {
      const report = await r.lc.scrub(undefined, false, progress && ((p) => progress({ done: before.done + p.done, total: before.total + p.total, bytes: before.bytes + p.bytes, totalBytes: before.totalBytes + p.totalBytes })));
      before.done += report.blobsChecked;
      before.total += report.blobsChecked;
      before.bytes += report.bytesChecked;
      before.totalBytes += report.bytesChecked;
      reports.push({ prefix: r.prefix, report });
    }
    if (this.opened.length === 1) return reports[0]!.report;
    const all = reports.map((x) => x.report);
    return {
      blobsChecked: all.reduce((n, x) => n + x.blobsChecked, 0),
      bytesChecked: all.reduce((n, x) => n + x.bytesChecked, 0),
      quarantined: all.flatMap((x) => x.quarantined),
      aborted: all.some((x) => x.aborted),
      roots: reports,
    };
  }
}

/** GC reports of several roots as one. */
function mergeGc(all: GcReport[]): GcReport {
  const earliest = all.map((r) => r.heldBack.earliest).filter((x): x is string => x !== undefined).sort();
  const latest = all.map((r) => r.heldBack.latest).filter((x): x is string => x !== undefined).sort();
  const sum = (f: (r: GcReport) => number) => all.reduce((n, r) => n + f(r), 0);
  return {
    dryRun: all.every((r) => r.dryRun),
    repositories: sum((r) => r.repositories),
    manifests: all.flatMap((r) => r.manifests),
    blobs: all.flatMap((r) => r.blobs),
    pool: all.flatMap((r) => r.pool),
    emptyRepositories: all.flatMap((r) => r.emptyRepositories),
    skipped: all.flatMap((r) => r.skipped),
    unreadable: all.flatMap((r) => r.unreadable),
    heldBack: {
      manifests: sum((r) => r.heldBack.manifests),
      blobs: sum((r) => r.heldBack.blobs),
      pool: sum((r) => r.heldBack.pool),
      bytes: sum((r) => r.heldBack.bytes),
      ...(earliest.length > 0 ? { earliest: earliest[0] } : {}),
      ...(latest.length > 0 ? { latest: latest[latest.length - 1] } : {}),
    },
    bytesFreed: sum((r) => r.bytesFreed),
    durationMs: sum((r) => r.durationMs),
  };
}

/** `log` adding `fields` to every line. */
function withFields(log: Logger, fields: Record<string, unknown>): Logger {
  return {
    debug: (m, f) => log.debug(m, { ...fields, ...f }),
    info: (m, f) => log.info(m, { ...fields, ...f }),
    warn: (m, f) => log.warn(m, { ...fields, ...f }),
    error: (m, f) => log.error(m, { ...fields, ...f }),
    once: (k, m, f) => log.once(k, m, { ...fields, ...f }),
  };
}
