/**
 * Pull-through: a decorator over the registry that, for repositories an upstream serves,
 * fetches what is missing locally while the client waits (distribution spec "Pulling
 * manifests" / "Pulling blobs", answered from the upstream).
 *
 * - Manifests are fetched whole (they are small), verified, and stored exactly as served.
 *   An index is stored at once (its child manifests may stay missing: only the platform a
 *   client asks for is fetched, when it asks). An image manifest is served at once from
 *   memory and stored as soon as its config and layers are in, which a background
 *   completion fetches (sharing fetches with the client's own blob requests); until then
 *   the tag does not point at an incomplete image.
 * - Blobs stream to the client while they are stored ({@link BlobFetches}); concurrent
 *   requests share one upstream fetch.
 * - Negative answers are remembered briefly (`Upstream.misses`, see negative.ts): a tag or
 *   blob the upstream does not have is asked for once per `negative_cache_ttl`, however
 *   many clients retry it; a blob whose upstream bytes failed their digest gets 502 at once
 *   for that long. Concurrent identical misses share one upstream request.
 * - A blob of at most {@link VERIFY_BEFORE_SEND} bytes is verified before the response
 *   starts, so bad upstream bytes give its client a 502; a larger one streams while it is
 *   fetched, and if its digest then fails the connection is broken off (never a clean end).
 * - Offline first: local content is served without asking the upstream, except that a tag
 *   due for a re-check (at most once per `tag_check_interval`, remembered across restarts)
 *   is checked with a short wait ({@link RECHECK_WAIT_MS}); if the upstream is slow or
 *   down the cached tag is served and the check finishes in the background.
 */
import type { Logger } from "../log";
import { type ErrorCode, RegistryError } from "../oci/errors";
import { type Digest, parseDigest, requireDigest } from "../oci/digest";
import { acceptAdmits, hasFilesystemLayer } from "../oci/mediatypes";
import { isTag, requireName } from "../oci/names";
import { type BlobStream, type V2Registry, delegate } from "../registry/api";
import type { SyncState } from "../meta/syncstate";
import type { BlobFile, ManifestContent, Registry } from "../registry/registry";
import { translate } from "../registry/translate";
import { StorageError } from "../storage/errors";
import type { BlobFetches } from "./blobfetch";
import { UpstreamError } from "./errors";
import type { FetchedManifest, Upstream } from "./upstream";
import { setTimeout as sleep } from "node:timers/promises";
import type { SignatureGate } from "./mirror";

/** How long a pull of a cached tag waits for its upstream re-check before serving the cached one. */
export const RECHECK_WAIT_MS = 500;

/**
 * Blobs up to this size (as announced) are received whole and verified before their client
 * gets a status: the cost is the time to receive 1 MiB before the first byte; configs and
 * most small layers fall under it.
 */
export const VERIFY_BEFORE_SEND = 1024 * 1024;

const MISSES = new Set(["MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"]);

function isMiss(err: unknown): boolean {
  return err instanceof RegistryError && MISSES.has(err.code);
}

/** Pull-through over one registry and its upstreams. */
export class PullThrough {
  /** Manifests served but not yet stored (their blobs are still coming), by `repo@digest` and `repo:tag`. */
  private readonly pending = new Map<string, FetchedManifest>();
  /** Images being completed (their blobs fetched, then the manifest stored). */
  private readonly completions = new Set<Promise<void>>();
  private readonly manifestFlights = new Map<string, Promise<FetchedManifest>>();
  private readonly rechecks = new Map<string, Promise<ManifestContent | undefined>>();
  /** Upstream HEADs of blobs in flight, shared by identical requests. */
  private readonly heads = new Map<string, Promise<Response>>();
  /**
   * Pulls of tags not yet written to the state table, one per tag (the latest): bounded by
   * the tags served, however many requests arrive between two flushes.
   */
  private pulls = new Map<string, { repo: string; tag: string; registry: string; at: number }>();

  constructor(
    private readonly registry: Registry,
    private readonly upstreams: readonly Upstream[],
    private readonly fetches: BlobFetches,
    private readonly state: SyncState,
    private readonly log: Logger,
    private readonly signatures?: SignatureGate,
  ) {}

