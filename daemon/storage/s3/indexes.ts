/**
 * Repository indexes on S3 (the {@link RepoIndexStore} of the S3 backend). Each repository's
 * OCI index is one object, `repos/<repo>/_index.json`, and every write is a conditional PUT:
 * `If-Match: <etag read>` (unquoted: RGW 16 refuses a quoted one), or `If-None-Match: *` when
 * the repository is new. Of several writers that read one version exactly one wins; the
 * others get 412, read again and re-apply their change (a bounded number of times with
 * jitter), so two berth processes on one bucket never lose an acknowledged push: a push is
 * acknowledged only after its PUT answered 200. A lock object with a lease was not chosen:
 * a paused process outlives its lease and then writes over its successor, and RGW ignores
 * conditional DELETEs, so a lease cannot be released safely.
 *
 * An index is never deleted (another process may be about to write it): dropping a
 * repository writes a tombstone (an empty index marked dropped), which reads as "no such
 * repository" and which `ensure` revives by compare-and-swap. Reads revalidate the cached
 * copy with a conditional GET (If-None-Match: the cached ETag, answered 304 with no body).
 *
 * A manifest push relies on blobs it checked before its write, which another process's GC
 * could delete in between: every write of manifests (a transaction's, a compare-and-swap)
 * runs through the backend's {@link WriteGuard} (gclock.ts), which may ask for the
 * transaction to be run again on a fresh view of the repository's links.
 */
import type { Descriptor } from "../../oci/manifest";
import { type IndexDoc, emptyIndex, parseIndexDoc } from "../../oci/layoutindex";
import type { Logger } from "../../log";
import { type IndexMutation, type IndexTransaction, type RepoIndex, type RepoIndexStore, updateIndex } from "../api";
import { buildIndex } from "../layouts";
import { KeyedLock } from "../lock";
import type { S3Client } from "./client";
import { isS3Error } from "./errors";
import type { S3Keys } from "./keys";

/** Marks a dropped repository's index (a tombstone). */
const DROPPED = "io.berth.dropped";
/** Tries of one transaction against writers in other processes. */
const MAX_TRIES = 16;
/** Largest index.json read (bounded like a manifest list). */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;

interface Cached {
  etag: string;
  index: RepoIndex;
  changedAt: number;
  dropped: boolean;
}

/** Thrown inside a transaction when another writer changed the index first. */
class Conflict extends Error {}

/**
 * Wraps a write of manifests into `repo`'s index (see gclock.ts): runs `write` (given a signal
 * that bounds it) and answers its result, or undefined when the caller must read again and
 * re-run its checks (the view of the repository's links was outdated by a GC).
 */
export type WriteGuard = <T>(repo: string, write: (signal: AbortSignal) => Promise<T | undefined>) => Promise<T | undefined>;

const unguarded: WriteGuard = (_repo, write) => write(new AbortController().signal);

/** The repositories' indexes in one bucket. */
export class S3Indexes implements RepoIndexStore {
  private readonly cache = new Map<string, Cached>();
  private readonly lock = new KeyedLock();

  constructor(
    private readonly s3: S3Client,
    private readonly keys: S3Keys,
    private readonly log: Logger,
    /** Told when a repository's index was read new (changed by someone else, or read the first time): its links are re-read. */
    private readonly changedElsewhere: (repo: string, firstRead: boolean) => Promise<void>,
    private readonly guard: WriteGuard = unguarded,
  ) {}

  /** Reads the index (revalidating the cached copy); undefined when there is no object. */
  private async load(repo: string): Promise<Cached | undefined> {
    const cached = this.cache.get(repo);
    let got;
    try {
      got = await this.s3.getIfChanged(this.keys.index(repo), cached?.etag);
    } catch (e) {
      if (!isS3Error(e, "not-found")) throw e;
      this.cache.delete(repo);
      return undefined;
    }
    if (!got) return cached;
    if (got.info.size > MAX_INDEX_BYTES) {
      await got.body.cancel().catch(() => {});
      throw new Error(`Index of "${repo}" is ${got.info.size} bytes, more than ${MAX_INDEX_BYTES}`);
    }
    const text = await new Response(got.body).text();
    let doc: IndexDoc;
    try {
      doc = parseIndexDoc(text);
    } catch (err) {
      this.log.warn("an index in the bucket cannot be read; serving the repository as empty", { repo, error: (err as Error).message });
      doc = emptyIndex();
    }
    const entry = this.remember(repo, got.info.etag, doc, got.info.lastModified.getTime());
    await this.changedElsewhere(repo, cached === undefined);
    return entry;
  }

  private remember(repo: string, etag: string, doc: IndexDoc, changedAt: number): Cached {
    const entry = { etag, index: buildIndex(etag, doc), changedAt, dropped: doc[DROPPED] === true };
    this.cache.set(repo, entry);
    return entry;
  }

  /** True when the repository exists (has an index that is not a tombstone). */
  async exists(repo: string): Promise<boolean> {
    const c = await this.load(repo);
    return c !== undefined && !c.dropped;
  }

