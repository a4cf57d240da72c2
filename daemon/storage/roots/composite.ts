/**
 * Several storage roots behind one {@link Storage}: each repository is served by the root its
 * name routes to (route.ts), and every per-repository call goes to that root's own Storage
 * (a local layout tree today, any backend of the seam tomorrow). What is not per repository
 * is merged: the walk lists the roots' repositories in one lexical order (each root listing
 * only the names routed to it), upload figures and usage are summed, audits and sweeps visit
 * every root. Lifecycle work (GC, quota, scrub, retention) runs per root on the children
 * (roots/lifecycles.ts); the composite's sweep and audit serve whole-store callers and the
 * contract suite.
 *
 * A blob mounted across roots is copied (copy.ts) through the target root's one ingest path,
 * so the target's quota and free-space floor admit it like a push; within a root a mount
 * stays a link (dedupe within a root). A root that was unavailable at start-up answers every
 * call for its repositories with StorageError "unavailable" (503 UNAVAILABLE to clients).
 */
import type { Algorithm, Digest } from "../../oci/digest";
import type { Descriptor } from "../../oci/manifest";
import type {
  Awaitable, AuditItem, BlobAudit, BlobBody, DedupeFigures, BlobEntry, BlobInfo, BlobIngest, BlobStore, BlobSweep, ByteRange, SweepBasis, IndexMutation, IndexTransaction, IngestOptions,
  QuarantinedBlob, RepoIndex, RepoIndexStore, Storage, StorageFigures, UploadSession, UploadStore, UsageMeter, WriteReserve,
} from "../api";
import { ManifestCache } from "../cache";
import { StorageError } from "../errors";
import { copyAcross } from "./copy";
import { RootRouter } from "./route";

/** One root as the composite sees it. */
export interface RootSlot {
  /** Repository name prefix ("" for the main root). */
  readonly prefix: string;
  /** The root's Storage; undefined while the root is unavailable. */
  readonly storage: Storage | undefined;
}

/** {@link Storage} over several roots, routed by repository prefix. */
export class CompositeStorage implements Storage {
  readonly blobs: BlobStore;
  readonly indexes: RepoIndexStore;
  readonly uploads: UploadStore;
  readonly manifests: ManifestCache;
  readonly sweep: BlobSweep;
  readonly meter: UsageMeter;
  readonly audit: BlobAudit;
  readonly reserve: WriteReserve;
  readonly router: RootRouter;

  /**
   * `slots[0]` is the main root (prefix ""). `uploadLimits` caps the upload sessions of all
   * roots together (each root's own cap alone would allow one full set per root).
   */
  constructor(
    readonly slots: readonly RootSlot[],
    manifestCacheBytes: number,
    readonly uploadLimits?: { maxSessions: number; maxPerClient: number },
  ) {
    this.router = new RootRouter(slots.map((s) => s.prefix));
    this.manifests = new ManifestCache(manifestCacheBytes);
    this.blobs = new CompositeBlobs(this);
    this.indexes = new CompositeIndexes(this);
    this.uploads = new CompositeUploads(this);
    this.sweep = new CompositeSweep(this);
    this.meter = new CompositeMeter(this);
    this.audit = new CompositeAudit(this);
    this.reserve = { restore: async () => void (await Promise.all(this.available().map((s) => s.reserve.restore()))) };
  }

  trim(): void {
    this.manifests.clear();
    for (const s of this.available()) s.trim();
  }

  /** The Storage serving `repo`; throws StorageError "unavailable" when its root is. */
  of(repo: string): Storage {
    const slot = this.slots[this.router.route(repo)]!;
    if (slot.storage) return slot.storage;
    throw new StorageError(
      "unavailable",
      `the storage of repositories under "${slot.prefix}" is unavailable (its root was missing or read-only when berth started); the operator must repair it and restart berth`,
    );
  }

  /** The Storage serving `repo`, or undefined when its root is unavailable. */
  maybe(repo: string): Storage | undefined {
    return this.slots[this.router.route(repo)]!.storage;
  }

