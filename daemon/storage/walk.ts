/**
 * The one walk of the local tree (paths.ts draws it), with the one definition of a
 * repository: a directory under the root, outside `.berth/` and hidden directories, that
 * holds an `index.json` file and whose name is a valid repository name. A layout's `blobs/`
 * is not entered when looking for nested repositories. Catalog, GC, quota, scrub and the
 * storage metrics all list repositories and blobs through here.
 */
import { join, relative } from "node:path";
import { nameProblem } from "../oci/names";
import { type Disk, type FileInfo, TEMP_PREFIX } from "../platform/disk";
import type { Logger } from "../log";
import type { BlobEntry, DedupeFigures, StorageFigures, StorageWalk } from "./api";
import type { Paths } from "./paths";

/** A blob entry from a file's stat. */
export function entryOf(digest: string, info: FileInfo): BlobEntry {
  return { digest, size: info.size, mtimeMs: info.mtimeMs, ctimeMs: info.ctimeMs, links: info.nlink, id: info.ino };
}

/** Adds one pool entry to running dedupe figures: its name in the pool is one of its links. */
function countShared(d: DedupeFigures, e: BlobEntry): void {
  const repoLinks = (e.links ?? 1) - 1;
  if (repoLinks < 2) return;
  d.savedBytes += e.size * (repoLinks - 1);
  d.sharedBlobs++;
}

/** Walks one local root. */
export class LocalWalk implements StorageWalk {
  /** Dedupe savings from the last walk of the pool (usage, figures or dedupe itself). */
  private lastDedupe: DedupeFigures | undefined;

  constructor(
    private readonly paths: Paths,
    private readonly disk: Disk,
    private readonly log: Logger,
  ) {}

  /** Every repository under the root, in lexical order. */
  async repositories(): Promise<string[]> {
    return this.repositoriesSync();
  }

  /** Every repository under the root, in lexical order, without yielding. */
  repositoriesSync(): string[] {
    const found: string[] = [];
    this.layouts((name) => void found.push(name));
    return found.sort();
  }

  /**
   * One directory of the walk: the repository it holds (a layout with a valid name; an invalid
   * one is logged once and not served) and the subdirectories to enter (hidden ones and a
   * layout's `blobs/` are not).
   */
  private directory(dir: string): { repo: string | undefined; children: string[] } {
    const names = this.disk.readdir(dir);
    const isLayout = names.includes("index.json") && this.disk.stat(join(dir, "index.json"))?.isFile === true;
    let repo: string | undefined;
    if (isLayout && dir !== this.paths.root) {
      const name = relative(this.paths.root, dir);
      const problem = nameProblem(name);
      if (problem) this.log.once(`bad-repo-${name}`, "a layout under the root has a name that is not a valid repository name; it is not served", { path: name, problem });
      else repo = name;
    }
    const children: string[] = [];
    for (const name of names) {
      if (name.startsWith(".") || (isLayout && name === "blobs")) continue;
      const child = join(dir, name);
      if (this.disk.stat(child)?.isDirectory) children.push(child);
    }
    return { repo, children };
  }

  /**
   * Calls `visit` for every repository (valid name) found, with its directory; hidden
   * directories and blob directories are not entered.
   */
  layouts(visit: (name: string, dir: string) => void): void {
    const walk = (dir: string): void => {
      const { repo, children } = this.directory(dir);
      if (repo !== undefined) visit(repo, dir);
      for (const child of children) walk(child);
    };
    walk(this.paths.root);
  }

  /**
   * {@link layouts}, awaiting `pace` before each directory read (the IO budget, and turns of
   * the event loop so requests are served during a walk of a large store); `visit` may be
   * async and is awaited.
   */
  async layoutsPaced(visit: (name: string, dir: string) => Promise<void>, pace: (ops: number) => Promise<void>): Promise<void> {
    const walk = async (dir: string): Promise<void> => {
      await pace(1);
      const { repo, children } = this.directory(dir);
      if (repo !== undefined) await visit(repo, dir);
      for (const child of children) await walk(child);
    };
    await walk(this.paths.root);
  }

