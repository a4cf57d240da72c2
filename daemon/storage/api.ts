/**
 * The storage seam: what the registry, lifecycle, sync and metrics may ask of storage, as
 * interfaces with no path, no `Disk` and no `Paths` in them. The local OCI-layout backend
 * (store.ts and the files it composes) implements them; an object-store backend implements
 * the same ones, and test/storage/contract.ts holds the behaviour every backend must show.
 *
 * Shape of the seam:
 * - {@link BlobStore}: content-addressed blobs, each linked into the repositories that hold
 *   it (stat, whole read, ranged open answering a local file, a stream or a redirect,
 *   ingest, link from another repository or the shared pool, remove).
 * - {@link BlobIngest}: the one way bytes enter the store (client uploads, sync fetches,
 *   layout adoption): written in bounded batches, admitted against quota and free space,
 *   hashed as written, flushed early, and committed under a digest or cancelled.
 * - {@link RepoIndexStore}: each repository's list of manifests (the OCI index), read with
 *   a version token and replaced only by compare-and-swap on that token.
 * - Optional abilities, each a small interface of its own, for lifecycle work that only
 *   some backends can do cheaply: {@link BlobSweep} (GC), {@link UsageMeter} (quota),
 *   {@link BlobAudit} (scrub and quarantine), {@link WriteReserve}.
 * - {@link StorageWalk}: the one walk, with one definition of a repository.
 *
 * Every method names blobs by digest and repositories by name; no method promises a
 * particular root, so several roots (or a backend per repository prefix) can stand behind
 * one {@link Storage}.
 */
import type { Algorithm, Digest } from "../oci/digest";
import type { Descriptor } from "../oci/manifest";
import type { IndexDoc } from "../oci/layoutindex";
import type { ManifestCache } from "./cache";

/**
 * A value a backend may answer at once (the local backend: a stat) or after a round trip
 * (an object store): callers always `await` it.
 */
export type Awaitable<T> = T | Promise<T>;

/** A sequence a backend may list at once or page by page: callers use `for await`. */
export type Listing<T> = Iterable<T> | AsyncIterable<T>;

/** What storage knows of one stored blob. */
export interface BlobInfo {
  size: number;
  /** When the blob was last written or linked into the repository (ms since the epoch). */
  mtimeMs: number;
  /** Last change of its metadata (a link made or removed), where the backend knows it. */
  ctimeMs?: number;
  /** Names (repository links plus the pool entry) of the same stored bytes, where known. */
  links?: number;
  /** Identity of the stored bytes (equal for two names of one object), where known. */
  id?: number;
}

/** A blob in a walk: its digest text (`alg:hex`) and what storage knows of it. */
export interface BlobEntry extends BlobInfo {
  digest: string;
  /** The backend's GC generation when the walk listed it (S3: the GC lease's epoch), for {@link SweepBasis}. */
  generation?: number;
}

/**
 * What a GC decision to remove a blob was taken on, handed back to {@link BlobSweep}, so that
 * a store several processes share (S3) can confirm the decision before it deletes.
 */
export interface SweepBasis {
  /** The entry as the walk listed it (repoBlobs for unlink, storedBlobs for unlinkStored). */
  entry: BlobEntry;
  /** For unlink: the stamp of the repository index the decision was taken on. */
  stamp?: string;
}

/** An inclusive byte range of a blob. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * How a blob (or a range of it) is read: a local file as a `Blob` (a response body made of it
 * is sent with sendfile), a stream, or a URL the client is redirected to.
 */
export type BlobBody =
  | { kind: "file"; file: Blob }
  | { kind: "stream"; open(): ReadableStream<Uint8Array> }
  | { kind: "redirect"; url: string };

/** Options of {@link BlobStore.ingest}. */
export interface IngestOptions {
  /** Asks quota and free space before each batch (default true). */
  admit?: boolean;
  /** Hash on the event loop instead of the configured hashing (small or background writes). */
  inlineHash?: boolean;
  /**
   * The size announced for the blob: admitted whole when the ingest starts (so a refusal
   * comes before any byte is taken), and batches are then not admitted again.
   */
  expectedSize?: number;
}

/**
 * Bytes on their way into the store under one digest. Nothing is visible in any repository
 * until {@link commit} returns; {@link cancel} (or a failed commit) leaves nothing behind.
 * Memory is bounded by the caller's batch: each `write` is written before it resolves.
 */
