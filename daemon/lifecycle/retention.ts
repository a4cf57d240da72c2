/**
 * Retention policies per repository pattern. For a repository, the first policy whose
 * `repositories` globs match it applies:
 *
 * - a tag is kept when any rule keeps it: it is among the `keepLast` tags most recently
 *   pushed or pulled, it matches one of `keepTags` (regular expressions, anchored), or it
 *   was pushed or pulled within `keepWithinMs`; a policy with none of these rules keeps
 *   every tag;
 * - every other tag is deleted, and with it each manifest that no kept tag still reaches
 *   (as itself, an index child or a referrer of a reached manifest);
 * - with `untaggedAfterMs`, untagged manifests that no tag reaches and that are older than
 *   that are deleted too.
 *
 * Push and pull times come from the usage statistics (in memory, flushed in batches); a
 * manifest never seen there counts as pushed when its blob file was last changed. Each
 * repository is decided and pruned in one hold of its lock, on the graph read under it
 * (prune.ts re-checks each tag and manifest), in one index.json write; blobs are left to
 * garbage collection. With `dryRun` nothing is deleted and the plan is returned.
 */
import type { Logger } from "../log";
import type { UsageStats } from "../meta/usage";
import { parseDigest } from "../oci/digest";
import type { Registry } from "../registry/registry";
import type { Storage } from "../storage/api";
import { Pacer, type ParseCache, type RepoGraph, closure, readGraph } from "./graph";
import type { PassProgress } from "./pacer";
import { RepoPatterns } from "./patterns";
import { removeDecided } from "./prune";

/** One policy, as configured. */
export interface RetentionPolicy {
  repositories: readonly string[];
  keepLast: number;
  keepTags: readonly string[];
  keepWithinMs: number;
  untaggedAfterMs: number;
}

/** What a retention pass deletes (or would delete). */
export interface RetentionReport {
  dryRun: boolean;
  tags: { repo: string; tag: string; digest: string }[];
  manifests: { repo: string; digest: string }[];
}

interface Compiled {
  repos: RepoPatterns;
  keepTags: RegExp[];
  policy: RetentionPolicy;
}

/** Applies retention policies. */
export class Retention {
  private readonly policies: Compiled[];

  constructor(
    private readonly store: Storage,
    private readonly registry: Registry,
    private readonly usage: UsageStats | undefined,
    policies: readonly RetentionPolicy[],
    private readonly maxManifestBytes: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    /** Parsed manifests shared with the garbage collector (content-addressed, bounded). */
    private readonly cache?: ParseCache,
  ) {
    this.policies = policies.map((p) => ({ repos: new RepoPatterns(p.repositories), keepTags: p.keepTags.map((t) => new RegExp(`^(?:${t})$`)), policy: p }));
  }

  /** True when at least one policy is configured. */
  get active(): boolean {
    return this.policies.length > 0;
  }

