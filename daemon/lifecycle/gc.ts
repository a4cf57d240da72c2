/**
 * Online, incremental garbage collection. One pass visits the repositories one at a time,
 * yielding to the event loop between them, and never takes a global lock:
 *
 * 1. Manifests: with `untagged`, listed manifests that no tag reaches (as an index child or
 *    a referrer of a reached manifest) are deleted; with `orphanReferrers`, referrers whose
 *    subject is no longer in the repository are deleted. Deletion goes through the registry
 *    (DELETE by digest), parents before children.
 * 2. Blobs: under the repository's write lock (the one manifest pushes take to update
 *    index.json), every blob that no manifest listed in index.json reaches is unlinked,
 *    unless it was linked or touched less than `grace` ago. Because a manifest push checks
 *    its references under the same lock, a blob cannot vanish between that check and the
 *    index write; the grace period protects what a push has uploaded but not yet referenced.
 * 3. Empty repositories (no manifests, no blobs, no upload in flight, not touched within
 *    the grace period) lose their layout files; their directory goes when nothing else is in it.
 * 4. The pool: entries no repository links to any more (one link) are removed, unless a
 *    client touched the digest within the grace period (a mount from the pool in flight).
 * 5. Upload sessions idle longer than `uploadIdle` are discarded.
 *
 * A repository whose manifests cannot all be read is skipped (nothing swept) and reported.
 * With `dryRun` nothing is changed and the report lists what a real pass would remove.
 */
import { join } from "node:path";
import type { Logger } from "../log";
import type { Meta } from "../meta/meta";
import type { UsageStats } from "../meta/usage";
import { parseDigest } from "../oci/digest";
import { TEMP_PREFIX } from "../platform/disk";
import type { Registry } from "../registry/registry";
import type { Store } from "../storage/store";
import { type RepoGraph, closure, parentsFirst, readGraph, referencedBlobs } from "./graph";
import type { Touches } from "./touches";

/** Options for {@link GarbageCollector}. */
export interface GcOptions {
  graceMs: number;
  untagged: boolean;
  orphanReferrers: boolean;
  uploadIdleMs: number;
  emptyRepositories: boolean;
  maxManifestBytes: number;
}

/** What a pass removed (or, dry, would remove). */
export interface GcReport {
  dryRun: boolean;
  repositories: number;
  manifests: { repo: string; digest: string }[];
  blobs: { repo: string; digest: string; size: number }[];
  pool: { digest: string; size: number }[];
  uploads: { repo: string; id: string }[];
  emptyRepositories: string[];
  /** Repositories not swept because a manifest could not be read. */
  skipped: string[];
  /** Bytes of pool entries and unshared blobs freed. */
  bytesFreed: number;
  durationMs: number;
}

/** What the collector works with. */
export interface GcDeps {
  store: Store;
  registry: Registry;
  meta: Meta;
  touches?: Touches;
  usage?: UsageStats;
  log: Logger;
  now?: () => number;
}

/** Per-repository manifests to treat as already deleted (dry runs of retention + GC). */
export type Excluded = ReadonlyMap<string, ReadonlySet<string>>;

/** The garbage collector of one store. */
export class GarbageCollector {
  private readonly now: () => number;

  constructor(
    private readonly deps: GcDeps,
    private readonly options: GcOptions,
  ) {
    this.now = deps.now ?? Date.now;
  }

