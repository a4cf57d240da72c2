/**
 * Online, incremental garbage collection. One pass visits the repositories one at a time,
 * yielding to the event loop every few milliseconds, and never takes a global lock. Each
 * repository is decided and collected in one hold of its write lock (the lock manifest
 * pushes take to update index.json), on the graph read under that lock:
 *
 * 1. Manifests: with `untagged`, listed manifests that no tag reaches (as an index child or
 *    a referrer of a reached manifest) are unlisted; with `orphanReferrers`, referrers whose
 *    subject is no longer in the repository are unlisted (a whole chain in one pass). All in
 *    one index.json write; their blobs then go with step 2.
 * 2. Blobs: every blob that no remaining listed manifest reaches is unlinked, unless it was
 *    linked or touched less than `grace` ago. A manifest push re-checks its references and
 *    its own blob under the same lock, so what it acknowledged is in the graph this step
 *    reads, and what it did not yet reference may go (the push then fails with
 *    MANIFEST_BLOB_UNKNOWN); the grace period protects what a push has uploaded but not yet
 *    referenced.
 * 3. Empty repositories (no manifests, no blobs, no upload in flight, not touched within
 *    the grace period) lose their layout files; their directory goes when nothing else is in it.
 * 4. The pool: entries no repository links to any more (one link) are removed, unless a
 *    client touched the digest within the grace period (a mount from the pool in flight).
 *
 * Upload sessions are not GC's business: they expire on their own timer (storage/sessions.ts).
 *
 * Manifests that cannot be parsed are read conservatively (graph.ts) and reported; only a
 * repository where nothing can be known is skipped. What the grace period holds back is
 * counted in `heldBack`, with the times it becomes collectable. With `dryRun` nothing is
 * changed and the report lists what a real pass over the same store would remove: both take
 * the same decisions from the same graph.
 */
import { join } from "node:path";
import type { Logger } from "../log";
import type { Meta } from "../meta/meta";
import type { UsageStats } from "../meta/usage";
import { parseDigest } from "../oci/digest";
import { tagOf } from "../oci/layoutindex";
import type { Registry } from "../registry/registry";
import type { BlobInfo, IndexTransaction } from "../storage/api";
import type { Storage } from "../storage/api";
import type { PassProgress } from "./pacer";
import { Pacer, ParseCache, type RepoGraph, closureSteps, orphanReferrerSteps, readGraph, referencedBlobs } from "./graph";
import { type GcReport, HeldTally, emptyReport } from "./gcreport";
import type { Touches } from "./touches";

export { type GcReport, type HeldBack, emptyReport } from "./gcreport";

/** Manifests forgotten per transaction of the derived index. */
const META_BATCH = 64;

/** Options for {@link GarbageCollector}. */
export interface GcOptions {
  graceMs: number;
  untagged: boolean;
  orphanReferrers: boolean;
  emptyRepositories: boolean;
  maxManifestBytes: number;
}

/** What the collector works with. */
export interface GcDeps {
  store: Storage;
  registry: Registry;
  meta: Meta;
  touches?: Touches;
  usage?: UsageStats;
  log: Logger;
  now?: () => number;
}

/** Per-repository manifests to treat as already deleted (dry runs of retention + GC). */
export type Excluded = ReadonlyMap<string, ReadonlySet<string>>;

/** Bookkeeping of one pass that the report does not show. */
interface PassState {
  /** Dry runs: pool links each removal would drop, to report the pool entries it would orphan. */
  dropped: Map<string, number>;
  /** Inode -> the change time it had before this pass unlinked one of its names, and the one it has since. */
  ctimes: Map<number, { before: number; after: number }>;
  /** What the grace period held back. */
  held: HeldTally;
  pacer: Pacer;
}

/** The garbage collector of one store. */
export class GarbageCollector {
  private readonly now: () => number;
  /** Parsed manifests, bounded; shared with retention and eviction (lifecycle.ts). */
  readonly cache = new ParseCache();

  constructor(
    private readonly deps: GcDeps,
    private readonly options: GcOptions,
  ) {
    this.now = deps.now ?? Date.now;
  }

