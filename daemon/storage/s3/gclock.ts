/**
 * GC on a bucket shared by several berth processes: a lease for the collector, intents for
 * the writers, touch marks for re-used blobs. Plain S3 only (strongly consistent PUT, GET,
 * LIST, DELETE; `If-None-Match: *` and `If-Match` on PUT; no transactions, no conditional
 * DELETE), and no clock shared between hosts: every time bound below is measured on one
 * process's own monotonic clock.
 *
 * Objects (keys.ts): `gc/lease` {holder, held, epoch, n}, never deleted, every change an
 * If-Match PUT (If-None-Match: * for the first); `gc/intents/<id>`, one per guarded write;
 * `gc/touch/<alg>/<hex>`, metadata `epoch`, written when a blob already stored is linked again.
 *
 * Writer (a guarded write: an index write, or a link of a blob already stored): (w1) PUT an
 * intent; (w2) GET the lease: held, then DELETE the intent, wait (bounded by `waitMs`, then
 * StorageError "busy", 503 with Retry-After) and start again; free at epoch e, then (w3)
 * check what it relies on against a view of the bucket valid at e (links.ts `validAt`: the
 * repository's links were listed after the lease was seen free at e; otherwise it lists them
 * again and re-runs its check), write (an index PUT; or HEAD blob, PUT touch with epoch e if
 * the blob is old, PUT link), and (w4) DELETE the intent, except after a write whose outcome
 * is unknown (timed out: it may still land), whose intent a collector waits out. The last
 * write is sent at most `intentMaxMs/3` after w1 was sent and aborted `intentMaxMs/2` after it.
 *
 * Collector: decides unlocked (gc.ts marks on the graph and the listings), then for a batch
 * of decisions drains the intents once without the lease (so that a crashed writer's intent
 * delays the collector, not the pushes), (g1) takes the lease with If-Match (epoch + 1), (g2) LISTs the intents and
 * waits until each one seen is gone, or has been seen for `intentMaxMs` (a crashed writer:
 * it is deleted), (g3) confirms each decision against the bucket: a link goes only if the
 * repository's index still has the ETag the decision was taken on and the link the
 * LastModified it was listed with; a blob only if it has its listed LastModified and no touch
 * mark of the decision's epoch or later; (g4) DELETEs what was confirmed, renewing the lease
 * (If-Match) before each batch and stopping if that fails, then (g5) releases it (If-Match).
 *
 * Why an acknowledged write never loses what it relied on to this collector: take the
 * writer's w2 read and the collector's g1 write, both on the lease object, which S3 orders.
 * (a) w2 after g1 and before g5: the writer sees the lease held and backs off before
 * relying on anything. (b) w2 before g1: then w1 < g2, so the LIST at g2 shows the intent
 * and g3 starts after w4, i.e. after the writer's write, which the confirmation sees: the
 * index ETag changed (a manifest push, a delete), or the link's LastModified changed (a link
 * written again), or a touch mark with epoch >= the decision's epoch exists (a blob linked
 * anew into any repository, which the decision's listing of repos/ could not see). The
 * writer's own check cannot be outdated by an earlier collector either: any collector that
 * deleted since the view was listed moved the epoch past e. (c) w2 after g5: the writer's
 * view is older than epoch e' of this collector, so it lists again and checks after g4, and
 * answers MANIFEST_BLOB_UNKNOWN (or uploads the bytes again) instead of relying on what
 * went. A stale lease (its ETag unchanged for `leaseMs` on the observer's clock) is freed by
 * a waiting writer or taken over by a collector; a collector renews every batch, so it never
 * deletes after anyone may have judged its lease stale. Assumptions: a request is applied
 * by the server within the margins (`intentMaxMs/2` for a writer's last write, `leaseMs/2`
 * for a collector's delete batch) or not at all, and two processes' clocks run at the same
 * rate; a process paused longer than that can break the guarantee (the usual bound of lease
 * protocols). Collectors themselves never overlap: the lease excludes them.
 *
 * Costs: a guarded write is one PUT, one GET and one DELETE (the DELETE not awaited), plus a
 * LIST of the repository's links the first time after a collector ran. So a manifest push
 * costs 3 more requests, a mount or an upload of bytes already stored 3 (4 with the touch of
 * an old blob); blob GETs and HEADs nothing, uploads of new bytes nothing (with a blob grace
 * of a minute or more: fresh bytes are young, and no collector decides on them).
 */