export interface BlobIngest {
  /** Bytes written so far. */
  readonly written: number;
  /** Appends a batch: admitted (quota, free space), hashed, written, flushed early. */
  write(chunks: Uint8Array[]): Promise<void>;
  /**
   * Reads back `length` bytes from `offset` of what was written (readers of a fetch in
   * flight that fell behind its relay window); shorter at the end.
   */
  readBack(offset: number, length: number): Promise<Uint8Array>;
  /** The hex digest of what was written, in the ingest's algorithm (ends hashing). */
  digest(): Promise<string>;
  /**
   * Makes the bytes blob `digest` of the repository, durably. Throws StorageError
   * "digest-mismatch" (nothing stored) when they hash to something else.
   */
  commit(digest: Digest): Promise<void>;
  /** Drops the bytes; safe to call after commit or twice. */
  cancel(): Promise<void>;
}

/** Content-addressed blobs, linked into the repositories that hold them. */
export interface BlobStore {
  /**
   * The blob as `repo` holds it, or undefined. Synchronous: the registry's blob GET and
   * HEAD answer from it without a turn of the event loop, and `Registry.blob` is synchronous
   * for its callers. A remote backend answers from what it keeps in memory of its
   * repositories' links (loaded at start, kept by its own writes, refreshed on a miss).
   */
  stat(repo: string, digest: Digest): BlobInfo | undefined;
  /**
   * Optional, for backends whose {@link stat} answers from memory that another process may
   * have outdated (S3): asks the store itself after a miss; the registry's blob GET and HEAD
   * use it, so a blob pushed through another process is found at once.
   */
  lookup?(repo: string, digest: Digest): Promise<BlobInfo | undefined>;
  /** Reads a small blob whole (manifests; callers check the size first). */
  read(repo: string, digest: Digest): Promise<Uint8Array>;
  /** How to send the blob (or `range` of it); the caller checked it exists. */
  open(repo: string, digest: Digest, range?: ByteRange): BlobBody;
  /** True when `repo` holds `digest` durably (a concurrent link is made durable first). */
  holdsDurably(repo: string, digest: Digest): Promise<boolean>;
  /** True when {@link mount} has a source: `from` holds the blob, or (no `from`) the store does. */
  canMount(digest: Digest, from?: string): Awaitable<boolean>;
  /** Links the blob `from` holds (or, without `from`, any stored copy) into `repo`; false without a source. */
  mount(repo: string, digest: Digest, from?: string): Promise<boolean>;
  /** Removes the blob from `repo` durably; false when the repository did not hold it. */
  remove(repo: string, digest: Digest): Promise<boolean>;
  /** Starts writing a blob for `repo` (see {@link BlobIngest}). */
  ingest(repo: string, algorithm: Algorithm, options?: IngestOptions): Promise<BlobIngest>;
}

/** A repository's index, parsed, with its version token and lookups built once. */
export interface RepoIndex {
  /** Version token of this index: changes whenever the stored index changes. */
  readonly stamp: string;
  readonly doc: IndexDoc;
  /** tag -> descriptor */
  readonly tags: ReadonlyMap<string, Descriptor>;
  /** digest -> descriptor, for every manifest listed */
  readonly manifests: ReadonlyMap<string, Descriptor>;
  /** Tags in lexical order (computed on first use). */
  sortedTags(): readonly string[];
}

/** What a {@link RepoIndexStore.transaction} can do with the repository's index. */
export interface IndexTransaction {
  /** The index as it is now. */
  current(): Promise<RepoIndex>;
  /** Replaces the list of manifests atomically and durably; returns the new index. */
  write(entries: Descriptor[]): Promise<RepoIndex>;
}

/**
 * A change to a repository's list of manifests: the new list (a new array; `entries` is left
 * as it is), or undefined to leave it unchanged; it may throw to refuse the change. It may be
 * asynchronous (checks under the repository's lock).
 */
export type IndexMutation = (entries: Descriptor[]) => Descriptor[] | undefined | Promise<Descriptor[] | undefined>;

/**
 * `update` in terms of `transaction`, for every {@link RepoIndexStore}: the index's manifests
 * replaced by `mutate(current)` (undefined: left as they are), `after` told the new index once
 * it is written, inside the transaction (so a backend that re-runs a transaction that lost a
 * race re-applies the change to what won).
 */
