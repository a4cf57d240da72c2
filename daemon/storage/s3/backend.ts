/**
 * The S3 backend of the storage seam (api.ts): a {@link Storage} on one bucket (optionally
 * under a prefix), composed of the index store (indexes.ts: compare-and-swap by conditional
 * PUT), the blob store (blobs.ts: content-addressed keys, links, streamed multipart uploads,
 * ranged GETs, optional presigned redirects) and the in-memory view of the bucket the
 * synchronous parts of the seam answer from (links.ts). Upload sessions and ingests are the
 * shared code (storage/uploads.ts, storage/ingest.ts) written to upload spools (uploads.ts,
 * spool.ts) that stream into multipart uploads under uploads/ with part buffers from one
 * byte budget, and publish into the bucket when verified; nothing of an upload is written to
 * the local cache directory, which holds only meta.db (a cache rebuilt from the bucket).
 * Sessions stay with the process that opened them (another answers BLOB_UPLOAD_UNKNOWN).
 *
 * GC on S3 uses the same abilities as on disk: unlink deletes a link, the pool sweep deletes
 * a blob no repository links, except one younger than `blobGraceMs` (a blob is uploaded
 * before its first link is written, so a young unlinked blob may be a push in flight in
 * another process). Several processes on one bucket are kept safe from each other's GC by
 * the protocol of gclock.ts: deletions are confirmed and carried out under a GC lease
 * (sweep.ts), and writes that rely on stored blobs are guarded by intents (index writes
 * here, links in blobs.ts). Scrub streams each blob through the hash; a bad one is copied to
 * quarantine/ and removed from every repository and the pool.
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import type { Algorithm, Digest } from "../../oci/digest";
import { realDisk } from "../../platform/disk";
import { type UploadHashing, inlineHashing } from "../../platform/uploadhash";
import type { Logger } from "../../log";
import type { AuditItem, BlobAudit, BlobEntry, BlobSweep, IngestOptions, QuarantinedBlob, Storage, StorageFigures, UsageMeter, WriteReserve, DedupeFigures } from "../api";
import { ManifestCache } from "../cache";
import { startIngest } from "../ingest";
import { Paths } from "../paths";
import { type UploadLimits, Uploads } from "../uploads";
import { S3Blobs } from "./blobs";
import { S3Client, type S3ClientOptions } from "./client";
import { isS3Error } from "./errors";
import { GcLock, type GcLockOptions } from "./gclock";
import { S3Indexes, type WriteGuard } from "./indexes";
import { S3Keys } from "./keys";
import { LinkState } from "./links";
import { S3Sweep } from "./sweep";
import { ByteBudget } from "./budget";
import { SpoolDisk, uploadsPrefix } from "./uploads";
import type { CopyOptions } from "./multipart";

/** Options of {@link S3Storage}. */
export interface S3StorageOptions {
  client: S3ClientOptions;
  /** Key prefix inside the bucket ("" for none). */
  prefix: string;
  /** Local directory for meta.db. */
  cacheRoot: string;
  /** Multipart part size in bytes (default 8 MiB). */
  partSize?: number;
  /** Bytes of part buffers all uploads may hold at once (default 64 MiB; `[storage.s3] upload_memory`). */
  uploadMemory?: number;
  /** How long an upload waits for room in that budget before it is refused (default 10 s). */
  uploadMemoryWaitMs?: number;
  /** Limits of the server-side copy of a completed upload (tests). */
  copy?: CopyOptions;
  /** Presigned redirects for blob GETs, valid this many seconds (0: off). */
  redirectSeconds?: number;
  /** The endpoint clients reach the bucket at (signed into redirect URLs); default the endpoint. */
  publicEndpoint?: string;
  /** Multipart uploads older than this found at open are aborted (default 1 day). */
  staleUploadMs?: number;
  /** A stored blob younger than this is never swept (default 1 hour). */
  blobGraceMs?: number;
  /** Time bounds of the cross-process GC protocol (gclock.ts; defaults there). */
  gcLock?: GcLockOptions;
  maxBlobBytes: number;
  manifestCacheBytes: number;
  onIngress?: (bytes: number) => void;
  /** Unused: upload bytes are hashed inline as they pass (a hashing thread would read them from a local file). */
  hashing?: UploadHashing;
  admit?: (repo: string, bytes: number) => Promise<void>;
  uploadLimits?: UploadLimits;
}

const LAYOUT = { version: 1 };
/** Parts of one upload in flight at once. */
const PART_CONCURRENCY = 2;
/** Free and total bytes the meter reports for a bucket. */
const UNBOUNDED = Number.MAX_SAFE_INTEGER;