  /** One pass over every repository a policy matches. */
  async run(opts: { dryRun?: boolean; signal?: AbortSignal; progress?: (p: PassProgress) => void } = {}): Promise<RetentionReport> {
    const report: RetentionReport = { dryRun: opts.dryRun ?? false, tags: [], manifests: [] };
    if (!this.active) return report;
    // Yields between steps and keeps the pass's garbage bounded (pacer.ts).
    const pacer = new Pacer();
    const repos = await this.store.repositories();
    let done = 0;
    opts.progress?.({ done, total: repos.length });
    for (const repo of repos) {
      if (opts.signal?.aborted) break;
      if (done > 0) opts.progress?.({ done, total: repos.length });
      done++;
      await pacer.tick();
      // It only has to span this repository's two reads (refs.ts).
      this.cache?.clear();
      const compiled = this.policies.find((p) => p.repos.matches(repo));
      if (!compiled) continue;
      if (opts.dryRun) {
        const graph = await readGraph(this.store, repo, this.maxManifestBytes, { cache: this.cache, pacer });
        if (!graph || graph.incomplete) continue;
        const plan = this.plan(graph, compiled);
        report.tags.push(...plan.tags.map((t) => ({ repo, ...t })));
        report.manifests.push(...plan.manifests.map((digest) => ({ repo, digest })));
        continue;
      }
      // Outside the lock: fills the parse cache, so that the read under the lock is stats and lookups.
      const outside = await readGraph(this.store, repo, this.maxManifestBytes, { cache: this.cache, pacer });
      if (!outside) continue;
      if (!(await this.store.indexes.exists(repo))) continue;
      await this.store.indexes.transaction(repo, async (tx) => {
        // Decided and deleted in one hold of the lock: a tag pushed or moved before this point is in the graph.
        const graph = await readGraph(this.store, repo, this.maxManifestBytes, { cache: this.cache, pacer, index: outside.index });
        if (!graph) return;
        if (graph.incomplete) {
          this.log.warn("retention: a manifest of the repository cannot be read at all; nothing of it is deleted", { repo });
          return;
        }
        const plan = this.plan(graph, compiled);
        if (plan.tags.length === 0 && plan.manifests.length === 0) return;
        let done: { tags: string[]; manifests: string[] };
        try {
          done = await removeDecided(this.registry, graph, tx, plan);
        } catch (err) {
          this.log.warn("retention: nothing deleted this pass; index.json cannot be written", { repo, error: (err as Error).message });
          return;
        }
        const gone = new Set(done.tags);
        for (const t of plan.tags) if (gone.has(t.tag)) report.tags.push({ repo, ...t });
        for (const digest of done.manifests) report.manifests.push({ repo, digest });
        for (const tag of done.tags) this.usage?.forget(repo, tag);
        for (const digest of done.manifests) this.usage?.forget(repo, digest);
        this.log.info("retention applied", { repo, tags: done.tags, manifests: done.manifests.length });
      });
    }
    if (!opts.signal?.aborted) opts.progress?.({ done: repos.length, total: repos.length });
    return report;
  }

  /** Tags and manifests the policy removes from one repository. */
  private plan(graph: RepoGraph, c: Compiled): { tags: { tag: string; digest: string }[]; manifests: string[] } {
    const p = c.policy;
    const now = this.now();
    // When each tag was last used is asked only where a rule needs it (statistics and a stat
    // per tag): a repository with no more tags than keepLast keeps them all without it.
    const tagged: { tag: string; digest: string; used?: number }[] = [];
    for (const node of graph.nodes.values()) for (const tag of node.tags) tagged.push({ tag, digest: node.digest });
    const usedOf = (t: { tag: string; digest: string; used?: number }): number => (t.used ??= this.lastUsed(graph.repo, t.tag, t.digest));
    const hasTagRules = p.keepLast > 0 || c.keepTags.length > 0 || p.keepWithinMs > 0;
    const keep = new Set<string>();
    if (!hasTagRules || tagged.length <= p.keepLast) for (const t of tagged) keep.add(t.tag);
    else {
      if (p.keepLast > 0) [...tagged].sort((a, b) => usedOf(b) - usedOf(a) || (a.tag < b.tag ? -1 : 1)).slice(0, p.keepLast).forEach((t) => keep.add(t.tag));
      for (const t of tagged) {
        if (keep.has(t.tag)) continue;
        if (c.keepTags.some((re) => re.test(t.tag))) keep.add(t.tag);
        else if (p.keepWithinMs > 0 && usedOf(t) >= now - p.keepWithinMs) keep.add(t.tag);
      }
    }
    const deleted = tagged.filter((t) => !keep.has(t.tag));
    const live = closure(graph, tagged.filter((t) => keep.has(t.tag)).map((t) => t.digest), true);
    const fromDeleted = closure(graph, deleted.map((t) => t.digest), true);
    const manifests = new Set<string>();
    for (const node of graph.nodes.values()) {
      if (!node.listed || live.has(node.digest)) continue;
      if (fromDeleted.has(node.digest)) manifests.add(node.digest);
      else if (p.untaggedAfterMs > 0 && node.tags.length === 0 && this.lastUsed(graph.repo, node.digest, node.digest) < now - p.untaggedAfterMs) {
        manifests.add(node.digest);
      }
    }
    return { tags: deleted.map(({ tag, digest }) => ({ tag, digest })), manifests: [...manifests] };
  }

  /** Latest push or pull of a reference; a manifest unknown to the statistics counts from its file's last change. */
  private lastUsed(repo: string, ref: string, digest: string): number {
    const known = this.usage?.lastUsed(repo, ref, digest);
    if (known !== undefined) return known;
    const d = parseDigest(digest);
    const info = d && this.store.blobs.stat(repo, d);
    return info ? info.mtimeMs : 0;
  }
}