export function updateIndex(
  transaction: RepoIndexStore["transaction"],
  repo: string,
  mutate: IndexMutation,
  after?: (index: RepoIndex) => void,
): Promise<RepoIndex> {
  return transaction(repo, async (tx) => {
    const current = await tx.current();
    const next = await mutate(current.doc.manifests);
    if (next === undefined) return current;
    const index = await tx.write(next);
    after?.(index);
    return index;
  });
}

/** The repositories' indexes. Writes are compare-and-swap on {@link RepoIndex.stamp}. */
export interface RepoIndexStore {
  /** True when the repository exists. */
  exists(repo: string): Awaitable<boolean>;
  /**
   * The repository's index, or undefined when there is no such repository. `keep: false`
   * (lifecycle passes over every repository) serves a cached copy but does not cache what
   * it had to read, so a pass does not churn the cache of the indexes requests use.
   */
  index(repo: string, opts?: { keep?: boolean }): Promise<RepoIndex | undefined>;
  /** When the stored index last changed (ms since the epoch), or undefined. */
  changedAt(repo: string): Awaitable<number | undefined>;
  /** Optional: the stored index's version stamp without reading it (undefined: no such repository). */
  stamp?(repo: string): Awaitable<string | undefined>;
  /** Creates the repository if it does not exist yet (an empty index). */
  ensure(repo: string): Promise<void>;
  /**
   * Replaces the list of manifests if the stored index still has version `stamp`; returns
   * the new index, or undefined (nothing written) when another writer got there first.
   */
  compareAndSwap(repo: string, stamp: string, entries: Descriptor[]): Promise<RepoIndex | undefined>;
  /**
   * Runs `fn` as one step for every other writer of the repository in this process (a
   * manifest push, a delete, a GC decision): its writes are compare-and-swap against the
   * index it read, so a writer in another process makes them fail rather than be lost.
   */
  transaction<T>(repo: string, fn: (tx: IndexTransaction) => Promise<T>): Promise<T>;
  /**
   * `mutate(current)` in one transaction; undefined leaves the index unchanged; `after` runs
   * once durable. A backend may apply several concurrent updates of one repository in one
   * write (group commit): each `mutate` then sees the list the previous one made, and every
   * update resolves only once the write holding its change is durable.
   */
  update(repo: string, mutate: IndexMutation, after?: (index: RepoIndex) => void): Promise<RepoIndex>;
  /** Runs `fn` excluding the repository's writers (it must not call {@link update}). */
  withLock<T>(repo: string, fn: () => Promise<T>): Promise<T>;
  /** Removes an empty repository (no manifests, no blobs); the caller holds its lock. */
  drop(repo: string): Promise<void>;
}

/** One upload in flight. */
export interface UploadSession {
  readonly id: string;
  readonly repo: string;
  readonly algorithm: Algorithm;
  /** Bytes received so far. */
  size: number;
  readonly started: number;
  lastActive: number;
  /** The peer address that opened it (per-client cap), when known. */
  readonly client?: string;
}

/** Client upload sessions (distribution spec, "Pushing blobs"), which outlive one request. */
export interface UploadStore {
  start(repo: string, algorithm: Algorithm, client?: string): Promise<UploadSession>;
  get(repo: string, id: string): UploadSession;
  append(
    repo: string,
    id: string,
    body: ReadableStream<Uint8Array> | null,
    opts?: { range?: { start: number; end: number }; length?: number },
  ): Promise<UploadSession>;
  /**
   * Verifies the session's bytes against `digest` and makes them blob `digest` of its
   * repository; `beforeLink` runs first, while the session is still held.
   */
  complete(repo: string, id: string, digest: Digest, beforeLink?: () => void): Promise<void>;
  /** Writes small in-memory bytes (a manifest) as blob `digest` of `repo`, admitted and durable. */
  putSmall(repo: string, digest: Digest, bytes: Uint8Array, admit?: boolean): Promise<void>;
  cancel(repo: string, id: string): Promise<void>;
  discard(id: string): Promise<void>;
  count(): number;
  countFor(client: string): number;
  list(): (UploadSession & { readonly busy: boolean })[];
  stop(): void;
}

/** The one walk: one definition of a repository, shared by every user of the tree. */
export interface StorageWalk {
  /** Every repository, in lexical order. */
  repositories(): Promise<string[]>;
  /** The blobs `repo` holds. */
  repoBlobs(repo: string): Listing<BlobEntry>;
  /** Every distinct stored blob (the pool), once each. */
  storedBlobs(): Listing<BlobEntry>;
}