/** Berth's storage in one S3 bucket. */
export class S3Storage implements Storage {
  readonly s3: S3Client;
  readonly keys: S3Keys;
  readonly paths: Paths;
  readonly state: LinkState;
  readonly gcLock: GcLock;
  readonly indexes: S3Indexes;
  readonly blobs: S3Blobs;
  readonly uploads: Uploads;
  /** The part buffers of every upload in flight. */
  readonly budget: ByteBudget;
  /** The uploads in flight, as the shared upload and ingest code writes them. */
  readonly spools: SpoolDisk;
  readonly manifests: ManifestCache;
  readonly sweep: BlobSweep;
  readonly meter: UsageMeter;
  readonly audit: BlobAudit;
  readonly reserve: WriteReserve = { restore: async () => {} };
  private readonly bad: QuarantinedBlob[] = [];
  private readonly graceMs: number;

  constructor(
    private readonly options: S3StorageOptions,
    private readonly log: Logger,
  ) {
    this.s3 = new S3Client(options.client);
    this.keys = new S3Keys(options.prefix);
    this.paths = new Paths(options.cacheRoot);
    this.graceMs = options.blobGraceMs ?? 3_600_000;
    this.state = new LinkState(this.s3, this.keys);
    this.gcLock = new GcLock(this.s3, this.keys, log, options.gcLock);
    // an index write relies on the links the caller checked: valid at the lease's epoch, or listed again and checked again
    const guard: WriteGuard = (repo, write) => this.gcLock.guard(`the index of "${repo}"`, async (g) => {
      if (!this.state.validAt(repo, g.epoch)) {
        await this.state.revalidate(repo, g.epoch);
        return undefined;
      }
      return write(await g.beforeWrite());
    });
    this.indexes = new S3Indexes(this.s3, this.keys, log, async (repo, first) => {
      if (!first || !this.state.knows(repo)) await this.state.refresh(repo);
    }, guard);
    const partSize = options.partSize ?? 8 * 1024 * 1024;
    this.budget = new ByteBudget(Math.max(options.uploadMemory ?? 64 * 1024 * 1024, partSize), options.uploadMemoryWaitMs, partSize);
    this.spools = new SpoolDisk(this.s3, this.keys, { partSize, concurrency: PART_CONCURRENCY, budget: this.budget });
    const hashing = inlineHashing;
    const publish = (repo: string, digest: Digest, path: string) => this.blobs.publish(repo, digest, this.spools.spool(path));
    const ingestDeps = { disk: this.spools, paths: this.paths, hashing, publish, published: () => "", admit: options.admit, readBack: (path: string, offset: number, length: number) => this.spools.readBack(path, offset, length) };
    const presigner = options.publicEndpoint ? new S3Client({ ...options.client, endpoint: options.publicEndpoint }) : this.s3;
    this.blobs = new S3Blobs(this.s3, this.keys, this.state, {
      copy: options.copy,
      redirectSeconds: options.redirectSeconds ?? 0,
      presigner,
      startIngest: (repo: string, algorithm: Algorithm, o: IngestOptions) => startIngest(ingestDeps, repo, algorithm, o),
      ensureRepo: (repo) => this.indexes.ensure(repo),
      gcLock: this.gcLock,
      graceMs: this.graceMs,
    });
    this.uploads = new Uploads(this.paths, this.spools, { maxBlobBytes: options.maxBlobBytes, onIngress: options.onIngress, hashing, hashAgain: (path, algorithm) => this.spools.hashAgain(path, algorithm), admit: options.admit, limits: options.uploadLimits, log, publish });
    this.manifests = new ManifestCache(options.manifestCacheBytes);
    this.sweep = new S3Sweep(this.s3, this.keys, this.state, this.gcLock, this.blobs, log);
    this.meter = this.makeMeter();
    this.audit = this.makeAudit();
  }

  /**
   * Drops the manifest bodies kept in memory. The indexes' ETags stay: they are how a read
   * tells an index changed by another process from its own (see indexes.ts).
   */
  trim(): void {
    this.manifests.clear();
  }

  /** Where the derived index lives: the local cache directory. */
  get metaDbPath(): string {
    return this.paths.metaDb;
  }