  /** The upstream serving local repository `repo` on demand, and its upstream name. */
  route(repo: string): { upstream: Upstream; name: string } | undefined {
    for (const upstream of this.upstreams) {
      if (!upstream.config.onDemand) continue;
      const name = upstream.filters.toUpstream(repo);
      if (name !== undefined && upstream.filters.repo(name)) return { upstream, name };
    }
    return undefined;
  }

  /** The decorated registry the /v2 handler uses. */
  decorate(): V2Registry {
    return delegate(this.registry, {
      blob: (repo, digest, head) => this.blob(repo, digest, head === true),
      manifest: (repo, reference, accept) => this.manifest(repo, reference, accept),
    });
  }

  /** Resolves once no image is being completed (each stored, or given up); for a clean stop. */
  async idle(): Promise<void> {
    while (this.completions.size > 0) await Promise.allSettled([...this.completions]);
  }

  /** Takes the pulls recorded since the last call (the warm set is written in batches). */
  takePulls(): { repo: string; tag: string; registry: string; at: number }[] {
    const p = [...this.pulls.values()];
    this.pulls.clear();
    return p;
  }

  /** Manifest GET/HEAD: local first, the upstream on a miss or a due tag re-check. */
  async manifest(repo: string, reference: string, accept: string | null): Promise<ManifestContent> {
    const route = this.route(repo);
    if (!route) return this.registry.manifest(repo, reference, accept);
    requireName(repo);
    const tag = isTag(reference);
    // only a tag that was served joins the warm set: a miss must not be re-fetched on every run
    const pulled = <T>(served: T): T => {
      if (tag) this.pulls.set(`${route.upstream.name}\n${repo}\n${reference}`, { repo, tag: reference, registry: route.upstream.name, at: Date.now() });
      return served;
    };
    let local: ManifestContent | undefined;
    try {
      local = await this.registry.manifest(repo, reference, accept);
    } catch (err) {
      if (!isMiss(err)) throw err;
    }
    if (local) {
      if (!tag || !this.due(route.upstream, repo, reference)) return pulled(local);
      const check = this.recheck(route.upstream, route.name, repo, reference, local.digest, accept);
      const winner = await Promise.race([check, sleep(RECHECK_WAIT_MS).then(() => undefined)]);
      return pulled(winner ?? local);
    }
    const pending = this.pending.get(`${repo}@${reference}`) ?? this.pending.get(`${repo}:${reference}`);
    if (pending) return pulled(this.admit(pending, accept));
    if (tag && !route.upstream.filters.tag(reference)) {
      throw new RegistryError("MANIFEST_UNKNOWN", `tag "${reference}" is not in ${repo}, and sync ${route.upstream.name} does not mirror it`);
    }
    const key = `m:${repo}@${reference}`;
    const known = route.upstream.misses.get(key);
    if (known) throw remembered(known, "MANIFEST_UNKNOWN", route.upstream);
    try {
      return pulled(this.admit(await this.fetchManifest(route.upstream, route.name, repo, reference, false), accept));
    } catch (err) {
      route.upstream.misses.remember(key, err);
      // once per miss and negative-cache TTL: the answer is remembered above
      if (err instanceof UpstreamError && err.fault !== "not-found" && err.fault !== "down") {
        this.log.warn("pull-through could not fetch a manifest; nothing was stored", { repo, reference, upstream: route.upstream.name, error: err.message });
      }
      if (err instanceof UpstreamError) throw err.toRegistryError("MANIFEST_UNKNOWN");
      throw err;
    }
  }

