/**
 * Scheduled sync: copies the configured content of an upstream (repository globs, tag
 * filters, platforms), the pinned tags, and the warm set (tags local clients pulled within
 * `warm_window`) into the store, within the IO budget, with their referrers (signatures,
 * SBOMs). Blobs are copied before the manifests that need them, child manifests before
 * their index, and the tag is written last, so an interrupted sync (the upstream went
 * away) never leaves a tag pointing at an incomplete image; blobs already copied are kept
 * and the next run resumes from there.
 *
 * A tag the upstream answers 404 for is not a failure retried on every run: a tag of the
 * warm set (a client pulled it, the upstream has since dropped it) leaves the warm set; a
 * listed tag deleted between the listing and the fetch is skipped; a pinned tag that does not
 * exist is reported once (a configuration the operator has to fix). A 404 for a blob or a
 * child manifest of an existing tag stays a failure: the upstream's image is broken.
 */
import type { Logger } from "../log";
import { parseDigest } from "../oci/digest";
import type { SyncState } from "../meta/syncstate";
import { type ParsedManifest, parseManifest } from "../oci/manifest";
import type { ManifestContent, Registry } from "../registry/registry";
import type { TaskContext } from "../scheduler/task";
import type { BlobFetches } from "./blobfetch";
import { UpstreamError } from "./errors";
import type { FetchedManifest, Upstream } from "./upstream";
import type { UpstreamVerdict } from "../trust/upstream";

/** True for a cosign signature tag (`sha256-<hex>.sig`); not imported from trust/, which sync without [trust] must not load. */
function isCosignTag(tag: string): boolean {
  return /^(sha256-[0-9a-f]{64}|sha512-[0-9a-f]{128})\.sig$/.test(tag);
}

/**
 * `only_signed` (trust/upstream.ts): verifies an upstream image's signatures; the image is
 * mirrored only when `ok`, and a cosign tag-scheme signature it returns is mirrored with it.
 */
export type SignatureGate = (upstream: Upstream, repo: string, m: FetchedManifest, signal?: AbortSignal, local?: string) => Promise<UpstreamVerdict<FetchedManifest>>;

/**
 * True for a tag of the referrers tag schema (`sha256-<64 hex>`, `sha512-<128 hex>`): an
 * upstream without the referrers API keeps its referrer lists there. Sync copies referrers
 * with their subjects and berth serves its own referrers API, so such tags are not mirrored
 * as images.
 */
export function isReferrersTag(tag: string): boolean {
  return /^(sha256-[0-9a-f]{64}|sha512-[0-9a-f]{128})$/.test(tag);
}

/** Figures of one run. */
export interface MirrorReport {
  images: number;
  unchanged: number;
  failed: number;
  referrers: number;
  /** Tags the upstream no longer has (404): skipped, and dropped from the warm set. */
  gone: number;
  /** Images not mirrored because no signature verified (`only_signed`). */
  unsigned: number;
}

/** Where a tag to mirror came from. */
type Origin = "listed" | "pinned" | "warm";

function emptyReport(): MirrorReport {
  return { images: 0, unchanged: 0, failed: 0, referrers: 0, gone: 0, unsigned: 0 };
}

/** Copies content from upstreams into the registry. */
export class Mirror {
  constructor(
    private readonly registry: Registry,
    private readonly fetches: BlobFetches,
    private readonly state: SyncState,
    private readonly log: Logger,
    private readonly signatures?: SignatureGate,
  ) {}

  /** The whole configured content of `upstream`, then pins and the warm set. */
  async syncAll(upstream: Upstream, ctx: TaskContext): Promise<MirrorReport> {
    const report = emptyReport();
    const f = upstream.filters;
    const repos = f.allLiteral() ? f.literalRepos() : (await upstream.catalog({ signal: ctx.signal })).filter((r) => f.repo(r));
    for (const repo of repos) {
      ctx.signal.throwIfAborted();
      if (f.toLocal(repo) === undefined) continue;
      let tags: string[];
      try {
        // with only_signed, cosign's signature tags are not images: each comes with the image it signs
        tags = (await upstream.tags(repo, { signal: ctx.signal })).filter((t) => !isReferrersTag(t) && f.tag(t) && !(upstream.config.onlySigned && isCosignTag(t)));
      } catch (err) {
        if (err instanceof UpstreamError && err.fault === "not-found") continue;
        throw err;
      }
      for (const tag of tags) {
        ctx.progress(`${repo}:${tag}`);
        await this.tagSafely(upstream, repo, tag, ctx, report, "listed");
      }
    }
    await this.keepFresh(upstream, ctx, report);
    return report;
  }

