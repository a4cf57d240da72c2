/**
 * Sync's composition: the upstreams of `[[sync.registries]]`, the shared blob fetches, the
 * pull-through decorator, and the scheduled tasks (full sync on `interval`, inside the
 * registry's `windows` if any; keeping pins and the warm set fresh; flushing recorded
 * pulls). Built by main; `state()` feeds the admin API.
 */
import type { SyncRegistryConfig } from "../config/sync";
import type { Logger } from "../log";
import type { SyncState } from "../meta/syncstate";
import type { Registry } from "../registry/registry";
import type { Scheduler } from "../scheduler/scheduler";
import { inWindows, parseWindow, type Window } from "../scheduler/windows";
import type { Storage } from "../storage/api";
import type { V2Registry } from "../registry/api";
import { BlobFetches } from "./blobfetch";
import { Mirror, type MirrorReport, type SignatureGate } from "./mirror";
import { PullThrough } from "./pullthrough";
import { Upstream } from "./upstream";

/** Options for {@link SyncService}. */
export interface SyncOptions {
  registries: SyncRegistryConfig[];
  maxManifestBytes: number;
  /** How often recorded pulls are written to the state table (ms). */
  flushIntervalMs?: number;
  /** Verifies upstream signatures for `only_signed` upstreams (trust/upstream.ts). */
  signatures?: SignatureGate;
}

/** At most this many warm tags per upstream in {@link SyncService.info} (the admin API's /sync), newest first. */
const WARM_SHOWN = 200;

/** Sync, wired. */
export class SyncService {
  readonly upstreams: Upstream[];
  readonly fetches: BlobFetches;
  readonly pullThrough: PullThrough;
  readonly mirror: Mirror;
  private readonly last = new Map<string, { at: string; report?: MirrorReport; error?: string }>();

  constructor(
    store: Storage,
    registry: Registry,
    private readonly state: SyncState,
    private readonly scheduler: Scheduler,
    private readonly options: SyncOptions,
    private readonly log: Logger,
  ) {
    this.upstreams = options.registries.map((c) => new Upstream(c, options.maxManifestBytes, log));
    this.fetches = new BlobFetches(store, scheduler.budget, log);
    this.pullThrough = new PullThrough(registry, this.upstreams, this.fetches, state, log, options.signatures);
    this.mirror = new Mirror(registry, this.fetches, state, log, options.signatures);
    for (const u of this.upstreams) {
      const pins = u.pins.flatMap((p) => {
        const local = u.filters.toLocal(p.repo);
        return local === undefined ? [] : [{ repo: local, tag: p.tag }];
      });
      state.setPins(u.name, pins);
    }
  }

  /** The registry for the /v2 handler: pull-through over `registry`. */
  decorate(): V2Registry {
    return this.pullThrough.decorate();
  }

  /** Registers the periodic tasks with the scheduler. */
  start(): void {
    for (const u of this.upstreams) {
      const windows = u.config.windows.map((w) => parseWindow(w) as Window);
      const interval = u.config.interval || (windows.length > 0 ? 3600 : 0);
      if (interval > 0) {
        this.scheduler.every(interval * 1000, () => ({
          name: `sync:${u.name}`,
          priority: 5,
          run: async (ctx) => {
            if (!inWindows(windows)) return;
            await this.record(`sync:${u.name}`, () => (this.flush(), this.mirror.syncAll(u, ctx)));
          },
        }), 0);
      } else if (u.config.pinned.length > 0 || u.config.warmWindow > 0) {
        // pins and the warm set are re-checked as often as a pull would re-check a tag
        const every = Math.max(1, u.config.tagCheckInterval) * 1000;
        this.scheduler.every(every, () => ({
          name: `fresh:${u.name}`,
          priority: 4,
          run: (ctx) => this.record(`fresh:${u.name}`, () => (this.flush(), this.mirror.keepFresh(u, ctx))),
        }), u.config.pinned.length > 0 ? 0 : every);
      }
    }
    this.scheduler.every(this.options.flushIntervalMs ?? 60_000, () => ({
      name: "sync:flush-pulls",
      priority: 1,
      run: async () => this.flush(),
    }));
  }

  /** Queues a full sync of `name` now (admin API); false when there is no such registry. `done` is told when the run ends (with the error message if it failed, else its report). */
  runNow(name: string, done?: (error?: string, report?: MirrorReport) => void): boolean {
    const u = this.upstreams.find((x) => x.name === name);
    if (!u) return false;
    const queued = this.scheduler.add({
      name: `sync:${u.name}`,
      priority: 6,
      run: (ctx) =>
        this.record(`sync:${u.name}`, () => (this.flush(), this.mirror.syncAll(u, ctx))).then(
          (r) => (done?.(undefined, this.last.get(`sync:${u.name}`)?.report), r),
          (err) => (done?.(err instanceof Error ? err.message : String(err)), Promise.reject(err)),
        ),
    });
    if (!queued) done?.("the scheduler is stopping");
    return true;
  }

  /** Writes recorded pulls (the warm set) to the state table; every sync and freshness run does this first, so a pull made a moment ago is in the warm set it reads. */
  flush(): void {
    this.state.recordPulls(this.pullThrough.takePulls());
  }

  /** Upstreams, fetches in flight, last runs and pins, for the admin API. */
  info() {
    return {
      registries: this.upstreams.map((u) => ({
        ...u.client.info(),
        negativeCache: { entries: u.misses.size, hits: u.misses.hits },
        corruptBlobs: this.fetches.corrupt.get(u.name) ?? 0,
        lastRun: this.last.get(`sync:${u.name}`) ?? this.last.get(`fresh:${u.name}`) ?? null,
        // the warm set: tags pulled within the warm window, kept fresh (the newest WARM_SHOWN)
        warmWindowSeconds: u.config.warmWindow,
        warm: u.config.warmWindow > 0 ? this.state.warm(u.name, Date.now() - u.config.warmWindow * 1000).slice(0, WARM_SHOWN) : [],
      })),
      fetches: this.fetches.list(),
      pins: this.state.pins(),
    };
  }

  /**
   * True when local repository `repo` is filled from an upstream: its content can be fetched
   * again, so quota eviction may remove it (lifecycle/evict.ts asks).
   */
  serves(repo: string): boolean {
    return this.upstreams.some((u) => {
      const name = u.filters.toUpstream(repo);
      return name !== undefined && u.filters.repo(name);
    });
  }

  /** True when `repo:tag` is pinned (always mirrored, never evicted). */
  pinned(repo: string, tag: string): boolean {
    return this.state.isPinned(repo, tag);
  }

  /**
   * Lets pull-through work in flight finish (images being completed, blobs being fetched and
   * stored, their directory fsyncs included), for at most `ms`; true when it all did. A clean
   * stop calls this once no request is left and background tasks are stopped, so it does not
   * throw away a blob a client already received, nor cut its publishing short.
   */
  async drain(ms: number): Promise<boolean> {
    const work = (async () => {
      await this.pullThrough.idle();
      await this.fetches.idle();
      return true;
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, ms))));
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops probes and writes what is pending. */
  close(): void {
    for (const u of this.upstreams) u.client.breaker.close();
    this.flush();
  }

  private async record(name: string, run: () => Promise<MirrorReport>): Promise<void> {
    const at = new Date().toISOString();
    try {
      const report = await run();
      this.last.set(name, { at, report });
    } catch (err) {
      this.last.set(name, { at, error: (err as Error).message });
      throw err;
    }
  }
}
