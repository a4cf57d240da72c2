/**
 * GC's deletions on S3 (the {@link BlobSweep} of the S3 backend). GC decides without any
 * lock (gc.ts, on the graph and the listings); `unlink` and `unlinkStored` only note each
 * decision with what it was taken on, and `settle` carries them out holding the GC lease
 * (gclock.ts): after the writers in flight have finished, each decision is confirmed against
 * the bucket and only what is still garbage is deleted:
 *
 * - a link goes if the repository's index still has the ETag the decision was taken on (no
 *   manifest pushed or deleted since) and the link still has the LastModified it was listed
 *   with (not linked again since);
 * - a blob goes if it still has its listed LastModified and has no touch mark of the epoch
 *   its listing was made at or later (no writer linked it anew since; a new link in any
 *   repository cannot be found without listing all of repos/ again).
 *
 * What is kept is left for the next pass. Requests: per repository with decisions one HEAD
 * of its index and one LIST of its links; per blob two HEADs; deletions 1,000 per request;
 * the lease adds a GET, a PUT to take it, a LIST of intents, a PUT per batch and one to
 * release it. A decision given without its basis is taken as made at the call (the index,
 * link, blob and epoch are read then).
 */
import type { Logger } from "../../log";
import { parseDigest } from "../../oci/digest";
import type { BlobInfo, BlobSweep, SweepBasis } from "../api";
import type { S3Blobs } from "./blobs";
import type { S3Client } from "./client";
import type { GcLock, Hold } from "./gclock";
import type { S3Keys } from "./keys";
import type { LinkState } from "./links";

/** Decisions noted before they are carried out (bounds memory between settles). */
const BATCH = 1000;

interface LinkDecision {
  repo: string;
  digest: string;
  stamp: string;
  linkedAt: number;
}

interface BlobDecision {
  digest: string;
  storedAt: number;
  generation: number;
}

/** Deletions of one GC, confirmed under the lease. */
export class S3Sweep implements BlobSweep {
  private links: LinkDecision[] = [];
  private blobs: BlobDecision[] = [];

  constructor(
    private readonly s3: S3Client,
    private readonly keys: S3Keys,
    private readonly state: LinkState,
    private readonly lock: GcLock,
    private readonly store: S3Blobs,
    private readonly log: Logger,
  ) {}

  /** Notes the decision to unlink (carried out by {@link settle}); without a basis, as decided now. */
  async unlink(repo: string, digest: string, basis?: SweepBasis): Promise<void> {
    let stamp = basis?.stamp;
    let linkedAt = basis?.entry.mtimeMs;
    if (stamp === undefined || linkedAt === undefined) {
      stamp = (await this.s3.head(this.keys.index(repo)))?.etag;
      linkedAt = await this.listedAt(this.keys.link(repo, digest));
      if (stamp === undefined || linkedAt === undefined) return;
    }
    this.links.push({ repo, digest, stamp, linkedAt });
    if (this.links.length >= BATCH) await this.settle();
  }

  /** Takes back a decision not carried out yet, else links the stored blob again. */
  async relink(repo: string, digest: string): Promise<boolean> {
    const at = this.links.findIndex((d) => d.repo === repo && d.digest === digest);
    if (at >= 0) {
      this.links.splice(at, 1);
      return true;
    }
    const d = parseDigest(digest);
    return d !== undefined && this.store.mount(repo, d);
  }

  async stored(digest: string): Promise<BlobInfo | undefined> {
    const info = await this.s3.head(this.keys.blob(digest));
    return info && { size: info.size, mtimeMs: info.lastModified.getTime() };
  }

  /** Notes the decision to delete the blob (carried out by {@link settle}); without a basis, as decided now. */
  async unlinkStored(digest: string, basis?: SweepBasis): Promise<void> {
    let entry = basis?.entry;
    if (!entry || entry.generation === undefined) {
      const generation = (await this.lock.readLease()).doc.epoch;
      const storedAt = await this.listedAt(this.keys.blob(digest));
      if (storedAt === undefined) return;
      entry = { digest, size: 0, mtimeMs: storedAt, generation };
    }
    this.blobs.push({ digest, storedAt: entry.mtimeMs, generation: entry.generation! });
    if (this.blobs.length >= BATCH) await this.settle();
  }

  /** The object's LastModified as a listing gives it (milliseconds), or undefined. */
  private async listedAt(key: string): Promise<number | undefined> {
    const page = await this.s3.list({ prefix: key, maxKeys: 1 });
    const object = page.objects[0];
    return object?.key === key ? object.lastModified.getTime() : undefined;
  }

  /** Confirms and carries out the decisions noted, holding the GC lease. */
  async settle(): Promise<void> {
    const links = this.links;
    const blobs = this.blobs;
    this.links = [];
    this.blobs = [];
    if (links.length === 0 && blobs.length === 0) return;
    const done = await this.lock.exclusive((hold) => this.carryOut(hold, links, blobs));
    if (done === undefined) this.log.info("gc: deletions kept for the next pass; another process holds the GC lease", { links: links.length, blobs: blobs.length });
  }

  private async carryOut(hold: Hold, links: LinkDecision[], blobs: BlobDecision[]): Promise<true> {
    const doomed: { key: string; done: () => void }[] = [];
    let kept = 0;
    const byRepo = new Map<string, LinkDecision[]>();
    for (const d of links) byRepo.set(d.repo, [...(byRepo.get(d.repo) ?? []), d]);
    for (const [repo, decisions] of byRepo) {
      const index = await this.s3.head(this.keys.index(repo));
      const listed = new Map<string, number>();
      for await (const { object } of this.s3.listAll({ prefix: this.keys.links(repo) })) {
        const d = object && this.keys.digestOf(object.key);
        if (d) listed.set(d.value, object!.lastModified.getTime());
      }
      for (const d of decisions) {
        const at = listed.get(d.digest);
        if (at === undefined) {
          this.state.unlinked(repo, d.digest);
        } else if (index?.etag !== d.stamp || at !== d.linkedAt) {
          kept++;
        } else {
          doomed.push({ key: this.keys.link(repo, d.digest), done: () => this.state.unlinked(repo, d.digest) });
        }
      }
    }
    for (const d of blobs) {
      const info = await this.s3.head(this.keys.blob(d.digest));
      if (!info) {
        this.state.dropped(d.digest);
        continue;
      }
      // HEAD answers whole seconds, a listing milliseconds
      const touched = await this.lock.touchedAt(d.digest);
      const relinked = touched !== undefined && touched >= d.generation;
      if (relinked || Math.floor(info.lastModified.getTime() / 1000) !== Math.floor(d.storedAt / 1000)) {
        kept++;
        continue;
      }
      doomed.push({ key: this.keys.blob(d.digest), done: () => this.state.dropped(d.digest) });
      if (touched !== undefined) doomed.push({ key: this.keys.gcTouch(d.digest), done: () => {} });
    }
    for (let i = 0; i < doomed.length; i += BATCH) {
      const batch = doomed.slice(i, i + BATCH);
      const signal = await hold.beforeDelete();
      const failed = new Set((await this.s3.deleteMany(batch.map((b) => b.key), signal)).map((f) => f.key));
      for (const b of batch) if (!failed.has(b.key)) b.done();
      if (failed.size > 0) this.log.warn("gc: some objects could not be deleted; the next pass tries again", { count: failed.size });
    }
    if (kept > 0) this.log.info("gc: decisions a later write outdated were not carried out", { kept, epoch: hold.epoch });
    return true;
  }
}