  /** The roots that are available, each once. */
  available(): Storage[] {
    return [...new Set(this.slots.flatMap((s) => (s.storage ? [s.storage] : [])))];
  }

  /** Every repository of every available root, in lexical order (each root lists only the names routed to it). */
  async repositories(): Promise<string[]> {
    const out: string[] = [];
    for (const [i, slot] of this.slots.entries()) {
      if (!slot.storage) continue;
      for (const repo of await slot.storage.repositories()) if (this.router.route(repo) === i) out.push(repo);
    }
    return out.sort();
  }

  /** Names a root holds that another root's prefix claims (left there, not served): for a start-up warning. */
  async shadowed(): Promise<{ prefix: string; repositories: string[] }[]> {
    const out: { prefix: string; repositories: string[] }[] = [];
    for (const [i, slot] of this.slots.entries()) {
      if (!slot.storage) continue;
      const names = (await slot.storage.repositories()).filter((r) => this.router.route(r) !== i);
      if (names.length > 0) out.push({ prefix: slot.prefix, repositories: names });
    }
    return out;
  }

  repoBlobs(repo: string) {
    return this.of(repo).repoBlobs(repo);
  }

  /** Every root's stored blobs: a digest stored in two roots is two stored copies, listed twice. */
  async *storedBlobs(): AsyncIterable<BlobEntry> {
    for (const s of this.available()) yield* s.storedBlobs();
  }
}

class CompositeBlobs implements BlobStore {
  constructor(private readonly c: CompositeStorage) {}

  stat(repo: string, digest: Digest): BlobInfo | undefined {
    return this.c.of(repo).blobs.stat(repo, digest);
  }

  /** The routed root's own lookup where it has one (a shared bucket another process writes to); else nothing more is known. */
  async lookup(repo: string, digest: Digest): Promise<BlobInfo | undefined> {
    const blobs = this.c.of(repo).blobs;
    return blobs.lookup ? blobs.lookup(repo, digest) : undefined;
  }
  async read(repo: string, digest: Digest): Promise<Uint8Array> {
    return this.c.of(repo).blobs.read(repo, digest);
  }
  open(repo: string, digest: Digest, range?: ByteRange): BlobBody {
    return this.c.of(repo).blobs.open(repo, digest, range);
  }
  async holdsDurably(repo: string, digest: Digest): Promise<boolean> {
    return this.c.of(repo).blobs.holdsDurably(repo, digest);
  }
  async canMount(digest: Digest, from?: string): Promise<boolean> {
    if (from !== undefined) {
      const source = this.c.maybe(from);
      return source !== undefined && (await source.blobs.canMount(digest, from));
    }
    for (const s of this.c.available()) if (await s.blobs.canMount(digest)) return true;
    return false;
  }
  async mount(repo: string, digest: Digest, from?: string): Promise<boolean> {
    const target = this.c.of(repo);
    const source = from === undefined ? undefined : this.c.maybe(from);
    // within one root (or from any copy the target root stores): a link, no bytes written
    if (from === undefined || source === target) return target.blobs.mount(repo, digest, from);
    if (!source) return false;
    if (await target.blobs.canMount(digest)) return target.blobs.mount(repo, digest);
    return copyAcross(source, from!, target, repo, digest);
  }
  async remove(repo: string, digest: Digest): Promise<boolean> {
    return this.c.of(repo).blobs.remove(repo, digest);
  }
  async ingest(repo: string, algorithm: Algorithm, options?: IngestOptions): Promise<BlobIngest> {
    return this.c.of(repo).blobs.ingest(repo, algorithm, options);
  }
}

class CompositeIndexes implements RepoIndexStore {
  constructor(private readonly c: CompositeStorage) {}