  /**
   * Checks (or writes) the bucket's layout marker, clears spooled leftovers of an earlier
   * run, and loads the bucket's view; answers the repositories found.
   */
  async open(): Promise<{ repositories: string[]; uploadsRemoved: number; tempFilesRemoved: number }> {
    await realDisk.mkdirp(this.paths.internal);
    // files an earlier version spooled locally; uploads now stream to the bucket
    await realDisk.removeTree(this.paths.uploads);
    const uploadsRemoved = await this.uploads.clearLeftovers();
    try {
      await this.s3.put(this.keys.layout, JSON.stringify(LAYOUT), { ifNoneMatch: "*", contentType: "application/json" });
    } catch (e) {
      if (!isS3Error(e, "precondition-failed") && !isS3Error(e, "conflict")) throw e;
      const got = await this.s3.get(this.keys.layout);
      const text = await new Response(got.body).text();
      let version: unknown;
      try {
        version = (JSON.parse(text) as { version?: unknown }).version;
      } catch {
        version = text.slice(0, 40);
      }
      if (version !== LAYOUT.version) throw new Error(`Bucket "${this.s3.bucket}" holds berth layout version "${String(version)}", this berth reads version ${LAYOUT.version}`);
    }
    for await (const { object } of this.s3.listAll({ prefix: this.keys.quarantine })) {
      const d = object && this.keys.digestOf(object.key);
      if (d) this.bad.push({ digest: d.value, actual: "", size: object!.size, repositories: [], file: object!.key, at: object!.lastModified.getTime() });
    }
    // multipart uploads a crashed process left (a live one aborts its own on failure), older than
    // a day: under uploads/ (upload spools) and blobs/ (earlier versions); and completed
    // temporary objects under uploads/ whose copy to blobs/ a crash interrupted
    let abandoned = 0;
    const staleBefore = Date.now() - (this.options.staleUploadMs ?? 86_400_000);
    for (const prefix of [uploadsPrefix(this.keys), this.keys.blobs]) {
      for (const u of await this.s3.listMultipartUploads(prefix)) {
        if (u.initiated.getTime() > staleBefore) continue;
        await this.s3.abortMultipart(u.key, u.uploadId);
        abandoned++;
      }
    }
    for await (const { object } of this.s3.listAll({ prefix: uploadsPrefix(this.keys) })) {
      if (!object || object.lastModified.getTime() > staleBefore) continue;
      await this.s3.delete(object.key);
      abandoned++;
    }
    if (abandoned > 0) this.log.info("storage: abandoned multipart uploads aborted", { count: abandoned });
    const lease = await this.gcLock.readLease();
    await this.state.loadAll(lease.doc.held ? undefined : lease.doc.epoch);
    return { repositories: await this.repositories(), uploadsRemoved, tempFilesRemoved: 0 };
  }

  /** Every repository (an index object that is not a tombstone), in lexical order. */
  async repositories(): Promise<string[]> {
    const names: string[] = [];
    for await (const { object } of this.s3.listAll({ prefix: this.keys.repos })) {
      const parsed = object && this.keys.parseRepoKey(object.key);
      if (parsed && "index" in parsed) names.push(parsed.repo);
    }
    const out: string[] = [];
    for (const repo of names) if (await this.indexes.exists(repo)) out.push(repo);
    return out.sort();
  }

  /** The blobs `repo` links, listed from the bucket. */
  async *repoBlobs(repo: string): AsyncIterable<BlobEntry> {
    const stored = await this.storedCounts();
    for await (const { object } of this.s3.listAll({ prefix: this.keys.links(repo) })) {
      const d = object && this.keys.digestOf(object.key);
      const blob = d && (await this.blobs.blobInfo(d.value));
      if (!d || !blob) continue;
      yield { digest: d.value, size: blob.size, mtimeMs: object!.lastModified.getTime(), links: stored.get(d.value) ?? 1 };
    }
  }

  /** Every stored blob once; `links` counts the pool entry and each repository's link. */
  async *storedBlobs(): AsyncIterable<BlobEntry> {
    // read before the listings: a writer that links a listed blob anew touches it at this epoch or later
    const generation = (await this.gcLock.readLease()).doc.epoch;
    const counts = await this.storedCounts();
    const now = Date.now();
    for await (const { object } of this.s3.listAll({ prefix: this.keys.blobs })) {
      const d = object && this.keys.digestOf(object.key);
      if (!d) continue;
      const mtimeMs = object!.lastModified.getTime();
      // a young blob may be a push in flight elsewhere whose link is not written yet: held as linked
      const young = mtimeMs + this.graceMs > now ? 1 : 0;
      yield { digest: d.value, size: object!.size, mtimeMs, links: (counts.get(d.value) ?? 1) + young, generation };
    }
  }

