/**
 * Eviction: when a write would cross a quota or the free-space floor, content that can be
 * fetched again is removed, least recently pulled (or pushed) first. Only evictable
 * repositories qualify: those matching the configured globs, and those sync says it fills
 * from an upstream (`setUpstreamPolicy`: their content can be fetched again). Pinned tags (by
 * `repo:tag` glob; a bare repository glob pins everything in it) are never evicted.
 *
 * One call evicts images one at a time until one of them frees bytes: the tag is deleted,
 * the manifest too when no other tag reaches it (both decided again under the repository's
 * lock, in one index.json write), then the repository and the pool are garbage collected
 * (with the usual grace period, so a push in flight is never robbed).
 */
import type { Logger } from "../log";
import type { UsageStats } from "../meta/usage";
import { parseDigest } from "../oci/digest";
import type { Registry } from "../registry/registry";
import type { Storage } from "../storage/api";
import { type GarbageCollector, emptyReport } from "./gc";
import { closure, readGraph } from "./graph";
import { type PinPatterns, type RepoPatterns } from "./patterns";
import { removeDecided } from "./prune";
import type { Shortfall } from "./quota";

interface Candidate {
  repo: string;
  tag?: string;
  digest: string;
  used: number;
}

/** What eviction removed so far (for the admin API). */
export interface EvictionRecord {
  repo: string;
  tag?: string;
  digest: string;
  bytesFreed: number;
  at: number;
  limit: string;
}

/** Sync's view of upstream content, for eviction. */
export interface UpstreamPolicy {
  /** The repository is filled from an upstream (its content can be fetched again). */
  serves(repo: string): boolean;
  /** The tag is pinned by sync (a desired workload of this site). */
  pinned(repo: string, tag: string): boolean;
}

/** Chooses and removes evictable content. */
export class Evictor {
  readonly history: EvictionRecord[] = [];
  /** What sync says about upstream content: repositories it fills, tags it pins. */
  private upstream: UpstreamPolicy | undefined;

  constructor(
    private readonly deps: { store: Storage; registry: Registry; gc: GarbageCollector; usage?: UsageStats; log: Logger },
    private readonly evictablePatterns: RepoPatterns,
    private readonly pins: PinPatterns,
    private readonly maxManifestBytes: number,
  ) {}

  /** Lets sync say which repositories it fills (evictable) and which tags it pins (never evicted). */
  setUpstreamPolicy(policy: UpstreamPolicy): void {
    this.upstream = policy;
  }

  /** True when content of `repo` may be evicted. */
  evictable(repo: string): boolean {
    return this.evictablePatterns.matches(repo) || this.upstream?.serves(repo) === true;
  }

  private pinned(repo: string, tag: string | undefined): boolean {
    return this.pins.pinned(repo, tag) || (tag !== undefined && this.upstream?.pinned(repo, tag) === true);
  }

  /** Evicts until something frees bytes; false when nothing evictable (for `shortfall`) is left. */
  async evictOne(shortfall: Shortfall): Promise<boolean> {
    for (const c of await this.candidates(shortfall)) {
      const freed = await this.evict(c);
      if (freed > 0) {
        const record: EvictionRecord = { repo: c.repo, digest: c.digest, bytesFreed: freed, at: Date.now(), limit: shortfall.limit };
        if (c.tag !== undefined) record.tag = c.tag;
        this.history.push(record);
        if (this.history.length > 100) this.history.shift();
        this.deps.log.info("evicted", { ...record, reason: shortfall.message });
        return true;
      }
    }
    return false;
  }

  private async candidates(shortfall: Shortfall): Promise<Candidate[]> {
    const out: Candidate[] = [];
    for (const repo of await this.deps.store.repositories()) {
      if (!this.evictable(repo) || (shortfall.prefix !== undefined && !repo.startsWith(shortfall.prefix))) continue;
      const graph = await readGraph(this.deps.store, repo, this.maxManifestBytes);
      if (!graph || graph.incomplete) continue;
      const tagged = [...graph.nodes.values()].filter((n) => n.tags.length > 0);
      const reached = closure(graph, tagged.map((n) => n.digest), true);
      for (const node of graph.nodes.values()) {
        if (!node.listed) continue;
        for (const tag of node.tags) if (!this.pinned(repo, tag)) out.push({ repo, tag, digest: node.digest, used: this.used(repo, tag, node.digest) });
        if (node.tags.length === 0 && !reached.has(node.digest) && !this.pinned(repo, undefined)) {
          out.push({ repo, digest: node.digest, used: this.used(repo, node.digest, node.digest) });
        }
      }
    }
    return out.sort((a, b) => a.used - b.used);
  }

  /**
   * Removes one candidate and collects its repository; returns the bytes freed. Decided
   * again and deleted in one hold of the repository's lock: the tag goes only if it still
   * points at the candidate's digest, the manifest only if nothing still reaches it (prune.ts).
   */
  private async evict(c: Candidate): Promise<number> {
    const { registry, store } = this.deps;
    if (!(await store.indexes.exists(c.repo))) return 0;
    let deleted = false;
    try {
      await store.indexes.transaction(c.repo, async (tx) => {
        const graph = await readGraph(store, c.repo, this.maxManifestBytes, { cache: this.deps.gc.cache });
        if (!graph || graph.incomplete) return;
        const done = await removeDecided(registry, graph, tx, { tags: c.tag === undefined ? [] : [{ tag: c.tag, digest: c.digest }], manifests: [c.digest] });
        for (const tag of done.tags) this.deps.usage?.forget(c.repo, tag);
        for (const digest of done.manifests) this.deps.usage?.forget(c.repo, digest);
        deleted = done.tags.length > 0 || done.manifests.length > 0;
      });
    } catch (err) {
      this.deps.log.debug("eviction: candidate kept", { repo: c.repo, tag: c.tag, digest: c.digest, error: (err as Error).message });
    }
    // Nothing of the candidate went (a push moved the tag or reached the manifest since): it frees nothing.
    return deleted ? this.collect(c.repo) : 0;
  }

  private async collect(repo: string): Promise<number> {
    const report = emptyReport(false);
    await this.deps.gc.collectRepo(repo, report);
    await this.deps.gc.sweepPool(report);
    return report.bytesFreed;
  }

  private used(repo: string, ref: string, digest: string): number {
    const known = this.deps.usage?.lastUsed(repo, ref, digest);
    if (known !== undefined) return known;
    const d = parseDigest(digest);
    return (d && this.deps.store.blobs.stat(repo, d)?.mtimeMs) || 0;
  }
}
