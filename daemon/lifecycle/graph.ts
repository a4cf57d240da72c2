/**
 * The content graph of one repository, read from its index.json (the roots) and the
 * manifests it lists: which tags point where, which blobs and child manifests each
 * manifest needs, and which manifests are referrers of which subject. Garbage collection,
 * retention and eviction all decide from it.
 *
 * All graph work is linear in the size of the graph (worklists, one subject -> referrers
 * map, reference counts; no fixed-point loops), and the readers take a {@link Pacer} that
 * yields to the event loop every few milliseconds, so a repository of thousands of
 * manifests never stalls request handling.
 *
 * Reading is conservative, because a blob wrongly collected is data lost:
 * - every digest in a manifest's `config`, `layers`, `blobs` and anywhere else in it (an
 *   unknown field, a schema we do not know) counts as a referenced blob, except `subject`
 *   (a referrer does not keep its subject) and `manifests` (the children);
 * - a manifest that is not a JSON object (corrupt bytes, a layer listed by mistake) pins
 *   every digest-shaped string its bytes contain, as a blob and as a child manifest, and
 *   is reported as `unreadable` (when index.json or a readable index names it);
 * - a node larger than the manifest size limit cannot be read: if a readable manifest names
 *   it as a blob, or its descriptor's media type is not a manifest type, it is a blob named
 *   as a manifest by mistake and pins only itself; otherwise nothing can be known and the
 *   graph is `incomplete` (callers then remove nothing from the repository).
 */
import { parseDigest } from "../oci/digest";
import { tagOf } from "../oci/layoutindex";
import { MANIFEST_TYPES } from "../oci/mediatypes";
import type { RepoIndex } from "../storage/api";
import type { Storage } from "../storage/api";
import type { Pacer } from "./pacer";
import { type ParseCache, parseNode } from "./refs";

export { ParseCache } from "./refs";
export { Pacer } from "./pacer";

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
  /** Blobs it references (config, layers, any other digest it mentions). */
  blobs: string[];
  /** Manifests an index lists. */
  children: string[];
  subject?: string;
  /** Why its content could not be read as a manifest (then read conservatively, see the module comment). */
  unreadable?: string;
}

/** A repository's graph. */
export interface RepoGraph {
  repo: string;
  index: RepoIndex;
  nodes: Map<string, ManifestNode>;
  /** A manifest could not be read at all and may reference anything: nothing may be removed. */
  incomplete: boolean;
  /** Manifests read conservatively, with the reason. */
  unreadable: { digest: string; reason: string }[];
}

/** Options for {@link readGraph}. */
export interface ReadOptions {
  cache?: ParseCache;
  pacer?: Pacer;
  /** An index read earlier in the pass: used again when the stored stamp still matches (one stat instead of a read). */
  index?: RepoIndex;
}

