/**
 * Repositories as OCI image layouts: creation, and index.json read through an in-memory
 * cache bounded by bytes (indexcache.ts: the least recently used leave first) and re-read
 * only when the file changed on disk (its inode, size or mtime), so a
 * layout that another tool drops into the root or rewrites is picked up on the next request
 * without a restart. index.json is only ever replaced atomically (temp file, fsync, rename,
 * fsync of the directory), and writes to one repository are serialised. Concurrent
 * {@link Layouts.update}s of one repository share writes (groupcommit.ts).
 */
import { dirname, join, relative } from "node:path";
import type { Descriptor } from "../oci/manifest";
import { type IndexDoc, emptyIndex, parseIndexDoc, tagOf } from "../oci/layoutindex";
import { OCI_LAYOUT_VERSION } from "../oci/mediatypes";
import { type Disk, TEMP_PREFIX } from "../platform/disk";
import type { Logger } from "../log";
import { isNoSpace } from "./errors";
import { KeyedLock } from "./lock";
import type { Paths } from "./paths";
import type { IndexMutation, IndexTransaction, RepoIndex, RepoIndexStore } from "./api";
import { type GroupFigures, GroupCommit } from "./groupcommit";
import { IndexCache } from "./indexcache";

export type { IndexTransaction, RepoIndex } from "./api";

/**
 * A {@link RepoIndex} of `doc` at version `stamp`; the S3 backend builds its own with it. Its
 * lookups are built on first use, once: every write of index.json makes a new index, and
 * during a burst of pushes into a large repository most of them are replaced before anything
 * looks a tag up (two maps of 2,000 entries per write were a good part of the churn).
 */
export function buildIndex(stamp: string, doc: IndexDoc): RepoIndex {
  let maps: { tags: Map<string, Descriptor>; manifests: Map<string, Descriptor> } | undefined;
  const lookups = () => {
    if (maps) return maps;
    const tags = new Map<string, Descriptor>();
    const manifests = new Map<string, Descriptor>();
    for (const d of doc.manifests) {
      const tag = tagOf(d);
      if (tag !== undefined) tags.set(tag, d);
      if (!manifests.has(d.digest)) manifests.set(d.digest, d);
    }
    return (maps = { tags, manifests });
  };
  let sorted: string[] | undefined;
  return {
    stamp,
    doc,
    get tags() {
      return lookups().tags;
    },
    get manifests() {
      return lookups().manifests;
    },
    sortedTags: () => (sorted ??= [...lookups().tags.keys()].sort()),
  };
}

/** Stamp of a file's current version and its size, or undefined if it does not exist. */
function versionOf(disk: Disk, path: string): { stamp: string; size: number } | undefined {
  const info = disk.stat(path);
  return info ? { stamp: `${info.ino}-${info.size}-${info.mtimeMs}`, size: info.size } : undefined;
}

/** Default of {@link Layouts}' cache budget: bytes of index.json kept parsed. */
export const INDEX_CACHE_BYTES = 2 * 1024 * 1024;

/** The OCI layouts under one storage root: the local {@link RepoIndexStore}. */
export class Layouts implements RepoIndexStore {
  private readonly cache: IndexCache;
  private readonly lock = new KeyedLock();
  private readonly group: GroupCommit;

  constructor(
    private readonly paths: Paths,
    private readonly disk: Disk,
    private readonly log: Logger,
    /** Frees some room when a write that shrinks index.json finds the disk full (storage/reserve.ts). */
    private readonly makeRoom: () => Promise<boolean> = async () => false,
    /** Told the directory of a repository {@link drop} removed (caches of made directories). */
    private readonly dropped: (dir: string) => void = () => {},
    /** Bytes of index.json kept parsed in memory (least recently used leave first). */
    cacheBytes: number = INDEX_CACHE_BYTES,
  ) {
    this.cache = new IndexCache(cacheBytes);
    this.group = new GroupCommit(this.lock, {
      current: (name) => this.index(name),
      create: async (name) => {
        await this.create(name);
        const index = await this.index(name);
        if (!index) throw new Error(`repository ${name} has no index.json after it was created`);
        return index;
      },
      write: (name, stamp, entries) => this.swap(name, stamp, entries),
    });
  }

  /** The version stamp of `name`'s index.json (one stat, nothing read); undefined when there is no such repository. */
  stamp(name: string): string | undefined {
    return versionOf(this.disk, this.paths.index(name))?.stamp;
  }

  /** When index.json last changed (its mtime or inode change, whichever is later). */
  changedAt(name: string): number | undefined {
    const info = this.disk.stat(this.paths.index(name));
    return info ? Math.max(info.mtimeMs, info.ctimeMs ?? 0) : undefined;
  }

  /** Replaces the manifests if index.json is still version `stamp` (under the repository's lock). */
  compareAndSwap(name: string, stamp: string, entries: Descriptor[]): Promise<RepoIndex | undefined> {
    return this.lock.run(name, () => this.swap(name, stamp, entries));
  }

  /**
   * Removes an empty repository's layout: index.json first (from then on it is no
   * repository), then oci-layout and blobs/, then the directory when nothing else is in it.
   */
  async drop(name: string): Promise<void> {
    const dir = this.paths.repo(name);
    await this.disk.unlink(this.paths.index(name));
    await this.disk.syncDir(dir);
    await this.disk.unlink(this.paths.ociLayout(name));
    await this.disk.removeTree(join(dir, "blobs"));
    this.dropped(dir);
    for (const entry of this.disk.readdir(dir)) if (entry.startsWith(TEMP_PREFIX)) await this.disk.unlink(join(dir, entry));
    if (this.disk.readdir(dir).length === 0) await this.disk.removeTree(dir);
    await this.disk.syncDir(join(dir, ".."));
    this.cache.delete(name);
  }