  /** Pinned tags and the warm set only. */
  async keepFresh(upstream: Upstream, ctx: TaskContext, report: MirrorReport = emptyReport()): Promise<MirrorReport> {
    const wanted = new Map<string, [string, string, Origin]>();
    if (upstream.config.warmWindow > 0) {
      for (const w of this.state.warm(upstream.name, Date.now() - upstream.config.warmWindow * 1000)) {
        const name = upstream.filters.toUpstream(w.repo);
        if (name !== undefined) wanted.set(`${name}:${w.tag}`, [name, w.tag, "warm"]);
      }
    }
    for (const pin of upstream.pins) wanted.set(`${pin.repo}:${pin.tag}`, [pin.repo, pin.tag, "pinned"]);
    for (const [repo, tag, origin] of wanted.values()) {
      ctx.signal.throwIfAborted();
      ctx.progress(`fresh ${repo}:${tag}`);
      await this.tagSafely(upstream, repo, tag, ctx, report, origin);
    }
    return report;
  }

  private async tagSafely(upstream: Upstream, repo: string, tag: string, ctx: TaskContext, report: MirrorReport, origin: Origin): Promise<void> {
    let outcome: "gone" | undefined;
    try {
      outcome = await this.tag(upstream, repo, tag, ctx, report);
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      report.failed++;
      this.log.warn("sync of a tag failed; it will be retried on the next run", { upstream: upstream.name, repo, tag, error: (err as Error).message });
      if (err instanceof UpstreamError && err.fault === "down") throw err;
      return;
    }
    if (outcome !== "gone") return;
    report.gone++;
    const local = upstream.filters.toLocal(repo);
    if (origin === "pinned") {
      this.log.once(`pin-gone ${upstream.name} ${repo}:${tag}`, "a pinned tag does not exist upstream; check sync.registries pinned", { upstream: upstream.name, repo, tag });
    } else if (origin === "warm" && local !== undefined) {
      this.state.dropPull(local, tag);
      this.log.info("a tag of the warm set is gone upstream; it is no longer kept fresh", { upstream: upstream.name, repo: local, tag });
    } else {
      this.log.debug("a listed tag is gone upstream; skipped", { upstream: upstream.name, repo, tag });
    }
  }

  /**
   * Mirrors `repo:tag` (upstream names) unless the local tag already has the upstream digest.
   * Resolves "gone" when the upstream has no such tag (a 404 for the tag itself; a 404 for
   * one of its blobs or child manifests is an error: the upstream's image is broken).
   */
  async tag(upstream: Upstream, repo: string, tag: string, ctx: TaskContext, report: MirrorReport): Promise<"gone" | undefined> {
    const local = upstream.filters.toLocal(repo);
    if (local === undefined) return undefined;
    const opts = { background: true, signal: ctx.signal };
    const gone = (err: unknown) => err instanceof UpstreamError && err.fault === "not-found";
    let digest: string | undefined;
    try {
      digest = await upstream.headDigest(repo, tag, opts);
    } catch (err) {
      if (gone(err)) return "gone";
      throw err;
    }
    let current: ManifestContent | undefined;
    try {
      current = await this.registry.manifest(local, tag, null);
    } catch {
      current = undefined;
    }
    if (digest && current && digest === current.digest && this.complete(upstream, local, current)) {
      this.state.markChecked(upstream.name, local, tag, digest);
      report.unchanged++;
      return undefined;
    }
    let m: FetchedManifest;
    try {
      m = await upstream.manifest(repo, tag, opts);
    } catch (err) {
      if (gone(err)) return "gone";
      throw err;
    }
    let verdict: UpstreamVerdict<FetchedManifest> | undefined;
    if (upstream.config.onlySigned) {
      verdict = this.signatures ? await this.signatures(upstream, repo, m, ctx.signal) : { ok: false, detail: "[trust] is not enabled: there is no key to verify with" };
      if (!verdict.ok) {
        report.unsigned++;
        this.log.warn("not mirrored: no signature verifies (only_signed)", { upstream: upstream.name, repo: local, tag, digest: m.digest, reason: verdict.detail });
        return undefined;
      }
    }
    await this.copy(upstream, repo, local, m, ctx, report);
    await this.registry.putManifest(local, m.digest, m.bytes, m.mediaType, [tag], { partialIndex: this.partial(upstream, m) });
    if (verdict?.cosign) {
      // the signature goes with the image, under its cosign tag
      const sig = verdict.cosign.manifest;
      await this.copy(upstream, repo, local, sig, ctx, report);
      await this.registry.putManifest(local, sig.digest, sig.bytes, sig.mediaType, [verdict.cosign.tag], { partialIndex: true });
    }
    this.state.markChecked(upstream.name, local, tag, m.digest);
    report.images++;
    this.log.info("synced", { upstream: upstream.name, repo: local, tag, digest: m.digest });
    return undefined;
  }

