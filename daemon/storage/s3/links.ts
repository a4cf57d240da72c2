/**
 * What the S3 backend keeps in memory of the bucket: each stored blob's size and age, and
 * which blobs each repository links (repos/<repo>/_links/...). The seam's `stat` and the
 * usage meter are synchronous (the registry answers blob HEADs and quota checks without a
 * round trip), so they answer from here. The maps are loaded with one listing at start, kept
 * by this process's own writes, and a repository's links are listed again whenever its index
 * was changed by another process (a push through another berth on the bucket) or a `stat`
 * missed (at most once a second per repository). Memory: one small entry per blob and link.
 *
 * Another process's GC deletes links and blobs without changing any index, so what is kept
 * here is trusted for a guarded write (gclock.ts) only when it is valid at the GC lease's
 * epoch: listed after the lease was seen free at that epoch (`validAt`, `revalidate`).
 */
import type { S3Client } from "./client";
import type { S3Keys } from "./keys";

/** A stored blob as known here. */
export interface KnownBlob {
  size: number;
  mtimeMs: number;
}

/** How soon a repository whose `stat` missed is listed again. */
const MISS_REFRESH_MS = 1000;

/** The bucket's blobs and links, as last seen. */
export class LinkState {
  /** digest text -> stored blob */
  readonly pool = new Map<string, KnownBlob>();
  /** repo -> digest text -> when the link was written */
  readonly repos = new Map<string, Map<string, number>>();
  private readonly refreshing = new Map<string, Promise<void>>();
  private readonly lastMissRefresh = new Map<string, number>();
  /** repo -> the GC epoch its links were last listed at (see validAt). */
  private readonly validated = new Map<string, number>();
  /** The epoch of the whole listing at start, for repositories not listed since. */
  private baseEpoch: number | undefined;

  constructor(
    private readonly s3: S3Client,
    private readonly keys: S3Keys,
  ) {}

  /**
   * Lists the whole bucket's blobs and links; answers the repositories with an index object.
   * `epoch`: the GC lease was seen free at it before the listing began.
   */
  async loadAll(epoch?: number): Promise<string[]> {
    this.pool.clear();
    this.repos.clear();
    this.validated.clear();
    this.baseEpoch = epoch;
    for await (const { object } of this.s3.listAll({ prefix: this.keys.blobs })) {
      const d = object && this.keys.digestOf(object.key);
      if (d) this.pool.set(d.value, { size: object.size, mtimeMs: object.lastModified.getTime() });
    }
    const withIndex: string[] = [];
    for await (const { object } of this.s3.listAll({ prefix: this.keys.repos })) {
      const parsed = object && this.keys.parseRepoKey(object.key);
      if (!parsed) continue;
      if ("index" in parsed) withIndex.push(parsed.repo);
      else this.linksOf(parsed.repo).set(parsed.link, object!.lastModified.getTime());
    }
    return withIndex.sort();
  }

  private linksOf(repo: string): Map<string, number> {
    let m = this.repos.get(repo);
    if (!m) this.repos.set(repo, (m = new Map()));
    return m;
  }

  /** The blob as `repo` links it, from memory. */
  stat(repo: string, digest: string): { size: number; mtimeMs: number } | undefined {
    const linked = this.repos.get(repo)?.get(digest);
    const blob = linked === undefined ? undefined : this.pool.get(digest);
    return blob && { size: blob.size, mtimeMs: linked! };
  }

  /** Records a link this process wrote (or saw). */
  linked(repo: string, digest: string, blob: KnownBlob, at = Date.now()): void {
    this.pool.set(digest, blob);
    this.linksOf(repo).set(digest, at);
  }

  /** Forgets a link this process removed. */
  unlinked(repo: string, digest: string): void {
    this.repos.get(repo)?.delete(digest);
  }

  /** Forgets a stored blob this process removed. */
  dropped(digest: string): void {
    this.pool.delete(digest);
  }

  /** Lists `repo`'s links again (one listing at a time per repository), learning unknown blobs' sizes. */
  refresh(repo: string): Promise<void> {
    const running = this.refreshing.get(repo);
    if (running) return running;
    const p = this.list(repo).finally(() => this.refreshing.delete(repo));
    this.refreshing.set(repo, p);
    return p;
  }

  /** After a `stat` miss: lists the repository again in the background, at most once a second. */
  missed(repo: string): void {
    const now = Date.now();
    if ((this.lastMissRefresh.get(repo) ?? 0) + MISS_REFRESH_MS > now) return;
    this.lastMissRefresh.set(repo, now);
    if (this.lastMissRefresh.size > 10_000) this.lastMissRefresh.clear();
    this.refresh(repo).catch(() => {});
  }

  /** True when `repo`'s links were listed after the GC lease was seen free at `epoch` (no GC deleted since). */
  validAt(repo: string, epoch: number): boolean {
    return (this.validated.get(repo) ?? this.baseEpoch) === epoch;
  }

  /**
   * Lists `repo`'s links afresh (after any listing already running, which may have begun
   * before `epoch` was seen) and records them as valid at `epoch`.
   */
  async revalidate(repo: string, epoch: number): Promise<void> {
    for (let running = this.refreshing.get(repo); running; running = this.refreshing.get(repo)) await running.catch(() => {});
    await this.refresh(repo);
    this.validated.set(repo, epoch);
  }

  /** True when the repository's links were loaded (at start or since). */
  knows(repo: string): boolean {
    return this.repos.has(repo);
  }

  private async list(repo: string): Promise<void> {
    const links = new Map<string, number>();
    for await (const { object } of this.s3.listAll({ prefix: this.keys.links(repo) })) {
      const d = object && this.keys.digestOf(object.key);
      if (d) links.set(d.value, object!.lastModified.getTime());
    }
    for (const digest of links.keys()) {
      if (this.pool.has(digest)) continue;
      const info = await this.s3.head(this.keys.blob(digest));
      if (info) this.pool.set(digest, { size: info.size, mtimeMs: info.lastModified.getTime() });
    }
    this.repos.set(repo, links);
  }
}