  /** Drops the parsed indexes kept in memory. */
  trim(): void {
    this.cache.clear();
  }

  /** True when `<root>/<name>` is an OCI layout. */
  exists(name: string): boolean {
    return this.disk.stat(this.paths.index(name))?.isFile === true;
  }

  /**
   * The repository's index, or undefined if there is no such repository. Cheap when the
   * file has not changed: one stat.
   */
  async index(name: string, opts: { keep?: boolean } = {}): Promise<RepoIndex | undefined> {
    const path = this.paths.index(name);
    const version = versionOf(this.disk, path);
    if (version === undefined) {
      this.cache.delete(name);
      return undefined;
    }
    const { stamp } = version;
    const cached = this.cache.get(name);
    if (cached?.stamp === stamp) return cached;
    let doc: IndexDoc;
    try {
      doc = parseIndexDoc(new TextDecoder().decode(await this.disk.readFile(path)));
    } catch (err) {
      this.log.warn("index.json cannot be read; serving the repository as empty", { repo: name, error: (err as Error).message });
      doc = emptyIndex();
    }
    const index = buildIndex(stamp, doc);
    if (opts.keep !== false) this.cache.set(name, index, version.size);
    return index;
  }

  /** Creates the repository's layout if it does not exist yet (oci-layout, index.json, blobs/). */
  async ensure(name: string): Promise<void> {
    if (this.exists(name)) return;
    await this.lock.run(name, async () => {
      if (!this.exists(name)) await this.create(name);
    });
  }

  /** Writes a new repository's layout durably; the caller holds its lock. */
  private async create(name: string): Promise<void> {
    const created = await this.mkdirsDurably(this.paths.blobDir(name, "sha256"));
    await this.disk.writeAtomic(this.paths.ociLayout(name), `${JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION })}\n`);
    await this.disk.writeAtomic(this.paths.index(name), `${JSON.stringify(emptyIndex())}\n`);
    this.log.info("repository created", { repo: name, dirs: created.map((d) => relative(this.paths.root, d) || ".") });
  }

  /**
   * Runs `fn` holding the repository's write lock, so everything it does (publishing a
   * manifest's blob, reading and replacing index.json, unlinking) is one step for every other
   * writer of the repository. Readers are never blocked. The repository must exist.
   */
  async transaction<T>(name: string, fn: (tx: IndexTransaction) => Promise<T>): Promise<T> {
    return this.lock.run(name, async () => {
      const tx: IndexTransaction = {
        current: async () => {
          const index = await this.index(name);
          if (!index) throw new Error(`repository ${name} has no index.json`);
          return index;
        },
        write: async (entries) => {
          const current = await tx.current();
          const index = await this.swap(name, current.stamp, entries);
          if (!index) throw new Error(`index.json of ${name} changed under a write of berth's (another tool rewrote it); the write was not made`);
          return index;
        },
      };
      return fn(tx);
    });
  }

  /** The write of {@link compareAndSwap}; the caller holds the repository's lock. */
  private async swap(name: string, stamp: string, entries: Descriptor[]): Promise<RepoIndex | undefined> {
    const current = await this.index(name);
    if (!current || current.stamp !== stamp) return undefined;
    const path = this.paths.index(name);
    const doc: IndexDoc = { ...current.doc, manifests: entries };
    const text = `${JSON.stringify(doc)}\n`;
    try {
      await this.disk.writeAtomic(path, text);
    } catch (err) {
      // A write that removes entries (a delete, GC) may spend the reserve on a full disk.
      const shrinks = text.length < JSON.stringify(current.doc).length + 1;
      if (!isNoSpace(err) || !shrinks || !(await this.makeRoom())) throw err;
      await this.disk.writeAtomic(path, text);
    }
    const version = versionOf(this.disk, path);
    const index = buildIndex(version?.stamp ?? "", doc);
    this.cache.set(name, index, version?.size ?? text.length);
    return index;
  }

  /**
   * Replaces the repository's list of manifests with `mutate(current)` under its lock.
   * `mutate` returns undefined to leave the index unchanged; it may throw to refuse the change.
   * `after` runs, still under the lock, once the new index is durable. Updates that arrive
   * while the repository's index.json is being written share the next write (group commit,
   * groupcommit.ts); each resolves once the write holding its change is durable.
   */
  update(name: string, mutate: IndexMutation, after?: (index: RepoIndex) => void): Promise<RepoIndex> {
    return this.group.update(name, mutate, after);
  }

  /** Updates applied through {@link update} and the index.json writes they took. */
  groupStats(): GroupFigures {
    return this.group.stats();
  }

  /**
   * Runs `fn` holding the repository's write lock, so no index.json update (a manifest
   * push, a tag delete) interleaves with it. `fn` must not call {@link update} (deadlock).
   */
  withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.lock.run(name, fn);
  }

  /** Creates `dir` and any missing parents, fsyncing each parent so the entries survive a power loss. */
  private async mkdirsDurably(dir: string): Promise<string[]> {
    const missing: string[] = [];
    for (let d = dir; !this.disk.stat(d); d = dirname(d)) {
      missing.push(d);
      if (d === this.paths.root || dirname(d) === d) break;
    }
    await this.disk.mkdirp(dir);
    for (const d of missing) await this.disk.syncDir(dirname(d));
    return missing;
  }
}