  /** The blob files `repo` holds (temp files left out; a name that is no digest is yielded as found). */
  *repoBlobs(repo: string): Iterable<BlobEntry> {
    yield* this.blobsIn(join(this.paths.repo(repo), "blobs"));
  }

  /** The pool: every distinct blob once. */
  *storedBlobs(): Iterable<BlobEntry> {
    yield* this.blobsIn(this.paths.pool);
  }

  /** Bytes held (distinct inodes: pool, repository links, upload data) and per prefix. */
  usage(prefixes: readonly string[]): { total: number; byPrefix: Map<string, number> } {
    const seen = new Set<number>();
    let total = 0;
    const add = (info: { size: number; id?: number } | FileInfo | undefined, into?: { seen: Set<number>; sum: number }) => {
      if (!info) return;
      const id = "ino" in info ? info.ino : (info.id ?? -1);
      if (into && !into.seen.has(id)) {
        into.seen.add(id);
        into.sum += info.size;
      }
      if (seen.has(id)) return;
      seen.add(id);
      total += info.size;
    };
    const dedupe: DedupeFigures = { savedBytes: 0, sharedBlobs: 0, at: Date.now() };
    for (const e of this.storedBlobs()) {
      add(e);
      countShared(dedupe, e);
    }
    this.lastDedupe = dedupe;
    const uploads = this.paths.uploads;
    for (const id of this.disk.readdir(uploads)) {
      const info = this.disk.stat(join(uploads, id));
      if (info?.isFile) add(info);
      else if (info?.isDirectory) for (const f of this.disk.readdir(join(uploads, id))) add(fileOnly(this.disk.stat(join(uploads, id, f)))); // an older layout's session directory
    }
    const perPrefix = prefixes.map((prefix) => ({ prefix, seen: new Set<number>(), sum: 0 }));
    for (const repo of this.repositoriesSync()) {
      const acc = perPrefix.filter((p) => repo.startsWith(p.prefix));
      for (const e of this.repoBlobs(repo)) {
        add(e);
        for (const a of acc) add(e, a);
      }
    }
    return { total, byPrefix: new Map(perPrefix.map((p) => [p.prefix, p.sum])) };
  }

  /** Bytes per repository (shared blobs counted in each) and of the pool. */
  figures(): StorageFigures {
    const repositories = new Map<string, { bytes: number; blobs: number }>();
    for (const repo of this.repositoriesSync()) {
      let bytes = 0;
      let blobs = 0;
      for (const e of this.repoBlobs(repo)) {
        bytes += e.size;
        blobs++;
      }
      repositories.set(repo, { bytes, blobs });
    }
    let poolBytes = 0;
    let poolBlobs = 0;
    const dedupe: DedupeFigures = { savedBytes: 0, sharedBlobs: 0, at: Date.now() };
    for (const e of this.storedBlobs()) {
      poolBytes += e.size;
      poolBlobs++;
      countShared(dedupe, e);
    }
    this.lastDedupe = dedupe;
    return { repositories, poolBytes, poolBlobs, dedupe };
  }

  /** Dedupe savings: the last pool walk's when younger than `maxAgeMs` (default 60 s), else a walk of the pool alone. */
  dedupe(maxAgeMs = 60_000): DedupeFigures {
    if (this.lastDedupe && Date.now() - this.lastDedupe.at <= maxAgeMs) return this.lastDedupe;
    const dedupe: DedupeFigures = { savedBytes: 0, sharedBlobs: 0, at: Date.now() };
    for (const e of this.storedBlobs()) countShared(dedupe, e);
    this.lastDedupe = dedupe;
    return dedupe;
  }

  private *blobsIn(dir: string): Iterable<BlobEntry> {
    for (const alg of this.disk.readdir(dir)) {
      for (const hex of this.disk.readdir(join(dir, alg))) {
        if (hex.startsWith(TEMP_PREFIX)) continue;
        const info = this.disk.stat(join(dir, alg, hex));
        if (info?.isFile) yield entryOf(`${alg}:${hex}`, info);
      }
    }
  }
}

function fileOnly(info: FileInfo | undefined): FileInfo | undefined {
  return info?.isFile ? info : undefined;
}