/** Reads the graph of `repo`; undefined when the repository does not exist. */
export async function readGraph(store: Storage, repo: string, maxManifestBytes: number, opts: ReadOptions = {}): Promise<RepoGraph | undefined> {
  // Not kept in the index cache: a pass over every repository would only churn it.
  const earlier = opts.index && store.indexes.stamp ? opts.index : undefined;
  const index = earlier && (await store.indexes.stamp!(repo)) === earlier.stamp ? earlier : await store.indexes.index(repo, { keep: false });
  if (!index) return undefined;
  const graph: RepoGraph = { repo, index, nodes: new Map(), incomplete: false, unreadable: [] };
  const oversize: { node: ManifestNode; mediaType: string }[] = [];
  const work: { digest: string; size: number; listed: boolean; mediaType: string }[] = [];
  const visit = async (digestText: string, size: number, listed: boolean, mediaType: string): Promise<ManifestNode> => {
    const existing = graph.nodes.get(digestText);
    if (existing) {
      existing.listed ||= listed;
      return existing;
    }
    const node: ManifestNode = { digest: digestText, size, tags: [], listed, present: false, blobs: [], children: [] };
    graph.nodes.set(digestText, node);
    const digest = parseDigest(digestText);
    const info = digest && store.blobs.stat(repo, digest);
    if (!digest || !info) return node;
    node.present = true;
    if (info.size > maxManifestBytes) {
      oversize.push({ node, mediaType });
      return node;
    }
    let parsed = opts.cache?.get(digestText);
    if (!parsed) {
      try {
        // The manifest cache holds bytes verified at push or first read; an idle pass then
        // needs no file reads at all.
        parsed = parseNode(store.manifests.get(digestText)?.bytes ?? (await store.blobs.read(repo, digest)));
      } catch (err) {
        // The file vanished or cannot be read now: nothing can be known this pass.
        node.unreadable = `cannot be read: ${(err as Error).message}`;
        graph.unreadable.push({ digest: digestText, reason: node.unreadable });
        graph.incomplete = true;
        return node;
      }
      // Only clean parses are cached: bytes that are corrupt now may be replaced by a good copy later.
      if (parsed.unreadable === undefined) opts.cache?.set(digestText, parsed);
    }
    node.blobs = parsed.blobs;
    node.children = parsed.children;
    if (parsed.subject !== undefined) node.subject = parsed.subject;
    if (parsed.unreadable !== undefined) node.unreadable = parsed.unreadable;
    node.children.forEach((child, i) => work.push({ digest: child, size: 0, listed: false, mediaType: parsed.childTypes?.[i] ?? "" }));
    return node;
  };
  for (const d of index.doc.manifests) {
    await opts.pacer?.tick();
    const node = await visit(d.digest, d.size, true, d.mediaType);
    const tag = tagOf(d);
    if (tag !== undefined && !node.tags.includes(tag)) node.tags.push(tag);
    while (work.length > 0) {
      const w = work.pop()!;
      await opts.pacer?.tick();
      await visit(w.digest, w.size, w.listed, w.mediaType);
    }
  }
  // Reported: unreadable manifests that index.json or a readable index names as manifests
  // (not the digests a corrupt one merely mentions, which are followed only to be safe).
  const named = new Set<string>();
  for (const n of graph.nodes.values()) if (n.unreadable === undefined) for (const c of n.children) named.add(c);
  const reported = new Set(graph.unreadable.map((u) => u.digest));
  for (const n of graph.nodes.values()) {
    if (n.unreadable !== undefined && !reported.has(n.digest) && (n.listed || named.has(n.digest))) {
      graph.unreadable.push({ digest: n.digest, reason: n.unreadable });
    }
  }
  if (oversize.length > 0) {
    const namedAsBlob = new Set<string>();
    for (const n of graph.nodes.values()) for (const b of n.blobs) namedAsBlob.add(b);
    for (const { node, mediaType } of oversize) {
      if (namedAsBlob.has(node.digest) || (mediaType !== "" && !MANIFEST_TYPES.has(mediaType))) {
        node.unreadable = "larger than the manifest size limit, and named as a blob or declared with a non-manifest media type: kept as a blob that references nothing";
      } else {
        node.unreadable = `larger than the manifest size limit (${maxManifestBytes} bytes); what it references cannot be known`;
        graph.incomplete = true;
      }
      graph.unreadable.push({ digest: node.digest, reason: node.unreadable });
    }
  }
  return graph;
}

/** Subject digest -> the manifests of the graph that name it as their subject (built once). */
function referrersOf(graph: RepoGraph, onlyListed: boolean): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const n of graph.nodes.values()) {
    if (n.subject === undefined || (onlyListed && !n.listed)) continue;
    const list = out.get(n.subject);
    if (list) list.push(n.digest);
    else out.set(n.subject, [n.digest]);
  }
  return out;
}

/** Runs a generator computation to its end without pausing. */
function finish<T>(steps: Generator<void, T>): T {
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
  }
}

/** Steps between the points where a long graph computation may pause. */
const STEP = 512;

/**
 * Manifests reachable from `roots`: their children, recursively, and (with
 * `followReferrers`) every manifest whose subject is reachable. Linear: one worklist.
 */
export function closure(graph: RepoGraph, roots: Iterable<string>, followReferrers: boolean): Set<string> {
  return finish(closureSteps(graph, roots, followReferrers));
}

