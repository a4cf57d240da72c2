/**
 * The local backend's abilities for lifecycle work: unlinking blobs in bulk for garbage
 * collection ({@link LocalSweep}), and re-hashing blobs and setting bad ones aside in
 * `<root>/.berth/quarantine/` ({@link LocalAudit}). Durability follows blobs.ts: an unlink
 * is durable once its directory is fsynced, which {@link LocalSweep.settle} does once per
 * directory touched rather than once per blob.
 */
import { dirname, join } from "node:path";
import { type Algorithm, type Digest, isAlgorithm, parseDigest } from "../oci/digest";
import type { Disk } from "../platform/disk";
import { hashFile } from "../platform/hash";
import type { AuditItem, BlobAudit, BlobInfo, BlobSweep, QuarantinedBlob, RepoIndexStore } from "./api";
import type { Paths } from "./paths";
import { entryOf, type LocalWalk } from "./walk";

/** Splits `alg:hex` (any text; callers pass digests found on disk). */
function split(digest: string): [string, string] {
  const at = digest.indexOf(":");
  return [digest.slice(0, at), digest.slice(at + 1)];
}

/** Bulk unlinks for garbage collection; see {@link BlobSweep}. */
export class LocalSweep implements BlobSweep {
  private readonly dirty = new Set<string>();

  constructor(
    private readonly paths: Paths,
    private readonly disk: Disk,
  ) {}

  async unlink(repo: string, digest: string): Promise<void> {
    const [alg, hex] = split(digest);
    const path = join(this.paths.repo(repo), "blobs", alg, hex);
    await this.disk.unlink(path);
    this.dirty.add(dirname(path));
  }

  async relink(repo: string, digest: string): Promise<boolean> {
    const [alg, hex] = split(digest);
    const pool = join(this.paths.pool, alg, hex);
    if (!this.disk.stat(pool)) return false;
    return await this.disk.link(pool, join(this.paths.repo(repo), "blobs", alg, hex)).catch(() => false);
  }

  stored(digest: string): BlobInfo | undefined {
    const [alg, hex] = split(digest);
    const info = this.disk.stat(join(this.paths.pool, alg, hex));
    return info?.isFile ? entryOf(digest, info) : undefined;
  }

  async unlinkStored(digest: string): Promise<void> {
    const [alg, hex] = split(digest);
    const path = join(this.paths.pool, alg, hex);
    await this.disk.unlink(path);
    this.dirty.add(dirname(path));
  }

  async settle(): Promise<void> {
    const dirs = [...this.dirty];
    this.dirty.clear();
    for (const dir of dirs) if (this.disk.stat(dir)) await this.disk.syncDir(dir);
  }
}

/** Shared files outside the pool a scrub remembers, so as to hash each once (8 bytes or so each). */
export const AUDIT_SEEN_MAX = 65_536;

/**
 * A stored file to re-hash, with the path it was found at: one small object per blob and
 * no closure or side table (a scrub hands out one per blob of the store).
 */
class LocalAuditItem implements AuditItem {
  constructor(
    readonly digest: Digest,
    readonly size: number,
    /** The file whose bytes it hashes. */
    readonly path: string,
  ) {}

  hash(): Promise<string | undefined> {
    return hashOrGone(this.digest.algorithm, this.path, this.size);
  }
}

/** Scrub support; see {@link BlobAudit}. */
export class LocalAudit implements BlobAudit {
  constructor(
    private readonly paths: Paths,
    private readonly disk: Disk,
    private readonly walk: LocalWalk,
    private readonly indexes: RepoIndexStore,
  ) {}

  /**
   * The pool first, then blobs repositories hold outside it; each stored file once. Nothing
   * per blob is remembered for the pool (its entries are distinct files) or for a file with
   * one link; a repository's file with several links is skipped when it is the pool entry of
   * its digest (one stat), and other shared files are remembered up to {@link AUDIT_SEEN_MAX}
   * (past that a file two repositories share may be hashed twice, which is only time).
   */
  *auditItems(): Iterable<AuditItem> {
    const seen = new Set<number>();
    const item = (digestText: string, path: string, size: number): AuditItem | undefined => {
      const digest = parseDigest(digestText);
      return digest ? new LocalAuditItem(digest, size, path) : undefined;
    };
    for (const e of this.walk.storedBlobs()) {
      const [alg, hex] = split(e.digest);
      const it = isAlgorithm(alg) && e.id !== undefined ? item(e.digest, this.paths.poolBlob(alg, hex), e.size) : undefined;
      if (it) yield it;
    }
    for (const repo of this.walk.repositoriesSync()) {
      for (const e of this.walk.repoBlobs(repo)) {
        const [alg, hex] = split(e.digest);
        if (!isAlgorithm(alg) || e.id === undefined) continue;
        if ((e.links ?? 1) > 1) {
          if (this.disk.stat(this.paths.poolBlob(alg, hex))?.ino === e.id || seen.has(e.id)) continue;
          if (seen.size < AUDIT_SEEN_MAX) seen.add(e.id);
        }
        const it = item(e.digest, this.paths.blob(repo, alg, hex), e.size);
        if (it) yield it;
      }
    }
  }

  async quarantine(item: AuditItem, actual: string): Promise<QuarantinedBlob> {
    const { digest, size } = item;
    const { algorithm: alg, hex } = digest;
    const dir = this.dir();
    if (!this.disk.stat(dir)) {
      await this.disk.mkdirp(dir);
      await this.disk.syncDir(this.paths.internal);
    }
    const pool = this.paths.poolBlob(alg, hex);
    const repos = await this.walk.repositories();
    const bad = item instanceof LocalAuditItem ? item.path : pool;
    const file = join(dir, `${alg}-${hex}-${Date.now()}`);
    // Keep one copy of the bad bytes for inspection: a new link, so moving it cannot
    // leave the digest's name pointing at nothing half-way.
    if (!(await this.disk.link(bad, file).catch(() => false))) await this.disk.copy(bad, file).catch(() => false);
    await this.disk.syncDir(dir);
    const repositories: string[] = [];
    for (const repo of repos) {
      const path = this.paths.blob(repo, alg, hex);
      if (!this.disk.stat(path)) continue;
      await this.indexes.withLock(repo, async () => {
        await this.disk.unlink(path);
        await this.disk.syncDir(this.paths.blobDir(repo, alg));
      });
      repositories.push(repo);
    }
    if (this.disk.stat(pool)) {
      await this.disk.unlink(pool);
      await this.disk.syncDir(this.paths.poolDir(alg));
    }
    return { digest: digest.value, actual: `${alg}:${actual}`, size, repositories, file, at: Date.now() };
  }

  quarantined(): QuarantinedBlob[] {
    const dir = this.dir();
    const out: QuarantinedBlob[] = [];
    for (const name of this.disk.readdir(dir)) {
      const m = /^(sha256|sha512)-([0-9a-f]+)-(\d+)$/.exec(name);
      if (!m) continue;
      const info = this.disk.stat(join(dir, name));
      out.push({ digest: `${m[1]}:${m[2]}`, actual: "", size: info?.size ?? 0, repositories: [], file: join(dir, name), at: Number(m[3]) });
    }
    return out;
  }

  private dir(): string {
    return this.paths.quarantine;
  }
}

/** Hashes a stored file (synchronously when `size`, the size the walk saw, is small: see hashFile). */
async function hashOrGone(algorithm: Algorithm, path: string, size: number): Promise<string | undefined> {
  try {
    return await hashFile(algorithm, path, size);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined; // removed meanwhile
    throw err;
  }
}