  /**
   * True when manifest `m` of `repo` has everything it references there: an image's config
   * and layers; an index's child manifests of the platforms kept (one level).
   */
  private complete(upstream: Upstream, repo: string, m: ManifestContent): boolean {
    let parsed: ParsedManifest;
    try {
      parsed = parseManifest(m.bytes, m.mediaType, "stored");
    } catch {
      return false;
    }
    if (!parsed.blobs.every((b) => this.registry.hasBlob(repo, b.digest))) return false;
    return parsed.manifests.every((c) => !upstream.filters.platform(c.platform) || this.registry.hasBlob(repo, c.digest));
  }

  private partial(upstream: Upstream, m: FetchedManifest): boolean {
    return m.parsed.kind === "index" && m.parsed.manifests.some((d) => !upstream.filters.platform(d.platform));
  }

  /** Copies what `m` references (blobs; child manifests of kept platforms) and its referrers. */
  private async copy(upstream: Upstream, repo: string, local: string, m: FetchedManifest, ctx: TaskContext, report: MirrorReport): Promise<void> {
    const opts = { background: true, signal: ctx.signal };
    for (const child of m.parsed.manifests) {
      if (!upstream.filters.platform(child.platform)) continue;
      const cm = await upstream.manifest(repo, child.digest, opts);
      await this.copy(upstream, repo, local, cm, ctx, report);
      await this.registry.putManifest(local, cm.digest, cm.bytes, cm.mediaType, [], { partialIndex: this.partial(upstream, cm) });
    }
    for (const desc of m.parsed.blobs) {
      const digest = parseDigest(desc.digest)!;
      if (this.registry.hasBlob(local, digest.value)) continue;
      const f = this.fetches.fetch(local, digest, (signal) => upstream.blob(repo, digest, { background: true, signal }), {
        background: true,
        signal: ctx.signal,
        expectedSize: desc.size,
        upstream: upstream.name,
      });
      await f.done;
    }
    await this.referrers(upstream, repo, local, m, ctx, report);
  }

  /** Copies the manifests whose subject is `m` (and their blobs), after `m` itself is stored by the caller. */
  private async referrers(upstream: Upstream, repo: string, local: string, m: FetchedManifest, ctx: TaskContext, report: MirrorReport): Promise<void> {
    const subject = parseDigest(m.digest)!;
    let list: { digest: string }[];
    try {
      list = await upstream.referrers(repo, subject, { signal: ctx.signal });
    } catch (err) {
      this.log.debug("referrers not listed", { upstream: upstream.name, repo, digest: m.digest, error: (err as Error).message });
      return;
    }
    for (const r of list) {
      if (this.registry.hasBlob(local, r.digest)) continue; // stored already
      const rm = await upstream.manifest(repo, r.digest, { background: true, signal: ctx.signal });
      if (rm.parsed.subject?.digest !== m.digest) continue;
      // the subject must be stored before its referrer: store it now (idempotent)
      await this.registry.putManifest(local, m.digest, m.bytes, m.mediaType, [], { partialIndex: this.partial(upstream, m) });
      await this.copy(upstream, repo, local, rm, ctx, report);
      await this.registry.putManifest(local, rm.digest, rm.bytes, rm.mediaType, [], { partialIndex: true });
      report.referrers++;
    }
  }
}