  /** 1 + how many repositories link each digest, from one listing of repos/. */
  private async storedCounts(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for await (const { object } of this.s3.listAll({ prefix: this.keys.repos })) {
      const parsed = object && this.keys.parseRepoKey(object.key);
      if (parsed && "link" in parsed) counts.set(parsed.link, (counts.get(parsed.link) ?? 1) + 1);
    }
    return counts;
  }

  private makeMeter(): UsageMeter {
    const state = this.state;
    return {
      usage: (prefixes) => {
        let total = 0;
        for (const b of state.pool.values()) total += b.size;
        for (const s of this.uploads.list()) total += s.size;
        const byPrefix = new Map<string, number>();
        for (const prefix of prefixes) {
          const seen = new Set<string>();
          let sum = 0;
          for (const [repo, links] of state.repos) {
            if (!repo.startsWith(prefix)) continue;
            for (const d of links.keys()) {
              if (seen.has(d)) continue;
              seen.add(d);
              sum += state.pool.get(d)?.size ?? 0;
            }
          }
          byPrefix.set(prefix, sum);
        }
        return { total, byPrefix };
      },
      // the bucket has no fixed size and uploads no longer touch the local disk: nothing for
      // min_free to guard (quota still applies); reported as unbounded (finite, for JSON)
      space: () => ({ free: UNBOUNDED, total: UNBOUNDED }),
      figures: (): StorageFigures => {
        const repositories = new Map<string, { bytes: number; blobs: number }>();
        for (const [repo, links] of state.repos) {
          let bytes = 0;
          let blobs = 0;
          for (const d of links.keys()) {
            const b = state.pool.get(d);
            if (!b) continue;
            bytes += b.size;
            blobs++;
          }
          repositories.set(repo, { bytes, blobs });
        }
        let poolBytes = 0;
        for (const b of state.pool.values()) poolBytes += b.size;
        return { repositories, poolBytes, poolBlobs: state.pool.size, dedupe: dedupeOf() };
      },
      dedupe: () => dedupeOf(),
    };
    // content-addressed keys: a blob is stored once however many repositories link it (from memory, no listing)
    function dedupeOf(): DedupeFigures {
      const links = new Map<string, number>();
      for (const repoLinks of state.repos.values()) for (const d of repoLinks.keys()) links.set(d, (links.get(d) ?? 0) + 1);
      let savedBytes = 0;
      let sharedBlobs = 0;
      for (const [d, n] of links) {
        const size = state.pool.get(d)?.size;
        if (size === undefined || n < 2) continue;
        savedBytes += size * (n - 1);
        sharedBlobs++;
      }
      return { savedBytes, sharedBlobs, at: Date.now() };
    }
  }

  private makeAudit(): BlobAudit {
    const self = this;
    return {
      async *auditItems(): AsyncIterable<AuditItem> {
        for await (const { object } of self.s3.listAll({ prefix: self.keys.blobs })) {
          const digest = object && self.keys.digestOf(object.key);
          if (!digest) continue;
          yield {
            digest,
            size: object!.size,
            hash: async () => {
              let got;
              try {
                got = await self.s3.get(self.keys.blob(digest.value));
              } catch (e) {
                if (isS3Error(e, "not-found")) return undefined;
                throw e;
              }
              const h = createHash(digest.algorithm);
              for await (const chunk of got.body as unknown as AsyncIterable<Uint8Array>) h.update(chunk);
              return h.digest("hex");
            },
          };
        }
      },
      async quarantine(item, actual) {
        const digest = item.digest.value;
        const file = self.keys.quarantined(digest);
        await self.s3.copy(self.keys.blob(digest), file, { metadata: { actual } });
        const repositories: string[] = [];
        for await (const { object } of self.s3.listAll({ prefix: self.keys.repos })) {
          const parsed = object && self.keys.parseRepoKey(object.key);
          if (!parsed || !("link" in parsed) || parsed.link !== digest) continue;
          await self.s3.delete(object!.key);
          self.state.unlinked(parsed.repo, digest);
          repositories.push(parsed.repo);
        }
        await self.s3.delete(self.keys.blob(digest));
        self.state.dropped(digest);
        const q = { digest, actual, size: item.size, repositories: repositories.sort(), file: `s3://${self.s3.bucket}/${file}`, at: Date.now() };
        self.bad.push(q);
        self.log.warn("blob quarantined: its bytes do not match its digest", { digest, actual, repositories });
        return q;
      },
      quarantined: () => [...this.bad],
    };
  }
}

/** The local cache directory of an S3 store under `root` (meta.db and spooled uploads). */
export function s3CacheRoot(root: string): string {
  return join(root, "s3-cache");
}
