/**
 * The content graph of one repository, read from its index.json (the roots) and the
 * manifests it lists: which tags point where, which blobs and child manifests each
 * manifest needs, and which manifests are referrers of which subject. Garbage collection,
 * retention and eviction all decide from it.
 *
 * Reading is conservative: every `digest` found in a manifest's `config`, `layers`,
 * `blobs` or `manifests` (including non-distributable layers that happen to be present)
 * counts as referenced; a listed manifest that exists but cannot be parsed makes the graph
 * `incomplete`, and callers then remove no blobs from the repository.
 */
import { parseDigest } from "../oci/digest";
import { tagOf } from "../oci/layoutindex";
import type { RepoIndex } from "../storage/layouts";
import type { Store } from "../storage/store";

/** One manifest listed in (or reachable from) index.json. */
export interface ManifestNode {
  digest: string;
  size: number;
  /** Tags pointing at it in index.json. */
  tags: string[];
  /** Listed in index.json (a root), as opposed to only reachable as a child. */
  listed: boolean;
  /** Present in the repository's blobs. */
  present: boolean;
  /** Blobs it references (config, layers). */
  blobs: string[];
  /** Manifests an index lists. */
  children: string[];
  subject?: string;
}

/** A repository's graph. */
export interface RepoGraph {
  repo: string;
  index: RepoIndex;
  nodes: Map<string, ManifestNode>;
  /** A manifest could not be read or parsed: nothing may be swept. */
  incomplete: boolean;
}

function digestsOf(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  const out: string[] = [];
  for (const d of value) {
    const digest = (d as { digest?: unknown } | null)?.digest;
    if (typeof digest === "string") out.push(digest);
  }
  return out;
}

/** Reads the graph of `repo`; undefined when the repository does not exist. */
export async function readGraph(store: Store, repo: string, maxManifestBytes: number): Promise<RepoGraph | undefined> {
  const index = await store.layouts.index(repo);
  if (!index) return undefined;
  const nodes = new Map<string, ManifestNode>();
  let incomplete = false;
  const visit = async (digestText: string, size: number, listed: boolean): Promise<ManifestNode | undefined> => {
    const existing = nodes.get(digestText);
    if (existing) {
      existing.listed ||= listed;
      return existing;
    }
    const node: ManifestNode = { digest: digestText, size, tags: [], listed, present: false, blobs: [], children: [] };
    nodes.set(digestText, node);
    const digest = parseDigest(digestText);
    const info = digest && store.blobs.stat(repo, digest);
    if (!digest || !info) return node;
    node.present = true;
    if (info.size > maxManifestBytes) {
      incomplete = true;
      return node;
    }
    try {
      // The manifest cache holds bytes verified at push or first read; an idle pass then
      // needs no file reads at all.
      const bytes = store.manifests.get(digestText)?.bytes ?? (await store.blobs.read(repo, digest));
      const doc = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
      const config = (doc.config as { digest?: unknown } | undefined)?.digest;
      if (typeof config === "string") node.blobs.push(config);
      node.blobs.push(...digestsOf(doc.layers), ...digestsOf(doc.blobs));
      node.children = digestsOf(doc.manifests);
      const subject = (doc.subject as { digest?: unknown } | undefined)?.digest;
      if (typeof subject === "string") node.subject = subject;
    } catch {
      incomplete = true;
      return node;
    }
    for (const child of node.children) await visit(child, 0, false);
    return node;
  };
  for (const d of index.doc.manifests) {
    const node = await visit(d.digest, d.size, true);
    const tag = tagOf(d);
    if (node && tag !== undefined && !node.tags.includes(tag)) node.tags.push(tag);
  }
  return { repo, index, nodes, incomplete };
}

/**
 * Manifests reachable from `roots`: their children, recursively, and (with
 * `followReferrers`) every manifest whose subject is reachable, to a fixed point.
 */
export function closure(graph: RepoGraph, roots: Iterable<string>, followReferrers: boolean): Set<string> {
  const live = new Set<string>();
  const stack = [...roots];
  const add = () => {
    while (stack.length > 0) {
      const d = stack.pop()!;
      if (live.has(d)) continue;
      live.add(d);
      for (const c of graph.nodes.get(d)?.children ?? []) stack.push(c);
    }
  };
  add();
  if (!followReferrers) return live;
  for (let changed = true; changed; ) {
    changed = false;
    for (const node of graph.nodes.values()) {
      if (!live.has(node.digest) && node.subject !== undefined && live.has(node.subject)) {
        stack.push(node.digest);
        changed = true;
      }
    }
    add();
  }
  return live;
}

/** Every blob digest (manifests included) the manifests in `live` need. */
export function referencedBlobs(graph: RepoGraph, live: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const d of live) {
    out.add(d);
    for (const b of graph.nodes.get(d)?.blobs ?? []) out.add(b);
  }
  return out;
}

/** Orders manifests for deletion: an index before the children it lists. */
export function parentsFirst(graph: RepoGraph, digests: Iterable<string>): string[] {
  const set = new Set(digests);
  const out: string[] = [];
  const done = new Set<string>();
  const visit = (d: string, depth: number) => {
    if (done.has(d) || depth > 64) return;
    for (const node of graph.nodes.values()) if (set.has(node.digest) && node.children.includes(d)) visit(node.digest, depth + 1);
    if (!done.has(d)) {
      done.add(d);
      out.push(d);
    }
  };
  for (const d of set) visit(d, 0);
  return out;
}