import { hostname } from "node:os";
import type { Logger } from "../../log";
import { StorageError } from "../errors";
import type { S3Client } from "./client";
import { isS3Error } from "./errors";
import type { S3Keys } from "./keys";

/** Time bounds of the protocol (ms) and a test hook. */
export interface GcLockOptions {
  /** A lease whose ETag stays the same this long is stale (default 15,000). */
  leaseMs?: number;
  /** An intent seen this long is a crashed writer's (default 60,000). */
  intentMaxMs?: number;
  /** How long a writer waits for a held lease before answering "busy" (default 20,000). */
  waitMs?: number;
  /** Tests: runs inside the guard, after the lease was seen free and before the write. */
  beforeGuardedWrite?: (what: string) => Promise<void>;
}

/** The lease object's content. */
interface LeaseDoc {
  holder: string;
  held: boolean;
  epoch: number;
  /** Changes with every write, so that every write changes the ETag. */
  n: number;
}

interface Lease {
  /** undefined: there is no lease object yet. */
  etag?: string;
  doc: LeaseDoc;
}

/** What a guarded write is given. */
export interface Guarded {
  /** The lease's epoch, seen free after the intent was written. */
  readonly epoch: number;
  /** Call right before the write it relies on: throws "busy" when too late; the signal aborts it at the hard limit. */
  beforeWrite(): Promise<AbortSignal>;
}

/** What a collector holding the lease is given. */
export interface Hold {
  /** This hold's epoch (decisions taken at an earlier epoch are confirmed against it). */
  readonly epoch: number;
  /** Renews the lease; throws if it was lost. The signal bounds the delete batch that follows. */
  beforeDelete(): Promise<AbortSignal>;
}

const POLL_MIN_MS = 20;
const POLL_MAX_MS = 250;

