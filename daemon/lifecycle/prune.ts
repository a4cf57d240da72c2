/**
 * The last check before retention or eviction deletes what it decided on: judged on the
 * repository's graph read under its lock (so a push acknowledged before the lock was taken
 * is in it), a tag goes only if it still points at the decided digest, and a manifest only
 * if it is listed, no remaining tag reaches it (as itself, an index child or a referrer of
 * a reached manifest) and no index that stays listed lists it. The deletion itself is one
 * index.json write in the same lock hold (Registry.removeLocked).
 */
import type { Registry } from "../registry/registry";
import type { IndexTransaction } from "../storage/api";
import { type RepoGraph, closure } from "./graph";

/** Tags and manifests a policy decided to delete. */
export interface Decided {
  tags: readonly { tag: string; digest: string }[];
  manifests: Iterable<string>;
}

/** What of `decided` may still go, judged on `graph` (read under the repository's lock). */
export function deletable(graph: RepoGraph, decided: Decided): { tags: { tag: string; digest: string }[]; manifests: string[] } {
  const tags = decided.tags.filter((t) => graph.nodes.get(t.digest)?.tags.includes(t.tag) === true);
  const goneTags = new Set(tags.map((t) => t.tag));
  const tagged = [...graph.nodes.values()].filter((n) => n.tags.some((t) => !goneTags.has(t))).map((n) => n.digest);
  const byTags = closure(graph, tagged, true);
  const decidedListed = new Set([...decided.manifests].filter((d) => graph.nodes.get(d)?.listed === true));
  // Reached from an index that stays listed (transitively, so through other decided manifests too).
  const staying = [...graph.nodes.values()].filter((n) => n.listed && !decidedListed.has(n.digest)).map((n) => n.digest);
  const listedByStaying = closure(graph, staying, false);
  const gone = [...decidedListed].filter((d) => !byTags.has(d) && !listedByStaying.has(d));
  return { tags, manifests: gone };
}

/** Deletes what of `decided` may still go (see {@link deletable}); the caller holds the lock (`tx`). */
export function removeDecided(registry: Registry, graph: RepoGraph, tx: IndexTransaction, decided: Decided): Promise<{ tags: string[]; manifests: string[] }> {
  const ok = deletable(graph, decided);
  return registry.removeLocked(graph.repo, tx, ok.tags, ok.manifests.map((digest) => ({ digest, blobs: graph.nodes.get(digest)?.blobs ?? [] })));
}