  /** Blob GET/HEAD: the local file, or the upstream's bytes as they are stored. */
  async blob(repo: string, digestText: string, head: boolean): Promise<BlobFile | BlobStream> {
    try {
      return await this.registry.blob(repo, digestText);
    } catch (err) {
      const route = isMiss(err) ? this.route(repo) : undefined;
      if (!route) throw err;
      const digest = requireDigest(digestText);
      const upstream = route.upstream;
      const key = `b:${repo}@${digest.value}`;
      try {
        const inflight = this.fetches.get(repo, digest);
        if (!inflight) {
          const known = upstream.misses.get(key);
          if (known) throw remembered(known, "BLOB_UNKNOWN", upstream);
        }
        if (head && !inflight) {
          const res = await this.head(upstream, route.name, repo, digest, key);
          const length = res.headers.get("content-length");
          return { digest: digest.value, size: length ? Number(length) : undefined, open: () => new ReadableStream({ start: (c) => c.close() }) };
        }
        const f = inflight ?? this.fetches.fetch(repo, digest, (signal) => upstream.blob(route.name, digest, { signal }), {
          background: false,
          upstream: upstream.name,
          onError: (err) => upstream.misses.remember(key, err),
        });
        await f.started;
        if (f.state === "failed") throw f.error;
        if (f.state === "done") return await this.registry.blob(repo, digestText);
        // a small blob is verified before the status goes out: bad bytes become a 502, not a broken 200
        if (f.size !== undefined && f.size <= VERIFY_BEFORE_SEND) {
          await f.whenVerified();
        }
        if (head && f.size === undefined) {
          // the upstream streams this blob without announcing its size; a HEAD must still say it
          // (with no size the HTTP server would answer Content-Length: 0): ask the upstream
          const res = await this.head(upstream, route.name, repo, digest, key);
          const length = res.headers.get("content-length");
          return { digest: digest.value, size: length ? Number(length) : undefined, open: () => new ReadableStream({ start: (c) => c.close() }) };
        }
        return { digest: digest.value, size: f.size, open: () => f.reader() };
      } catch (e) {
        if (e instanceof UpstreamError) throw e.toRegistryError("BLOB_UNKNOWN");
        if (e instanceof StorageError) translate(e); // refused by quota or min_free, as a push is
        throw e;
      }
    }
  }

  /**
   * Fetches manifest `reference` of upstream repository `name` into local `repo` (shared by
   * concurrent callers). Indexes are stored at once; an image manifest is stored when its
   * blobs are in (by the completion this starts, or at once when they already are).
   */
  fetchManifest(upstream: Upstream, name: string, repo: string, reference: string, background: boolean, signal?: AbortSignal): Promise<FetchedManifest> {
    const key = `${repo}@${reference}`;
    const flight = this.manifestFlights.get(key);
    if (flight) return flight;
    const p = (async () => {
      const m = await upstream.manifest(name, reference, { background, signal });
      if (upstream.config.onlySigned) await this.requireSigned(upstream, name, repo, reference, m, signal);
      const tags = isTag(reference) ? [reference] : [];
      if (m.parsed.kind === "index") {
        await this.registry.putManifest(repo, m.digest, m.bytes, m.mediaType, tags, { partialIndex: true });
      } else {
        this.pending.set(`${repo}@${m.digest}`, m);
        for (const t of tags) this.pending.set(`${repo}:${t}`, m);
        const completion = this.complete(upstream, name, repo, m, tags, background, signal);
        this.completions.add(completion);
        void completion.then(
          () => this.completions.delete(completion),
          () => this.completions.delete(completion),
        );
        if (background) await completion;
        else completion.catch(() => {});
      }
      if (isTag(reference)) this.state.markChecked(upstream.name, repo, reference, m.digest);
      return m;
    })().finally(() => this.manifestFlights.delete(key));
    this.manifestFlights.set(key, p);
    return p;
  }

  /**
   * `only_signed`: refuses (DENIED) an upstream manifest none of whose signatures verifies,
   * and stores the cosign signature of one that does. Signatures and other referrers (a
   * cosign tag, a manifest with a subject) pass: clients fetch them to verify.
   */
  private async requireSigned(upstream: Upstream, name: string, repo: string, reference: string, m: FetchedManifest, signal?: AbortSignal): Promise<void> {
    // a runnable image (a filesystem layer) is checked whatever its subject or tag claim:
    // runtimes ignore both and run the layers
    if ((m.parsed.subject || /^(sha256|sha512)-[0-9a-f]+\.sig$/.test(reference)) && !runnable(m.bytes)) return;
    const verdict = this.signatures ? await this.signatures(upstream, name, m, signal, repo) : { ok: false, detail: "[trust] is not enabled: there is no key to verify with" };
    if (!verdict.ok) {
      this.log.warn("pull-through refused an image: no signature verifies (only_signed)", { repo, reference, digest: m.digest, upstream: upstream.name, reason: verdict.detail });
      throw new RegistryError("DENIED", `${repo}@${m.digest} is not fetched from ${upstream.name}: it mirrors only signed images (only_signed) and ${verdict.detail}`);
    }
    if (verdict.cosign) await this.complete(upstream, name, repo, verdict.cosign.manifest, [verdict.cosign.tag], true, signal);
  }