/** {@link closure} as pausable steps (run it with {@link Pacer.run}). */
export function* closureSteps(graph: RepoGraph, roots: Iterable<string>, followReferrers: boolean): Generator<void, Set<string>> {
  const live = new Set<string>();
  const referrers = followReferrers ? referrersOf(graph, false) : undefined;
  yield;
  const stack = [...roots];
  for (let n = 1; stack.length > 0; n++) {
    if (n % STEP === 0) yield;
    const d = stack.pop()!;
    if (live.has(d)) continue;
    live.add(d);
    for (const c of graph.nodes.get(d)?.children ?? []) if (!live.has(c)) stack.push(c);
    for (const r of referrers?.get(d) ?? []) if (!live.has(r)) stack.push(r);
  }
  return live;
}

/**
 * Listed manifests that are orphan referrers: untagged, with a subject that is no longer in
 * the repository (neither listed nor a child of a manifest that stays), repeatedly — a
 * referrer of a dropped referrer goes too. `anchored` manifests always stay. This is the
 * greatest set of survivors (mutually supporting manifests stay), computed in linear time
 * with reference counts on the child edges instead of a fixed-point loop; pausable steps
 * (run them with {@link Pacer.run}).
 */
export function* orphanReferrerSteps(graph: RepoGraph, anchored: ReadonlySet<string> = new Set()): Generator<void, Set<string>> {
  // count: the reasons a manifest is in the repository (listed and kept, plus each parent in the repository that lists it).
  const count = new Map<string, number>();
  const add = (d: string) => count.set(d, (count.get(d) ?? 0) + 1);
  let n = 0;
  for (const node of graph.nodes.values()) {
    if (++n % STEP === 0) yield;
    if (node.listed) add(node.digest);
    for (const c of node.children) add(c);
  }
  const referrers = referrersOf(graph, true);
  yield;
  const dead = new Set<string>();
  const gone = new Set<string>();
  const orphan = (x: ManifestNode | undefined): x is ManifestNode =>
    x !== undefined && x.listed && x.tags.length === 0 && x.subject !== undefined && !anchored.has(x.digest) && !dead.has(x.digest) && !((count.get(x.subject) ?? 0) > 0);
  const queue: string[] = [];
  for (const node of graph.nodes.values()) {
    if (++n % STEP === 0) yield;
    if (orphan(node)) queue.push(node.digest);
  }
  while (queue.length > 0) {
    const d = queue.pop()!;
    if (!orphan(graph.nodes.get(d))) continue;
    dead.add(d);
    // Its listing goes; whatever loses its last reason leaves the repository, and its referrers are examined.
    const stack = [d];
    while (stack.length > 0) {
      if (++n % STEP === 0) yield;
      const x = stack.pop()!;
      const left = (count.get(x) ?? 0) - 1;
      count.set(x, left);
      if (left !== 0) continue;
      gone.add(x);
      for (const c of graph.nodes.get(x)?.children ?? []) stack.push(c);
      for (const r of referrers.get(x) ?? []) queue.push(r);
    }
  }
  return new Set([...dead].filter((d) => gone.has(d)));
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

/** Orders manifests for deletion: an index before the children it lists (linear, depth-first). */
export function parentsFirst(graph: RepoGraph, digests: Iterable<string>): string[] {
  const set = new Set(digests);
  const parents = new Map<string, string[]>();
  for (const n of graph.nodes.values()) {
    if (!set.has(n.digest)) continue;
    for (const c of n.children) if (set.has(c)) (parents.get(c) ?? parents.set(c, []).get(c)!).push(n.digest);
  }
  const out: string[] = [];
  const done = new Set<string>();
  for (const start of set) {
    // Iterative post-order over the parent edges: every parent is emitted before the child.
    const stack: { d: string; i: number }[] = [{ d: start, i: 0 }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (done.has(top.d)) {
        stack.pop();
        continue;
      }
      const ps = parents.get(top.d) ?? [];
      if (top.i < ps.length) {
        const p = ps[top.i++]!;
        if (!done.has(p)) stack.push({ d: p, i: 0 });
        continue;
      }
      done.add(top.d);
      out.push(top.d);
      stack.pop();
    }
  }
  return out;
}