  /** One full pass over every repository and the pool. */
  async run(opts: { dryRun?: boolean; signal?: AbortSignal; excluded?: Excluded; progress?: (p: PassProgress) => void } = {}): Promise<GcReport> {
    const started = performance.now();
    const report = emptyReport(opts.dryRun ?? false);
    const repos = await this.deps.store.repositories();
    report.repositories = repos.length;
    const state = newState(report);
    // every repository, then the pool sweep
    const total = repos.length + 1;
    opts.progress?.({ done: 0, total });
    for (const [i, repo] of repos.entries()) {
      if (opts.signal?.aborted) break;
      try {
        await this.collect(repo, report, state, opts.excluded?.get(repo));
      } finally {
        this.cache.clear();
      }
      opts.progress?.({ done: i + 1, total });
    }
    if (!opts.signal?.aborted) {
      await this.sweep(report, state);
      opts.progress?.({ done: total, total });
    }
    state.held.finish();
    report.durationMs = Math.round(performance.now() - started);
    return report;
  }

  /** Collects one repository (steps 1–3); used by eviction after it deletes a tag. */
  async collectRepo(repo: string, report: GcReport): Promise<void> {
    const state = newState(report);
    await this.collect(repo, report, state);
    state.held.finish();
  }

  /** Removes pool entries that no repository links to (step 4); used by eviction. */
  async sweepPool(report: GcReport): Promise<void> {
    const state = newState(report);
    await this.sweep(report, state);
    state.held.finish();
  }

  private async collect(repo: string, report: GcReport, state: PassState, excluded?: ReadonlySet<string>): Promise<void> {
    const { store } = this.deps;
    const max = this.options.maxManifestBytes;
    // Outside the lock: fills the parse cache, so that the read under the lock is stats and lookups.
    const outside = await readGraph(store, repo, max, { cache: this.cache, pacer: state.pacer });
    if (!outside) return;
    if (!(await store.indexes.exists(repo))) return;
    await store.indexes.transaction(repo, async (tx) => {
      // The decision is taken on the graph as it is under the lock: a manifest acknowledged
      // before this point is in it, one that comes later re-checks its references after.
      const graph = await readGraph(store, repo, max, { cache: this.cache, pacer: state.pacer, index: outside.index });
      if (!graph) return;
      for (const u of graph.unreadable) report.unreadable.push({ repo, ...u });
      if (graph.unreadable.length > 0) {
        this.deps.log.warn("gc: manifests that cannot be parsed are kept with every digest they mention", { repo, manifests: graph.unreadable });
      }
      if (graph.incomplete) {
        report.skipped.push(repo);
        this.deps.log.warn("gc: a manifest of the repository cannot be read at all; nothing of it is collected", { repo });
        return;
      }
      const indexBefore = await store.indexes.changedAt(repo);
      // Manifests a dry run of retention would delete are decided on as already gone (so are their referrers).
      for (const d of excluded ?? []) {
        const node = graph.nodes.get(d);
        if (node) Object.assign(node, { listed: false, tags: [] });
      }
      let drops = await this.manifestDrops(graph, report, state);
      // the index version the blob decisions are taken on (a shared store confirms it before deleting)
      let stamp = graph.index.stamp;
      if (drops.length > 0 && !report.dryRun) {
        try {
          stamp = await this.unlist(repo, graph, drops, tx, state);
        } catch (err) {
          // index.json could not be replaced (a full disk): the manifests stay, the sweep still frees what nothing references.
          this.deps.log.warn("gc: manifests to drop are kept this pass; index.json cannot be written", { repo, manifests: drops.length, error: (err as Error).message });
          drops = [];
        }
      }
      for (const digest of drops) report.manifests.push({ repo, digest });
      await this.sweepRepo(graph, new Set([...(excluded ?? []), ...drops]), report, state, indexBefore, excluded, stamp);
    });
  }