  exists(repo: string) {
    return this.c.of(repo).indexes.exists(repo);
  }
  /** The routed root's cheap stamp (a stat) where it has one; undefined: the caller reads the index. */
  stamp(repo: string): Awaitable<string | undefined> {
    const indexes = this.c.of(repo).indexes;
    return indexes.stamp ? indexes.stamp(repo) : undefined;
  }
  async index(repo: string, opts?: { keep?: boolean }): Promise<RepoIndex | undefined> {
    return this.c.of(repo).indexes.index(repo, opts);
  }
  changedAt(repo: string) {
    return this.c.of(repo).indexes.changedAt(repo);
  }
  async ensure(repo: string): Promise<void> {
    return this.c.of(repo).indexes.ensure(repo);
  }
  async compareAndSwap(repo: string, stamp: string, entries: Descriptor[]): Promise<RepoIndex | undefined> {
    return this.c.of(repo).indexes.compareAndSwap(repo, stamp, entries);
  }
  async transaction<T>(repo: string, fn: (tx: IndexTransaction) => Promise<T>): Promise<T> {
    return this.c.of(repo).indexes.transaction(repo, fn);
  }
  async update(repo: string, mutate: IndexMutation, after?: (index: RepoIndex) => void): Promise<RepoIndex> {
    return this.c.of(repo).indexes.update(repo, mutate, after);
  }
  async withLock<T>(repo: string, fn: () => Promise<T>): Promise<T> {
    return this.c.of(repo).indexes.withLock(repo, fn);
  }
  async drop(repo: string): Promise<void> {
    return this.c.of(repo).indexes.drop(repo);
  }
}

class CompositeUploads implements UploadStore {
  constructor(private readonly c: CompositeStorage) {}

  /**
   * Checks the caps over all roots, then starts the session in its root without a turn of the
   * event loop in between: a root counts a session from the call on (the local backend's
   * start registers it before its first await), so concurrent starts cannot pass the caps together.
   */
  async start(repo: string, algorithm: Algorithm, client?: string): Promise<UploadSession> {
    const root = this.c.of(repo);
    const limits = this.c.uploadLimits;
    if (limits) {
      const open = this.count();
      if (open >= limits.maxSessions) throw new StorageError("too-many-uploads", `${open} upload sessions are open, the most the registry allows; retry later`);
      const mine = client === undefined ? 0 : this.countFor(client);
      if (mine >= limits.maxPerClient) throw new StorageError("too-many-uploads", `this client has ${mine} upload sessions open, the most one client may have; finish or cancel one first`);
    }
    return root.uploads.start(repo, algorithm, client);
  }
  get(repo: string, id: string): UploadSession {
    return this.c.of(repo).uploads.get(repo, id);
  }
  async append(repo: string, id: string, body: ReadableStream<Uint8Array> | null, opts?: { range?: { start: number; end: number }; length?: number }): Promise<UploadSession> {
    return this.c.of(repo).uploads.append(repo, id, body, opts);
  }
  async complete(repo: string, id: string, digest: Digest, beforeLink?: () => void): Promise<void> {
    return this.c.of(repo).uploads.complete(repo, id, digest, beforeLink);
  }
  async putSmall(repo: string, digest: Digest, bytes: Uint8Array, admit?: boolean): Promise<void> {
    return this.c.of(repo).uploads.putSmall(repo, digest, bytes, admit);
  }
  async cancel(repo: string, id: string): Promise<void> {
    return this.c.of(repo).uploads.cancel(repo, id);
  }
  async discard(id: string): Promise<void> {
    for (const s of this.c.available()) if (s.uploads.list().some((u) => u.id === id)) await s.uploads.discard(id);
  }
  count(): number {
    return this.c.available().reduce((n, s) => n + s.uploads.count(), 0);
  }
  countFor(client: string): number {
    return this.c.available().reduce((n, s) => n + s.uploads.countFor(client), 0);
  }
  list() {
    return this.c.available().flatMap((s) => s.uploads.list());
  }
  stop(): void {
    for (const s of this.c.available()) s.uploads.stop();
  }
}

class CompositeSweep implements BlobSweep {
  constructor(private readonly c: CompositeStorage) {}