/** The lease, intents and touch marks of one bucket prefix. */
export class GcLock {
  readonly holder = `${hostname()}/${process.pid}/${crypto.randomUUID().slice(0, 8)}`;
  private readonly leaseMs: number;
  private readonly intentMaxMs: number;
  private readonly waitMs: number;
  private seq = 0;
  /** Local collectors take the lease one at a time. */
  private local: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly s3: S3Client,
    private readonly keys: S3Keys,
    private readonly log: Logger,
    private readonly options: GcLockOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? 15_000;
    this.intentMaxMs = options.intentMaxMs ?? 60_000;
    this.waitMs = options.waitMs ?? 20_000;
  }

  /** The lease as stored (absent: free at epoch 0). */
  async readLease(): Promise<Lease> {
    let text: string;
    let etag: string;
    try {
      const got = await this.s3.get(this.keys.gcLease);
      etag = got.info.etag;
      text = await new Response(got.body).text();
    } catch (e) {
      if (isS3Error(e, "not-found")) return { doc: { holder: "", held: false, epoch: 0, n: 0 } };
      throw e;
    }
    try {
      const doc = JSON.parse(text) as LeaseDoc;
      if (typeof doc.epoch !== "number" || typeof doc.held !== "boolean") throw new Error("fields missing");
      return { etag, doc };
    } catch (err) {
      throw new Error(`GC lease "${this.keys.gcLease}" cannot be read (${(err as Error).message}); remove it while no berth collects garbage`);
    }
  }

  /**
   * Runs `fn` as a guarded write (see the file comment): under an intent, with the lease
   * seen free. Throws StorageError "busy" when a collector held the lease for `waitMs`.
   */
  async guard<T>(what: string, fn: (g: Guarded) => Promise<T>): Promise<T> {
    const started = performance.now();
    for (;;) {
      const key = this.keys.gcIntent(`${this.holder.replaceAll("/", "-")}-${++this.seq}`);
      const sent = performance.now();
      await this.s3.put(key, JSON.stringify({ holder: this.holder, what }), { contentType: "application/json" });
      let lease: Lease;
      try {
        lease = await this.readLease();
      } catch (e) {
        this.dropIntent(key);
        throw e;
      }
      if (!lease.doc.held) {
        const g: Guarded = {
          epoch: lease.doc.epoch,
          beforeWrite: async () => {
            await this.options.beforeGuardedWrite?.(what);
            const elapsed = performance.now() - sent;
            if (elapsed > this.intentMaxMs / 3) throw new StorageError("busy", `Writing ${what} took ${Math.round(elapsed)} ms, longer than GC allows a write in flight; nothing was written, retry`);
            return AbortSignal.timeout(Math.max(1, Math.round(this.intentMaxMs / 2 - elapsed)));
          },
        };
        let result: T;
        try {
          result = await fn(g);
        } catch (e) {
          // a write whose outcome is unknown may still land: its intent stays, so a collector waits it out (intentMaxMs)
          if (!unknownOutcome(e)) this.dropIntent(key);
          throw e;
        }
        this.dropIntent(key);
        return result;
      }
      await this.s3.delete(key);
      await this.waitFree(lease, started, what);
    }
  }

  /** Deletes an intent in the background (a collector waits for it; a leftover is stale after intentMaxMs). */
  private dropIntent(key: string): void {
    this.s3.delete(key).catch((err: Error) => this.log.debug("gc: an intent could not be removed; it goes stale", { key, error: err.message }));
  }

  /** Waits until the lease is free (freeing it when stale); "busy" after `waitMs` from `started`. */
  private async waitFree(first: Lease, started: number, what: string): Promise<void> {
    let lease = first;
    let seenAt = performance.now();
    for (let delay = POLL_MIN_MS; ; delay = Math.min(POLL_MAX_MS, delay * 2)) {
      if (!lease.doc.held) return;
      if (performance.now() - seenAt >= this.leaseMs) {
        // unchanged for a whole lease time: its collector is gone
        if (await this.write(lease, { ...lease.doc, held: false, holder: "" })) {
          this.log.warn("gc: a stale GC lease was freed", { holder: lease.doc.holder, epoch: lease.doc.epoch });
          return;
        }
      }
      if (performance.now() - started > this.waitMs) {
        throw new StorageError("busy", `Garbage collection by "${lease.doc.holder}" holds the bucket's GC lease; ${what} was not written, retry`);
      }
      await sleep(delay);
      const next = await this.readLease();
      if (next.etag !== lease.etag) seenAt = performance.now();
      lease = next;
    }
  }

  /** Writes the lease if it is still `from` (If-Match, or If-None-Match when absent); the new ETag, or undefined. */
  private async write(from: Lease, doc: LeaseDoc, signal?: AbortSignal): Promise<string | undefined> {
    const body = JSON.stringify({ ...doc, n: from.doc.n + 1 });
    try {
      const cond = from.etag === undefined ? { ifNoneMatch: "*" as const } : { ifMatch: from.etag };
      return (await this.s3.put(this.keys.gcLease, body, { ...cond, contentType: "application/json", signal })).etag;
    } catch (e) {
      if (isS3Error(e, "precondition-failed") || isS3Error(e, "conflict") || isS3Error(e, "not-found")) return undefined;
      throw e;
    }
  }

  /**
   * Runs `fn` holding the lease, after the intents present have drained (see the file
   * comment); undefined (nothing run) when another collector kept the lease for `waitMs`.
   */
  async exclusive<T>(fn: (hold: Hold) => Promise<T>): Promise<T | undefined> {
    const run = this.local.then(() => this.holdAndRun(fn));
    this.local = run.catch(() => {});
    return run;
  }

  private async holdAndRun<T>(fn: (hold: Hold) => Promise<T>): Promise<T | undefined> {
    // First without the lease: a crashed writer's intent is waited out here, while pushes go on.
    await this.drain(async () => {});
    const acquired = await this.acquire();
    if (!acquired) return undefined;
    let { lease, renewedAt } = acquired;
    const renew = async (): Promise<void> => {
      const sent = performance.now();
      const doc = { ...lease.doc };
      const etag = await this.write(lease, doc);
      if (!etag) throw new Error(`GC lease was taken over while held by "${this.holder}"; deletions stopped`);
      lease = { etag, doc: { ...doc, n: lease.doc.n + 1 } };
      renewedAt = sent;
    };
    try {
      await this.drain(async () => {
        if (performance.now() - renewedAt > this.leaseMs / 3) await renew();
      });
      return await fn({
        epoch: lease.doc.epoch,
        beforeDelete: async () => {
          await renew();
          return AbortSignal.timeout(Math.max(1, Math.round(this.leaseMs / 2)));
        },
      });
    } finally {
      const released = await this.write(lease, { ...lease.doc, held: false }).catch(() => undefined);
      if (!released) this.log.warn("gc: the GC lease could not be released; it goes stale", { holder: this.holder, epoch: lease.doc.epoch });
    }
  }

  /** Takes the lease (epoch + 1): free, absent, or stale; undefined after `waitMs` of another holder. */
  private async acquire(): Promise<{ lease: Lease; renewedAt: number } | undefined> {
    const started = performance.now();
    let lease = await this.readLease();
    let seenAt = performance.now();
    for (let delay = POLL_MIN_MS; ; delay = Math.min(POLL_MAX_MS, delay * 2)) {
      const stale = lease.doc.held && performance.now() - seenAt >= this.leaseMs;
      if (!lease.doc.held || stale) {
        const sent = performance.now();
        const doc = { holder: this.holder, held: true, epoch: lease.doc.epoch + 1, n: lease.doc.n };
        const etag = await this.write(lease, doc);
        if (etag) {
          if (stale) this.log.warn("gc: a stale GC lease was taken over", { holder: lease.doc.holder, epoch: lease.doc.epoch });
          return { lease: { etag, doc: { ...doc, n: lease.doc.n + 1 } }, renewedAt: sent };
        }
      } else if (performance.now() - started > this.waitMs + this.leaseMs) {
        this.log.info("gc: another process holds the GC lease; deletions wait for the next pass", { holder: lease.doc.holder });
        return undefined;
      }
      await sleep(delay);
      const next = await this.readLease();
      if (next.etag !== lease.etag) seenAt = performance.now();
      lease = next;
    }
  }

  /** Waits until every intent listed now is gone; one seen for `intentMaxMs` is a crashed writer's and is deleted. */
  private async drain(keepAlive: () => Promise<void>): Promise<void> {
    const firstSeen = new Map<string, number>();
    for await (const { object } of this.s3.listAll({ prefix: this.keys.gcIntents })) if (object) firstSeen.set(object.key, performance.now());
    for (let delay = POLL_MIN_MS; firstSeen.size > 0; delay = Math.min(POLL_MAX_MS, delay * 2)) {
      for (const [key, at] of firstSeen) {
        if (performance.now() - at < this.intentMaxMs) continue;
        this.log.warn("gc: an intent older than the bound is ignored and removed (a writer that crashed)", { key });
        await this.s3.delete(key);
        firstSeen.delete(key);
      }
      if (firstSeen.size === 0) return;
      await sleep(delay);
      await keepAlive();
      const present = new Set<string>();
      for await (const { object } of this.s3.listAll({ prefix: this.keys.gcIntents })) if (object) present.add(object.key);
      for (const key of firstSeen.keys()) if (!present.has(key)) firstSeen.delete(key);
    }
  }

  /** Marks blob `digest` as linked anew at `epoch` (a collector that decided on it earlier keeps it). */
  async touch(digest: string, epoch: number, signal?: AbortSignal): Promise<void> {
    await this.s3.put(this.keys.gcTouch(digest), new Uint8Array(0), { metadata: { epoch: String(epoch) }, signal });
  }

  /** The epoch of blob `digest`'s touch mark: undefined without one, +Infinity when unreadable (it keeps the blob). */
  async touchedAt(digest: string): Promise<number | undefined> {
    const info = await this.s3.head(this.keys.gcTouch(digest));
    if (!info) return undefined;
    const epoch = Number(info.metadata.epoch);
    return Number.isFinite(epoch) ? epoch : Number.POSITIVE_INFINITY;
  }
}

/** True for a failed request that the server may still have applied (timed out, aborted, no answer). */
function unknownOutcome(e: unknown): boolean {
  const name = (e as Error | undefined)?.name;
  return name === "TimeoutError" || name === "AbortError" || isS3Error(e, "unavailable");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