  /**
   * Removes `drops` from index.json in one write (caller holds the lock), then from the
   * derived index and the usage statistics. Their blobs go with the sweep that follows.
   * Answers the new index's stamp.
   */
  private async unlist(repo: string, graph: RepoGraph, drops: string[], tx: IndexTransaction, state: PassState): Promise<string> {
    const gone = new Set(drops);
    const current = await tx.current();
    const after = await tx.write(current.doc.manifests.filter((e) => !gone.has(e.digest)));
    // In batches (one transaction each, a few ms); the derived index keeps the old stamp
    // until the last batch, so no reader takes it for complete early.
    for (let i = 0; i < drops.length; i += META_BATCH) {
      const last = i + META_BATCH >= drops.length;
      this.deps.meta.removeManifests(repo, last ? after.stamp : graph.index.stamp, drops.slice(i, i + META_BATCH));
      await state.pacer.tick();
    }
    for (const e of current.doc.manifests) if (gone.has(e.digest)) this.deps.usage?.forget(repo, tagOf(e) ?? e.digest);
    for (const d of drops) this.deps.usage?.forget(repo, d);
    return after.stamp;
  }

  /** Listed manifests to unlist under the `untagged` and `orphanReferrers` rules; counts those the grace period holds. */
  private async manifestDrops(graph: RepoGraph, report: GcReport, state: PassState): Promise<string[]> {
    const listed = [...graph.nodes.values()].filter((n) => n.listed);
    const tagged = listed.filter((n) => n.tags.length > 0).map((n) => n.digest);
    let candidates: (anchored: ReadonlySet<string>) => Promise<Set<string>>;
    if (this.options.untagged) {
      candidates = async (anchored) => {
        const live = await state.pacer.run(closureSteps(graph, [...tagged, ...anchored], true));
        return new Set(listed.filter((n) => !live.has(n.digest)).map((n) => n.digest));
      };
    } else if (this.options.orphanReferrers) {
      candidates = (anchored) => state.pacer.run(orphanReferrerSteps(graph, anchored));
    } else {
      return [];
    }
    // Young manifests stay, and so does everything they keep: decide once more with them anchored.
    const first = await candidates(new Set());
    const young = new Set<string>();
    for (const d of first) {
      await state.pacer.tick();
      const at = this.collectableAt(graph.repo, d, undefined, state);
      if (at <= this.now()) continue;
      young.add(d);
      state.held.until(at);
    }
    report.heldBack.manifests += young.size;
    return young.size === 0 ? [...first] : [...(await candidates(young))];
  }

  /** Unlinks unreferenced blobs of the repository (caller holds its lock), then removes it if empty. */
  private async sweepRepo(
    graph: RepoGraph,
    gone: ReadonlySet<string>,
    report: GcReport,
    state: PassState,
    indexChangedAt: number | undefined,
    excluded: ReadonlySet<string> = new Set(),
    stamp: string = graph.index.stamp,
  ): Promise<void> {
    const { store } = this.deps;
    const repo = graph.repo;
    const roots = [...graph.nodes.values()].filter((n) => n.listed && !gone.has(n.digest)).map((n) => n.digest);
    const live = referencedBlobs(graph, await state.pacer.run(closureSteps(graph, roots, false)));
    let remaining = 0;
    try {
      for await (const info of store.repoBlobs(repo)) {
        await state.pacer.tick();
        const digest = info.digest;
        if (live.has(digest) || !parseDigest(digest)) {
          remaining++;
          continue;
        }
        if (excluded.has(digest)) {
          // Deleting the manifest (retention, in a real run) removes its blob; only its pool link is counted here.
          state.dropped.set(digest, (state.dropped.get(digest) ?? 0) + 1);
          continue;
        }
        const at = this.collectableAt(repo, digest, info, state);
        if (at > this.now()) {
          remaining++;
          report.heldBack.blobs++;
          state.held.bytes(digest, info.size, at);
          continue;
        }
        const shared = (info.links ?? 1) > 1;
        report.blobs.push({ repo, digest, size: info.size });
        if (!shared) report.bytesFreed += info.size;
        state.dropped.set(digest, (state.dropped.get(digest) ?? 0) + 1);
        if (report.dryRun) continue;
        await store.sweep.unlink(repo, digest, { entry: info, stamp });
        // A client that looked at the blob (HEAD) while it was being unlinked was told it
        // exists and will reference it next: put it back from the pool.
        if (this.deps.touches?.blobIsFresh(repo, digest) && (await store.sweep.relink(repo, digest))) {
          report.blobs.pop();
          if (!shared) report.bytesFreed -= info.size;
          state.dropped.set(digest, (state.dropped.get(digest) ?? 1) - 1);
          remaining++;
          continue;
        }
        // The unlink changed the change time of the inode's other names: remember the old
        // one, so that this pass judges them by the time they had, as a dry run does.
        const other = shared ? await store.sweep.stored(digest) : undefined;
        if (other && other.id !== undefined && other.id === info.id) state.ctimes.set(info.id, { before: this.ctimeOf(info, state), after: other.ctimeMs ?? 0 });
      }
    } finally {
      await store.sweep.settle();
    }
    if (this.options.emptyRepositories && remaining === 0 && roots.length === 0) await this.removeEmpty(repo, report, indexChangedAt);
  }