  async unlink(repo: string, digest: string, basis?: SweepBasis): Promise<void> {
    return this.c.of(repo).sweep.unlink(repo, digest, basis);
  }
  async relink(repo: string, digest: string): Promise<boolean> {
    return this.c.of(repo).sweep.relink(repo, digest);
  }
  /** The first root's stored copy. */
  async stored(digest: string): Promise<BlobInfo | undefined> {
    for (const s of this.c.available()) {
      const info = await s.sweep.stored(digest);
      if (info) return info;
    }
    return undefined;
  }
  /** Removes the stored copy from every root (per-root GC removes only its own). */
  async unlinkStored(digest: string): Promise<void> {
    for (const s of this.c.available()) if (await s.sweep.stored(digest)) await s.sweep.unlinkStored(digest);
  }
  async settle(): Promise<void> {
    for (const s of this.c.available()) await s.sweep.settle();
  }
}

/** Two roots' savings together (dedupe is within a root; the oldest walk dates the sum). */
function addDedupe(a: DedupeFigures, b: DedupeFigures): DedupeFigures {
  return { savedBytes: a.savedBytes + b.savedBytes, sharedBlobs: a.sharedBlobs + b.sharedBlobs, at: Math.min(a.at, b.at) };
}

class CompositeMeter implements UsageMeter {
  constructor(private readonly c: CompositeStorage) {}

  /** Each root's savings, summed. */
  dedupe(maxAgeMs?: number): DedupeFigures {
    let out: DedupeFigures = { savedBytes: 0, sharedBlobs: 0, at: Date.now() };
    for (const s of this.c.available()) out = addDedupe(out, s.meter.dedupe(maxAgeMs));
    return out;
  }

  usage(prefixes: readonly string[]) {
    let total = 0;
    const byPrefix = new Map<string, number>(prefixes.map((p) => [p, 0]));
    for (const s of this.c.available()) {
      const u = s.meter.usage(prefixes);
      total += u.total;
      for (const [p, n] of u.byPrefix) byPrefix.set(p, (byPrefix.get(p) ?? 0) + n);
    }
    return { total, byPrefix };
  }
  /** Summed over the roots (roots on one file system count it more than once; quota asks each root). */
  space() {
    let free = 0;
    let total = 0;
    for (const s of this.c.available()) {
      const sp = s.meter.space();
      free += sp.free;
      total += sp.total;
    }
    return { free, total };
  }
  figures(): StorageFigures {
    const out: StorageFigures = { repositories: new Map(), poolBytes: 0, poolBlobs: 0, dedupe: { savedBytes: 0, sharedBlobs: 0, at: Date.now() } };
    for (const [i, slot] of this.c.slots.entries()) {
      if (!slot.storage) continue;
      const f = slot.storage.meter.figures();
      for (const [repo, v] of f.repositories) if (this.c.router.route(repo) === i) out.repositories.set(repo, v);
      out.poolBytes += f.poolBytes;
      out.poolBlobs += f.poolBlobs;
      out.dedupe = addDedupe(out.dedupe, f.dedupe);
    }
    return out;
  }
}

class CompositeAudit implements BlobAudit {
  /** Which root an item came from (items are the roots' own objects). */
  private readonly owner = new WeakMap<AuditItem, Storage>();

  constructor(private readonly c: CompositeStorage) {}

  async *auditItems(): AsyncIterable<AuditItem> {
    for (const s of this.c.available()) {
      for await (const item of s.audit.auditItems()) {
        this.owner.set(item, s);
        yield item;
      }
    }
  }
  quarantine(item: AuditItem, actual: string): Promise<QuarantinedBlob> {
    const s = this.owner.get(item);
    if (!s) throw new Error(`blob ${item.digest.value} was not listed by this composite's auditItems()`);
    return s.audit.quarantine(item, actual);
  }
  quarantined(): QuarantinedBlob[] {
    return this.c.available().flatMap((s) => s.audit.quarantined());
  }
}