/** Ability: unlinking blobs in bulk for garbage collection. */
export interface BlobSweep {
  /** Unlinks blob `digest` from `repo`, decided on `basis`; durable only after {@link settle}. */
  unlink(repo: string, digest: string, basis?: SweepBasis): Promise<void>;
  /** Links `digest` back into `repo` from the stored copy, if there still is one. */
  relink(repo: string, digest: string): Promise<boolean>;
  /** The stored (pooled) copy of `digest`, if any. */
  stored(digest: string): Awaitable<BlobInfo | undefined>;
  /** Removes the stored copy of `digest`, decided on `basis`; durable only after {@link settle}. */
  unlinkStored(digest: string, basis?: SweepBasis): Promise<void>;
  /**
   * Makes every unlink so far durable. A shared store (S3) may first confirm each decision
   * against later writes of other processes and keep what one of them now relies on.
   */
  settle(): Promise<void>;
}

/**
 * Ability: measuring what the store holds and what room is left. Synchronous: quota checks
 * run under one lock and must not interleave; a remote backend answers from counters it keeps.
 */
export interface UsageMeter {
  /** Bytes held (each distinct blob once, plus upload data), and per repository prefix. */
  usage(prefixes: readonly string[]): { total: number; byPrefix: Map<string, number> };
  /** Free and total bytes of the space the store writes to. */
  space(): { free: number; total: number };
  /** Bytes each repository links (shared blobs counted in each) and the distinct stored bytes. */
  figures(): StorageFigures;
  /**
   * Bytes dedupe saves: over the pool, each blob's size times (its repository links - 1).
   * From the last walk of the pool (usage or figures) when younger than `maxAgeMs`, else
   * from a walk of the pool alone (one stat per distinct blob).
   */
  dedupe(maxAgeMs?: number): DedupeFigures;
}

/** What {@link UsageMeter.dedupe} reports. */
export interface DedupeFigures {
  /** Bytes that would be stored again without dedupe (0 with dedupe off). */
  savedBytes: number;
  /** Pool blobs linked into more than one repository. */
  sharedBlobs: number;
  /** When the pool was walked for this figure (ms since the epoch). */
  at: number;
}

/** What {@link UsageMeter.figures} reports. */
export interface StorageFigures {
  repositories: Map<string, { bytes: number; blobs: number }>;
  poolBytes: number;
  poolBlobs: number;
  /** Dedupe savings, from the same walk of the pool. */
  dedupe: DedupeFigures;
}

/** One blob found not to match its digest and set aside. */
export interface QuarantinedBlob {
  digest: string;
  /** What the bytes hash to ("" when found by an earlier run). */
  actual: string;
  size: number;
  /** Repositories it was removed from. */
  repositories: string[];
  /** Where the bad bytes were kept (a label for operators). */
  file: string;
  at: number;
}

/** A stored blob a scrub checks. */
export interface AuditItem {
  digest: Digest;
  size: number;
  /** Hashes the stored bytes; undefined when they went away meanwhile. */
  hash(): Promise<string | undefined>;
}

/** Ability: re-hashing stored blobs and setting bad ones aside. */
export interface BlobAudit {
  /** Every distinct stored blob, each once. */
  auditItems(): Listing<AuditItem>;
  /** Keeps a copy of the bad bytes and removes the digest from every repository and the pool. */
  quarantine(item: AuditItem, actual: string): Promise<QuarantinedBlob>;
  /** Blobs set aside by earlier runs (from what the quarantine holds). */
  quarantined(): QuarantinedBlob[];
}

/** Ability: room kept for writes that free space on a full disk. */
export interface WriteReserve {
  /** Remakes the reserve when there is room; never fails. */
  restore(): Promise<void>;
}

/** Everything storage offers, as the layers above it see it. */
export interface Storage extends StorageWalk {
  readonly blobs: BlobStore;
  readonly indexes: RepoIndexStore;
  readonly uploads: UploadStore;
  /** Manifest bodies in memory, by digest. */
  readonly manifests: ManifestCache;
  readonly sweep: BlobSweep;
  readonly meter: UsageMeter;
  readonly audit: BlobAudit;
  readonly reserve: WriteReserve;
  /** Drops the caches held in memory (manifest bodies, parsed indexes); they refill as they are used. */
  trim(): void;
}