  /** One full pass over every repository, the pool and the upload sessions. */
  async run(opts: { dryRun?: boolean; signal?: AbortSignal; excluded?: Excluded } = {}): Promise<GcReport> {
    const started = performance.now();
    const report = emptyReport(opts.dryRun ?? false);
    const repos = await this.deps.store.repositories();
    report.repositories = repos.length;
    // Dry runs count the pool links each removal would drop, to report the pool entries it would orphan.
    const dropped = new Map<string, number>();
    for (const repo of repos) {
      if (opts.signal?.aborted) break;
      await this.collectRepo(repo, report, dropped, opts.excluded?.get(repo));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (!opts.signal?.aborted) await this.sweepPool(report, dropped);
    if (!opts.signal?.aborted) await this.sweepUploads(report);
    report.durationMs = Math.round(performance.now() - started);
    return report;
  }

  /** Collects one repository (steps 1–3); used by eviction after it deletes a tag. */
  async collectRepo(repo: string, report: GcReport, dropped = new Map<string, number>(), excluded?: ReadonlySet<string>): Promise<void> {
    const graph = await readGraph(this.deps.store, repo, this.options.maxManifestBytes);
    if (!graph) return;
    const drops = graph.incomplete ? [] : this.manifestDrops(graph);
    for (const digest of parentsFirst(graph, drops)) {
      if (!report.dryRun) {
        try {
          await this.deps.registry.deleteManifest(repo, digest);
          this.deps.usage?.forget(repo, digest);
        } catch (err) {
          this.deps.log.debug("gc: manifest kept", { repo, digest, error: (err as Error).message });
          continue;
        }
      }
      report.manifests.push({ repo, digest });
    }
    const gone = new Set([...(excluded ?? []), ...(report.dryRun ? drops : [])]);
    await this.deps.store.layouts.withLock(repo, async () => {
      const g = report.dryRun || drops.length === 0 ? graph : await readGraph(this.deps.store, repo, this.options.maxManifestBytes);
      if (!g) return;
      if (g.incomplete) {
        report.skipped.push(repo);
        this.deps.log.warn("gc: a manifest of the repository cannot be read; no blob of it is collected", { repo });
        return;
      }
      await this.sweepRepo(g, gone, report, dropped);
    });
  }

  /** Listed manifests to delete under the `untagged` and `orphanReferrers` rules. */
  private manifestDrops(graph: RepoGraph): string[] {
    const listed = [...graph.nodes.values()].filter((n) => n.listed);
    let live: Set<string>;
    if (this.options.untagged) {
      live = closure(graph, listed.filter((n) => n.tags.length > 0).map((n) => n.digest), true);
    } else if (this.options.orphanReferrers) {
      // Drop referrers whose subject is absent, repeatedly (a referrer of a dropped referrer goes too).
      live = new Set(listed.map((n) => n.digest));
      for (let changed = true; changed; ) {
        changed = false;
        const reachable = closure(graph, live, false);
        for (const n of listed) {
          if (live.has(n.digest) && n.tags.length === 0 && n.subject !== undefined && !reachable.has(n.subject)) {
            live.delete(n.digest);
            changed = true;
          }
        }
      }
      live = closure(graph, live, false);
    } else {
      return [];
    }
    return listed.filter((n) => !live.has(n.digest) && this.old(graph.repo, n.digest)).map((n) => n.digest);
  }

  /** Unlinks unreferenced blobs of the repository (caller holds its lock), then removes it if empty. */
  private async sweepRepo(graph: RepoGraph, gone: ReadonlySet<string>, report: GcReport, dropped: Map<string, number>): Promise<void> {
    const { store } = this.deps;
    const repo = graph.repo;
    const roots = [...graph.nodes.values()].filter((n) => n.listed && !gone.has(n.digest)).map((n) => n.digest);
    const live = referencedBlobs(graph, closure(graph, roots, false));
    let remaining = 0;
    for (const alg of store.disk.readdir(join(store.paths.repo(repo), "blobs"))) {
      const dir = join(store.paths.repo(repo), "blobs", alg);
      let removed = 0;
      for (const hex of store.disk.readdir(dir)) {
        if (hex.startsWith(TEMP_PREFIX)) continue;
        const digest = `${alg}:${hex}`;
        const path = join(dir, hex);
        const info = store.disk.stat(path);
        if (!info?.isFile) continue;
        if (live.has(digest) || !parseDigest(digest) || !this.old(repo, digest, info.mtimeMs, info.ctimeMs)) {
          remaining++;
          continue;
        }
        report.blobs.push({ repo, digest, size: info.size });
        if (info.nlink <= 1) report.bytesFreed += info.size;
        dropped.set(digest, (dropped.get(digest) ?? 0) + 1);
        if (report.dryRun) continue;
        await store.disk.unlink(path);
        removed++;
        // A client that looked at the blob (HEAD) while it was being unlinked was told it
        // exists and will reference it next: put it back from the pool.
        if (this.deps.touches?.blobIsFresh(repo, digest)) {
          const pool = join(store.paths.pool, alg, hex);
          if (store.disk.stat(pool) && (await store.disk.link(pool, path).catch(() => false))) {
            report.blobs.pop();
            dropped.set(digest, (dropped.get(digest) ?? 1) - 1);
            remaining++;
          }
        }
      }
      if (removed > 0) await store.disk.syncDir(dir);
    }
    if (this.options.emptyRepositories && remaining === 0 && roots.length === 0) await this.removeEmpty(repo, report);
  }

  /** Removes an empty repository's layout (caller holds its lock and checked it is empty). */
  private async removeEmpty(repo: string, report: GcReport): Promise<void> {
    const { store } = this.deps;
    const indexInfo = store.disk.stat(store.paths.index(repo));
    if (!indexInfo || !this.old(repo, undefined, indexInfo.mtimeMs, indexInfo.ctimeMs)) return;
    if (store.uploads.list().some((s) => s.repo === repo)) return;
    report.emptyRepositories.push(repo);
    if (report.dryRun) return;
    const dir = store.paths.repo(repo);
    await store.disk.unlink(store.paths.index(repo));
    await store.disk.syncDir(dir);
    await store.disk.unlink(store.paths.ociLayout(repo));
    await store.disk.removeTree(join(dir, "blobs"));
    store.blobs.forgetDirs(dir);
    for (const name of store.disk.readdir(dir)) if (name.startsWith(TEMP_PREFIX)) await store.disk.unlink(join(dir, name));
    if (store.disk.readdir(dir).length === 0) await store.disk.removeTree(dir);
    await store.disk.syncDir(join(dir, ".."));
    this.deps.meta.dropRepo(repo);
    await store.layouts.index(repo); // drops the cached index
  }

  /** Removes pool entries that no repository links to. */
  async sweepPool(report: GcReport, dropped: ReadonlyMap<string, number> = new Map()): Promise<void> {
    const { store } = this.deps;
    for (const alg of ["sha256", "sha512"] as const) {
      const dir = store.paths.poolDir(alg);
      let removed = 0;
      for (const hex of store.disk.readdir(dir)) {
        if (hex.startsWith(TEMP_PREFIX)) continue;
        const path = join(dir, hex);
        const info = store.disk.stat(path);
        if (!info?.isFile) continue;
        const links = info.nlink - (report.dryRun ? (dropped.get(`${alg}:${hex}`) ?? 0) : 0);
        if (links > 1) continue;
        // No age check here: removing a repository's link changes the inode's ctime, and a
        // pool entry is only ever created while another link (the upload's file) holds it.
        // A mount from the pool in flight has touched the digest.
        if (this.deps.touches?.digestIsFresh(`${alg}:${hex}`)) continue;
        report.pool.push({ digest: `${alg}:${hex}`, size: info.size });
        report.bytesFreed += info.size;
        if (report.dryRun) continue;
        await store.disk.unlink(path);
        removed++;
      }
      if (removed > 0) await store.disk.syncDir(dir);
    }
  }

  /** Discards upload sessions idle longer than the limit. */
  private async sweepUploads(report: GcReport): Promise<void> {
    const limit = this.now() - this.options.uploadIdleMs;
    for (const s of this.deps.store.uploads.list()) {
      if (s.busy || s.lastActive > limit) continue;
      report.uploads.push({ repo: s.repo, id: s.id });
      if (!report.dryRun) await this.deps.store.uploads.discard(s.id);
    }
  }

  /**
   * True when something may be collected: its file (times given) was linked or changed
   * at least `grace` ago and the blob (or, without a digest, the repository) was not
   * touched by a client within it.
   */
  private old(repo: string | undefined, digest: string | undefined, mtimeMs?: number, ctimeMs?: number): boolean {
    const cutoff = this.now() - this.options.graceMs;
    // a blob of a manifest that has been deleted is not protected by its file's age (touches.ts, settle)
    const changed = mtimeMs === undefined ? undefined : Math.max(mtimeMs, ctimeMs ?? 0);
    const settled = changed !== undefined && repo !== undefined && digest !== undefined && this.deps.touches?.settledAfter(repo, digest, changed) === true;
    if (changed !== undefined && changed > cutoff && !settled) return false;
    if (repo !== undefined && digest !== undefined && this.deps.touches?.blobIsFresh(repo, digest)) return false;
    if (repo !== undefined && digest === undefined && this.deps.touches?.repoIsFresh(repo)) return false;
    if (repo !== undefined && digest !== undefined && mtimeMs === undefined) {
      const d = parseDigest(digest);
      const info = d && this.deps.store.blobs.stat(repo, d);
      if (info && Math.max(info.mtimeMs, info.ctimeMs ?? 0) > cutoff) return false;
    }
    return true;
  }
}

/** A report with nothing in it. */
export function emptyReport(dryRun: boolean): GcReport {
  return { dryRun, repositories: 0, manifests: [], blobs: [], pool: [], uploads: [], emptyRepositories: [], skipped: [], bytesFreed: 0, durationMs: 0 };
}