  /** Removes an empty repository's layout (caller holds its lock and checked it is empty). */
  private async removeEmpty(repo: string, report: GcReport, indexChangedAt: number | undefined): Promise<void> {
    const { store } = this.deps;
    // Judged by index.json as it was before this pass unlisted anything, as a dry run judges it.
    if (indexChangedAt === undefined || indexChangedAt + this.options.graceMs > this.now()) return;
    if (this.deps.touches?.repoIsFresh(repo)) return;
    if (store.uploads.list().some((s) => s.repo === repo)) return;
    if (!report.dryRun) {
      try {
        await store.indexes.drop(repo);
      } catch (err) {
        // on a bucket shared with another process, a push there may have filled it meanwhile
        this.deps.log.warn("gc: an empty repository was not dropped", { repo, error: (err as Error).message });
        return;
      }
      this.deps.meta.dropRepo(repo);
    }
    report.emptyRepositories.push(repo);
  }

  /** Removes pool entries that no repository links to. */
  private async sweep(report: GcReport, state: PassState): Promise<void> {
    const { store } = this.deps;
    try {
      for await (const info of store.storedBlobs()) {
        await state.pacer.tick();
        const digest = info.digest;
        const links = (info.links ?? 1) - (report.dryRun ? (state.dropped.get(digest) ?? 0) : 0);
        if (links > 1) continue;
        // No age check here: removing a repository's link changes the inode's ctime, and a
        // pool entry is only ever created while another link (the upload's file) holds it.
        // A mount from the pool in flight has touched the digest.
        const until = this.deps.touches?.digestFreshUntil(digest) ?? 0;
        if (until > this.now()) {
          report.heldBack.pool++;
          state.held.bytes(digest, info.size, until);
          continue;
        }
        report.pool.push({ digest, size: info.size });
        report.bytesFreed += info.size;
        if (report.dryRun) continue;
        await store.sweep.unlinkStored(digest, { entry: info });
      }
    } finally {
      await store.sweep.settle();
    }
  }

  /** The inode's change time, less the changes this pass made by unlinking another of its names. */
  private ctimeOf(info: BlobInfo, state: PassState): number {
    const ctime = info.ctimeMs ?? 0;
    const known = info.id === undefined ? undefined : state.ctimes.get(info.id);
    return known && known.after === ctime ? known.before : ctime;
  }

  /**
   * When blob `digest` of `repo` may be collected: `grace` after its file was last linked
   * or changed (`info`, or stat'ed here) and after a client last touched it.
   */
  private collectableAt(repo: string, digest: string, info: BlobInfo | undefined, state: PassState): number {
    let file = info;
    if (!file) {
      const d = parseDigest(digest);
      file = (d && this.deps.store.blobs.stat(repo, d)) || undefined;
    }
    const fileTime = file ? Math.max(file.mtimeMs, this.ctimeOf(file, state)) : undefined;
    // A blob of a manifest deleted since its file last changed is not protected by the file's
    // age (touches.ts, settle): a full disk is freed by DELETE and one pass.
    const settled = fileTime !== undefined && this.deps.touches?.settledAfter(repo, digest, fileTime) === true;
    const changed = fileTime !== undefined && !settled ? fileTime + this.options.graceMs : 0;
    return Math.max(changed, this.deps.touches?.blobFreshUntil(repo, digest) ?? 0);
  }
}

function newState(report: GcReport): PassState {
  return { dropped: new Map(), ctimes: new Map(), held: new HeldTally(report), pacer: new Pacer() };
}