  /** Fetches the blobs of image manifest `m` and stores it (with `tags`) once they are in. */
  private async complete(upstream: Upstream, name: string, repo: string, m: FetchedManifest, tags: string[], background: boolean, signal?: AbortSignal): Promise<void> {
    try {
      for (const desc of m.parsed.blobs) {
        const digest = parseDigest(desc.digest)!;
        if (this.hasBlob(repo, digest.value)) continue;
        const f = this.fetches.fetch(repo, digest, (s) => upstream.blob(name, digest, { signal: s, background }), {
          background,
          signal,
          expectedSize: desc.size,
          upstream: upstream.name,
          onError: (err) => upstream.misses.remember(`b:${repo}@${digest.value}`, err),
        });
        await f.done;
      }
      await this.registry.putManifest(repo, m.digest, m.bytes, m.mediaType, tags);
    } catch (err) {
      this.log.warn("pull-through could not complete an image; it is not stored", { repo, digest: m.digest, upstream: upstream.name, error: (err as Error).message });
      throw err;
    } finally {
      this.pending.delete(`${repo}@${m.digest}`);
      for (const t of tags) if (this.pending.get(`${repo}:${t}`) === m) this.pending.delete(`${repo}:${t}`);
    }
  }

  /** HEAD of an upstream blob, shared by identical requests; a negative answer is remembered. */
  private head(upstream: Upstream, name: string, repo: string, digest: Digest, key: string): Promise<Response> {
    let p = this.heads.get(key);
    if (!p) {
      p = upstream.blob(name, digest, { method: "HEAD" }).then(
        async (res) => {
          await res.body?.cancel();
          return res;
        },
        (err) => {
          upstream.misses.remember(key, err);
          throw err;
        },
      ).finally(() => this.heads.delete(key));
      this.heads.set(key, p);
    }
    return p;
  }

  private hasBlob(repo: string, digest: string): boolean {
    return this.registry.hasBlob(repo, digest);
  }

  private due(upstream: Upstream, repo: string, tag: string): boolean {
    if (upstream.client.breaker.state === "down") return false;
    return Date.now() - this.state.lastCheck(repo, tag).at >= upstream.config.tagCheckInterval * 1000;
  }

  /** Re-checks a cached tag upstream; resolves with the new content if it moved, else undefined. */
  private recheck(upstream: Upstream, name: string, repo: string, tag: string, localDigest: string, accept: string | null): Promise<ManifestContent | undefined> {
    const key = `${repo}:${tag}`;
    let p = this.rechecks.get(key);
    if (!p) {
      p = (async () => {
        try {
          const digest = await upstream.headDigest(name, tag);
          if (digest === localDigest) {
            this.state.markChecked(upstream.name, repo, tag, localDigest);
            return undefined;
          }
          const m = await this.fetchManifest(upstream, name, repo, tag, false);
          this.log.info("tag moved upstream", { repo, tag, from: localDigest, to: m.digest, upstream: upstream.name });
          return acceptAdmits(accept, m.mediaType) ? { digest: m.digest, mediaType: m.mediaType, bytes: m.bytes } : undefined;
        } catch (err) {
          this.log.debug("tag re-check failed; serving the cached tag", { repo, tag, error: (err as Error).message });
          return undefined;
        }
      })().finally(() => this.rechecks.delete(key));
      this.rechecks.set(key, p);
    }
    return p;
  }

  private admit(m: FetchedManifest, accept: string | null): ManifestContent {
    if (!acceptAdmits(accept, m.mediaType)) {
      throw new RegistryError("MANIFEST_UNKNOWN", `the manifest is ${m.mediaType}, which the Accept header does not list`, { status: 404 });
    }
    return { digest: m.digest, mediaType: m.mediaType, bytes: m.bytes };
  }
}

/** The client error for an answer the negative cache remembered, saying that it was remembered. */
function remembered(err: UpstreamError, notFound: ErrorCode, upstream: Upstream): RegistryError {
  const e = err.toRegistryError(notFound);
  return new RegistryError(e.code, `${e.detail} (a recent answer, asked again upstream after at most ${upstream.config.negativeCacheTtl} s)`, { status: e.status });
}

/** True for manifest bytes that list a layer a runtime would run (an undecodable manifest counts as runnable). */
function runnable(bytes: Uint8Array): boolean {
  try {
    const doc = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return typeof doc !== "object" || doc === null || hasFilesystemLayer(doc as { layers?: unknown });
  } catch {
    return true;
  }
}