  /** The repository's index, or undefined when there is none (or it was dropped). */
  async index(repo: string): Promise<RepoIndex | undefined> {
    const c = await this.load(repo);
    return c && !c.dropped ? c.index : undefined;
  }

  /** The index as last read, without a round trip (the walk's listing decides existence). */
  cachedIndex(repo: string): RepoIndex | undefined {
    const c = this.cache.get(repo);
    return c && !c.dropped ? c.index : undefined;
  }

  /** When the index object was last written. */
  async changedAt(repo: string): Promise<number | undefined> {
    const c = await this.load(repo);
    return c && !c.dropped ? c.changedAt : undefined;
  }

  /** Creates the repository (or revives a dropped one) with an empty index. */
  async ensure(repo: string): Promise<void> {
    for (let tries = 0; ; tries++) {
      const c = await this.load(repo);
      if (c && !c.dropped) return;
      if (await this.put(repo, c?.etag, emptyIndex())) return;
      if (tries >= MAX_TRIES) throw new Error(`Repository "${repo}" could not be created: its index kept changing`);
    }
  }

  /** Writes `doc` if the stored index is still `etag` (undefined: absent); false when it was not. */
  private async put(repo: string, etag: string | undefined, doc: IndexDoc, signal?: AbortSignal): Promise<Cached | undefined> {
    const body = `${JSON.stringify(doc)}\n`;
    try {
      const res = await this.s3.put(this.keys.index(repo), body, { contentType: "application/vnd.oci.image.index.v1+json", ...(etag === undefined ? { ifNoneMatch: "*" as const } : { ifMatch: etag }), signal });
      return this.remember(repo, res.etag, doc, Date.now());
    } catch (e) {
      // 412: someone else wrote first; 404: an If-Match on an object that is not there (any more)
      if (isS3Error(e, "precondition-failed") || isS3Error(e, "not-found") || isS3Error(e, "conflict")) return undefined;
      throw e;
    }
  }

  /** Replaces the manifests if the stored index is still version `stamp`. */
  compareAndSwap(repo: string, stamp: string, entries: Descriptor[]): Promise<RepoIndex | undefined> {
    return this.lock.run(repo, async () => {
      const c = this.cache.get(repo) ?? (await this.load(repo));
      if (!c || c.dropped || c.etag !== stamp) {
        const fresh = await this.load(repo);
        if (!fresh || fresh.dropped || fresh.etag !== stamp) return undefined;
      }
      const doc = { ...this.cache.get(repo)!.index.doc, manifests: entries };
      return (await this.guard(repo, (signal) => this.put(repo, stamp, doc, signal)))?.index;
    });
  }

  /**
   * Runs `fn` as one step for this process's writers of the repository; its write is a
   * compare-and-swap on the index it read, and when another process wrote in between, `fn`
   * runs again on the new index (so it must only compute its change from what it reads).
   */
  transaction<T>(repo: string, fn: (tx: IndexTransaction) => Promise<T>): Promise<T> {
    return this.lock.run(repo, async () => {
      for (let tries = 1; ; tries++) {
        let read: Cached | undefined;
        const tx: IndexTransaction = {
          current: async () => {
            read = await this.load(repo);
            if (!read) throw new Error(`Repository "${repo}" has no index`);
            // dropped by another process's GC since the caller ensured it: empty, and a write revives it
            return read.index;
          },
          write: async (entries) => {
            const base = read ?? (await tx.current(), read!);
            const { [DROPPED]: _dropped, ...doc } = base.index.doc;
            const done = await this.guard(repo, (signal) => this.put(repo, base.etag, { ...doc, manifests: entries }, signal));
            if (!done) throw new Conflict();
            read = done;
            return done.index;
          },
        };
        try {
          return await fn(tx);
        } catch (e) {
          if (!(e instanceof Conflict)) throw e;
          if (tries >= MAX_TRIES) throw new Error(`Index of "${repo}" kept changing under ${MAX_TRIES} tries to write it; nothing was written`);
          this.log.debug("index changed by another writer; applying the change again", { repo, tries });
          await new Promise((r) => setTimeout(r, Math.random() * 20 * tries));
        }
      }
    });
  }

  /** `mutate(current)` in one transaction (re-applied when another process wrote first). */
  update(repo: string, mutate: IndexMutation, after?: (index: RepoIndex) => void): Promise<RepoIndex> {
    return updateIndex((name, fn) => this.transaction(name, fn), repo, mutate, after);
  }

  /** Excludes this process's writers of the repository (other processes are held off by compare-and-swap). */
  withLock<T>(repo: string, fn: () => Promise<T>): Promise<T> {
    return this.lock.run(repo, fn);
  }

  /** Writes a tombstone over an empty repository's index (never deleted: see the file comment). */
  async drop(repo: string): Promise<void> {
    for (let tries = 0; tries < MAX_TRIES; tries++) {
      const c = await this.load(repo);
      if (!c || c.dropped) return;
      if (c.index.doc.manifests.length > 0) throw new Error(`Repository "${repo}" is not empty; it was not dropped`);
      if (await this.put(repo, c.etag, { ...emptyIndex(), [DROPPED]: true })) return;
    }
    throw new Error(`Repository "${repo}" could not be dropped: its index kept changing`);
  }
}
