/**
 * The registry's use cases, one method per operation of the distribution spec, called by
 * the HTTP layer with plain values. Validates names, tags and digests and enforces the rules
 * that span storage and the derived index. Uploads live in uploads.ts, the translation of
 * storage faults into OCI errors in translate.ts.
 */
import type { Logger } from "../log";
import { type Digest, parseDigest, requireDigest } from "../oci/digest";
import { RegistryError } from "../oci/errors";
import { tagOf, withManifest, withoutDigest, withoutTag } from "../oci/layoutindex";
import { type Descriptor, type ParsedManifest, parseManifest, sniffManifestType } from "../oci/manifest";
import { acceptAdmits } from "../oci/mediatypes";
import { isTag, requireName, requireTag } from "../oci/names";
import type { Meta, ManifestRecord } from "../meta/meta";
import { hashBytes } from "../platform/hash";
import type { BlobBody, BlobInfo, ByteRange, IndexTransaction, RepoIndex } from "../storage/api";
import type { Storage } from "../storage/api";
import type { RegistryHooks } from "./hooks";
import { translate } from "./translate";
import { BlobUploads } from "./uploads";
import { StampMemo } from "./stamps";

export type { UploadStart } from "./uploads";

/** Options for {@link Registry}. */
export interface RegistryOptions {
  maxManifestBytes: number;
  /** Observers of pulls, pushes and blob touches (statistics, GC protection). */
  hooks?: RegistryHooks;
}

/** A manifest ready to be served. */
export interface ManifestContent {
  digest: string;
  mediaType: string;
  bytes: Uint8Array;
}

/** A stored blob ready to be served: `body` says how (a local file, a stream or a redirect). */
export interface BlobFile {
  digest: string;
  size: number;
  /** How to send the blob, or `range` of it (storage/api.ts, {@link BlobBody}). */
  body(range?: ByteRange): BlobBody;
}

/** One page of a list (tags, catalog). */
export interface Page {
  items: string[];
  /** The last item when more remain after this page. */
  next?: string;
}

/** Paginates a sorted list (distribution spec, "Listing Tags": `n` and `last`). */
export function paginate(sorted: readonly string[], n: number | undefined, last: string | undefined): Page {
  let start = 0;
  if (last !== undefined) {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]! <= last) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  if (n === undefined) return { items: sorted.slice(start) };
  const items = sorted.slice(start, start + n);
  const page: Page = { items };
  if (n > 0 && start + n < sorted.length) page.next = items[items.length - 1]!;
  return page;
}

/** The registry. */
export class Registry {
  /** index.json stamp recently used repositories' derived rows were last brought up to (bounded by bytes). */
  private readonly indexed = new StampMemo();
  private readonly uploads: BlobUploads;

  constructor(
    private readonly store: Storage,
    private readonly meta: Meta,
    private readonly options: RegistryOptions,
    private readonly log: Logger,
  ) {
    this.uploads = new BlobUploads(store, options.hooks);
  }

  // ---- start-up ----------------------------------------------------------------------

  /**
   * Brings the derived index in line with the layouts on disk (after recovery). `pace` is
   * awaited before each repository (the daemon runs this after listening, on the scheduler:
   * the IO budget, and turns of the event loop for requests); until it is done, every
   * operation that reads or writes a repository's rows reconciles that repository first.
   */
  async reconcileAll(repositories: string[], pace?: () => Promise<void>): Promise<number> {
    let rebuilt = 0;
    const present = new Set(repositories);
    // a repository the list lacks is dropped only if it is still gone: the list may be older
    // than a push that created it (the walk is paced, and requests are served meanwhile)
    for (const name of this.meta.repositories()) if (!present.has(name)) await this.reconcile(name);
    for (const name of repositories) {
      await pace?.();
      if (await this.reconcile(name)) rebuilt++;
    }
    return rebuilt;
  }

  // ---- blobs: distribution spec "Pulling blobs", "Deleting Blobs" ---------------------

  /** The blob's file; BLOB_UNKNOWN if the repository does not hold it. */
  async blob(repo: string, digestText: string): Promise<BlobFile> {
    requireName(repo);
    const digest = requireDigest(digestText);
    const info = this.store.blobs.stat(repo, digest) ?? (await this.store.blobs.lookup?.(repo, digest));
    if (!info) throw new RegistryError("BLOB_UNKNOWN", `${digest.value} is not in ${repo}`);
    this.options.hooks?.touched?.(repo, digest.value);
    const blobs = this.store.blobs;
    return { digest: digest.value, size: info.size, body: (range) => blobs.open(repo, digest, range) };
  }

  /**
   * True when `repo` holds `digest` (a blob or a manifest's bytes). For background checks
   * (sync): no touch mark is refreshed, and an invalid name or digest is simply false.
   */
  hasBlob(repo: string, digestText: string): boolean {
    const digest = parseDigest(digestText);
    return digest !== undefined && this.store.blobs.stat(repo, digest) !== undefined;
  }

  /** Deletes a blob from a repository. Manifests are deleted through the manifests endpoint. */
  async deleteBlob(repo: string, digestText: string): Promise<void> {
    requireName(repo);
    const digest = requireDigest(digestText);
    const index = await this.store.indexes.index(repo);
    if (index?.manifests.has(digest.value)) {
      throw new RegistryError("UNSUPPORTED", `${digest.value} is a manifest of ${repo}; delete it with DELETE /v2/${repo}/manifests/${digest.value}`);
    }
    if (!(await this.store.blobs.remove(repo, digest))) throw new RegistryError("BLOB_UNKNOWN", `${digest.value} is not in ${repo}`);
  }

  // ---- uploads: distribution spec "Pushing blobs" (registry/uploads.ts) ----------------

  /** POST /v2/<name>/blobs/uploads/ ({@link BlobUploads.start}). */
  startUpload(...args: Parameters<BlobUploads["start"]>): ReturnType<BlobUploads["start"]> {
    return this.uploads.start(...args);
  }

  /** PATCH on an upload location ({@link BlobUploads.append}). */
  appendUpload(...args: Parameters<BlobUploads["append"]>): ReturnType<BlobUploads["append"]> {
    return this.uploads.append(...args);
  }

  /** GET on an upload location ({@link BlobUploads.status}). */
  uploadStatus(...args: Parameters<BlobUploads["status"]>): ReturnType<BlobUploads["status"]> {
    return this.uploads.status(...args);
  }

  /** PUT on an upload location ({@link BlobUploads.finish}). */
  finishUpload(...args: Parameters<BlobUploads["finish"]>): ReturnType<BlobUploads["finish"]> {
    return this.uploads.finish(...args);
  }

  /** DELETE on an upload location ({@link BlobUploads.cancel}). */
  cancelUpload(...args: Parameters<BlobUploads["cancel"]>): ReturnType<BlobUploads["cancel"]> {
    return this.uploads.cancel(...args);
  }

  // ---- manifests: "Pulling manifests", "Pushing Manifests", "Deleting Manifests" --------

  /**
   * The manifest `reference` (tag or digest) of `repo`. With `accept`, a manifest whose
   * media type the client does not accept is MANIFEST_UNKNOWN, as distribution does.
   */
  async manifest(repo: string, reference: string, accept: string | null): Promise<ManifestContent> {
    requireName(repo);
    const index = await this.store.indexes.index(repo);
    if (!index) throw new RegistryError("NAME_UNKNOWN", `repository ${repo} is not known`);
    const content = await this.loadManifest(repo, index, reference);
    if (!acceptAdmits(accept, content.mediaType)) {
      throw new RegistryError("MANIFEST_UNKNOWN", `the manifest is ${content.mediaType}, which the Accept header does not list`, { status: 404 });
    }
    this.options.hooks?.pulled?.(repo, reference, content.digest);
    return content;
  }

  private async loadManifest(repo: string, index: RepoIndex, reference: string): Promise<ManifestContent> {
    let desc: Descriptor | undefined;
    let digest: Digest;
    if (isTag(reference)) {
      desc = index.tags.get(reference);
      if (!desc) throw new RegistryError("MANIFEST_UNKNOWN", `tag "${reference}" is not in ${repo}`);
      const parsed = parseDigest(desc.digest);
      if (!parsed) throw new RegistryError("MANIFEST_UNKNOWN", `tag "${reference}" of ${repo} has an unusable digest`);
      digest = parsed;
    } else {
      // neither a tag nor digest-shaped (no ":"): no manifest can be stored under it, so it is unknown, as in distribution
      if (!reference.includes(":")) throw new RegistryError("MANIFEST_UNKNOWN", `"${reference.slice(0, 140)}" is neither a tag nor a digest, so ${repo} has no such manifest`);
      digest = requireDigest(reference);
      desc = index.manifests.get(digest.value);
    }
    const cached = this.store.manifests.get(digest.value);
    if (cached && (desc || this.store.blobs.stat(repo, digest))) {
      return { digest: digest.value, mediaType: desc?.mediaType || cached.mediaType, bytes: cached.bytes };
    }
    const info = this.store.blobs.stat(repo, digest);
    if (!info || info.size > this.options.maxManifestBytes) throw new RegistryError("MANIFEST_UNKNOWN", `${digest.value} is not a manifest of ${repo}`);
    const bytes = await this.store.blobs.read(repo, digest);
    const mediaType = desc?.mediaType || sniffManifestType(bytes);
    if (!mediaType) throw new RegistryError("MANIFEST_UNKNOWN", `${digest.value} is not a manifest of ${repo}`);
    this.store.manifests.set(digest.value, { bytes, mediaType });
    return { digest: digest.value, mediaType, bytes };
  }

  /**
   * Stores a manifest pushed to `reference` (a tag, or the digest of the bytes) and tags it
   * with `reference` if it is a tag and with every `extraTags` entry. Every blob and child
   * manifest it references must already be in the repository; with `partialIndex` (used by
   * sync, which caches an index and only the platforms asked for) an index's child manifests
   * may be missing. `moved` lists the tags that pointed at another manifest before (with its
   * digest), for the audit trail.
   */
  async putManifest(
    repo: string,
    reference: string,
    bytes: Uint8Array,
    contentType: string,
    extraTags: readonly string[] = [],
    opts: { partialIndex?: boolean } = {},
  ): Promise<{ digest: string; subject?: string; tags: string[]; moved: { tag: string; from: string }[] }> {
    requireName(repo);
    const byDigest = !isTag(reference);
    const expected = byDigest ? requireDigest(reference) : undefined;
    const tags = byDigest ? [] : [reference];
    for (const tag of extraTags) if (!tags.includes(requireTag(tag))) tags.push(tag);
    // the UTF-8 decoder would drop it silently, but clients in Go cannot parse such bytes
    // (checked here, not in parseManifest, so a manifest stored earlier still reads)
    if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
      throw new RegistryError("MANIFEST_INVALID", "the manifest starts with a byte order mark (U+FEFF), which JSON does not allow");
    }
    const parsed = parseManifest(bytes, contentType);
    const algorithm = expected?.algorithm ?? "sha256";
    const digest = `${algorithm}:${hashBytes(algorithm, bytes)}`;
    if (expected && expected.value !== digest) {
      throw new RegistryError("DIGEST_INVALID", `the manifest's ${algorithm} digest is ${digest}, not ${expected.value}`);
    }
    // rows first brought up to index.json (a layout changed while berth was stopped and not
    // reconciled yet, or edited by another tool): the push then records its stamp over rows
    // that describe every manifest before it (one stat when they are current)
    await this.reconcile(repo);
    await this.checkReferences(repo, parsed, opts.partialIndex === true);

    await this.store.indexes.ensure(repo);
    const desc: Descriptor = { mediaType: parsed.mediaType, digest, size: bytes.byteLength };
    const record: ManifestRecord = { digest, mediaType: parsed.mediaType, size: bytes.byteLength, parsed };
    // The bytes are published outside the repository's lock (fsyncs of concurrent pushes
    // overlap); listing them is one step under the lock, which re-checks that the references
    // and the manifest's own blob are still there: a concurrent DELETE of the same manifest,
    // or a GC sweep (both take the lock), may have removed them in between; then the bytes
    // are published again (not admitted again: admission may evict, which takes locks).
    const d = parseDigest(digest)!;
    let moved: { tag: string; from: string }[] = [];
    try {
      await this.store.uploads.putSmall(repo, d, bytes);
      // an update: concurrent pushes into the repository share one durable write of index.json
      await this.store.indexes.update(repo, async (before) => {
        await this.checkReferences(repo, parsed, opts.partialIndex === true);
        if (!this.store.blobs.stat(repo, d)) await this.store.uploads.putSmall(repo, d, bytes, false);
        // tags that pointed at another manifest (the audit trail's tag moves)
        moved = before.flatMap((e) => {
          const tag = tagOf(e);
          return tag !== undefined && e.digest !== digest && tags.includes(tag) ? [{ tag, from: e.digest }] : [];
        });
        return withManifest(before, desc, tags);
      }, (index) => {
        this.meta.addManifest(repo, index.stamp, record);
        this.indexed.set(repo, index.stamp);
      });
    } catch (err) {
      translate(err);
    }
    this.store.manifests.set(digest, { bytes, mediaType: parsed.mediaType });
    this.options.hooks?.pushed?.(repo, digest, tags);
    const result: { digest: string; subject?: string; tags: string[]; moved: { tag: string; from: string }[] } = { digest, tags, moved };
    if (parsed.subject) result.subject = parsed.subject.digest;
    return result;
  }

  /**
   * Every blob must be in the repository with the size the manifest says, and every child of
   * an index must be a manifest the repository holds (the derived index knows it, brought up
   * to date with index.json first): a layer's digest named as a child is refused, not
   * listed. With `partialIndex` children are not checked (sync caches some platforms only).
   */
  private async checkReferences(repo: string, parsed: ParsedManifest, partialIndex = false): Promise<void> {
    const stat = (digest: string) => this.blobInRepo(repo, parseDigest(digest)!);
    for (const blob of parsed.blobs) {
      const info = await stat(blob.digest);
      if (!info) throw new RegistryError("MANIFEST_BLOB_UNKNOWN", `blob ${blob.digest} is not in ${repo}; push it before the manifest`);
      if (info.size !== blob.size) {
        throw new RegistryError("MANIFEST_INVALID", `blob ${blob.digest} has ${info.size} bytes, not the ${blob.size} the manifest says`);
      }
    }
    if (partialIndex) return;
    let reconciled = false;
    for (const child of parsed.manifests) {
      if (!(await stat(child.digest))) {
        throw new RegistryError("MANIFEST_BLOB_UNKNOWN", `manifest ${child.digest} is not in ${repo}; push it before the index`);
      }
      if (this.meta.hasManifest(repo, child.digest)) continue;
      // A layout dropped into the root or edited by another tool: bring the derived index up to date once.
      if (!reconciled) {
        reconciled = true;
        await this.reconcile(repo);
        if (this.meta.hasManifest(repo, child.digest)) continue;
      }
      throw new RegistryError("MANIFEST_BLOB_UNKNOWN", `manifest ${child.digest} is not in ${repo}: a blob with that digest is, but not as a manifest; push it as a manifest before the index`);
    }
  }

  /** The blob as `repo` holds it: from memory, else the backend itself (S3: pushed through another berth on the bucket). */
  private async blobInRepo(repo: string, digest: Digest): Promise<BlobInfo | undefined> {
    return this.store.blobs.stat(repo, digest) ?? (await this.store.blobs.lookup?.(repo, digest));
  }

  /**
   * DELETE by tag removes the tag only; DELETE by digest removes the manifest and every tag
   * pointing at it, unless an index in the repository lists it.
   */
  async deleteManifest(repo: string, reference: string): Promise<void> {
    requireName(repo);
    const index = await this.store.indexes.index(repo);
    if (!index) throw new RegistryError("NAME_UNKNOWN", `repository ${repo} is not known`);
    if (isTag(reference)) {
      await this.reconcile(repo); // the rows describe index.json before the stamp moves (see putManifest)
      await this.store.indexes.update(repo, (entries) => {
        const next = withoutTag(entries, reference);
        if (!next) throw new RegistryError("MANIFEST_UNKNOWN", `tag "${reference}" is not in ${repo}`);
        return next;
      }, (after) => {
        this.meta.touchRepo(repo, after.stamp);
        this.indexed.set(repo, after.stamp);
      });
      this.options.hooks?.deleted?.(repo, reference);
      return;
    }
    const digest = requireDigest(reference);
    await this.reconcile(repo);
    let tags: string[] = [];
    let blobs: string[] = [];
    await this.store.indexes.transaction(repo, async (tx) => {
      const entries = (await tx.current()).doc.manifests;
      tags = entries.flatMap((e) => (e.digest === digest.value ? (tagOf(e) ?? []) : []));
      const listed = entries.some((e) => e.digest === digest.value);
      if (!listed && !this.store.blobs.stat(repo, digest)) throw new RegistryError("MANIFEST_UNKNOWN", `${digest.value} is not in ${repo}`);
      const present = new Set(entries.map((e) => e.digest));
      const parents = this.meta.parentsOf(repo, digest.value).filter((p) => present.has(p) && p !== digest.value);
      if (parents.length > 0) {
        throw new RegistryError("DENIED", `${digest.value} is listed by index ${parents[0]}; delete the index first`, { status: 409 });
      }
      blobs = await this.blobsOf(repo, digest, entries.find((e) => e.digest === digest.value)?.mediaType);
      const after = await tx.write(withoutDigest(entries, digest.value));
      this.meta.removeManifest(repo, after.stamp, digest.value);
      this.indexed.set(repo, after.stamp);
      await this.store.blobs.remove(repo, digest);
    });
    // the tags that pointed at it went with it
    this.options.hooks?.deleted?.(repo, digest.value, blobs);
    for (const ref of tags) this.options.hooks?.deleted?.(repo, ref);
  }

  /**
   * Deletes tags and listed manifests a lifecycle policy decided on, in one index.json write;
   * the caller holds the repository's lock (`tx`) and decided on the graph read under it. A
   * tag goes only if it still points at the digest given; a manifest only if no tag remains
   * on it. Manifest files are removed; the blobs they reference are left to GC (`blobs` go
   * to the deleted hook). Returns what was deleted.
   */
  async removeLocked(
    repo: string,
    tx: IndexTransaction,
    tags: readonly { tag: string; digest: string }[],
    manifests: readonly { digest: string; blobs: readonly string[] }[],
  ): Promise<{ tags: string[]; manifests: string[] }> {
    const current = await tx.current();
    let entries = current.doc.manifests;
    const goneTags: string[] = [];
    for (const t of tags) {
      if (!entries.some((e) => tagOf(e) === t.tag && e.digest === t.digest)) continue;
      entries = withoutTag(entries, t.tag) ?? entries;
      goneTags.push(t.tag);
    }
    const gone = manifests.filter((m) => !entries.some((e) => e.digest === m.digest && tagOf(e) !== undefined) && parseDigest(m.digest));
    const goneSet = new Set(gone.map((m) => m.digest));
    entries = entries.filter((e) => !goneSet.has(e.digest));
    if (goneTags.length === 0 && gone.length === 0) return { tags: [], manifests: [] };
    const fresh = this.meta.stampOf(repo) === current.stamp;
    const after = await tx.write(entries);
    if (fresh) {
      this.meta.removeManifests(repo, after.stamp, [...goneSet]);
      this.indexed.set(repo, after.stamp);
    } else {
      this.indexed.delete(repo); // rows were stale already: the next reconcile rebuilds them from index.json
    }
    for (const m of gone) await this.store.blobs.remove(repo, parseDigest(m.digest)!);
    for (const tag of goneTags) this.options.hooks?.deleted?.(repo, tag);
    for (const m of gone) this.options.hooks?.deleted?.(repo, m.digest, m.blobs);
    return { tags: goneTags, manifests: [...goneSet] };
  }

  // ---- content discovery: "Listing Tags", "Listing Referrers", catalog -----------------

  /** A page of the repository's tags in lexical order. */
  async tags(repo: string, n: number | undefined, last: string | undefined): Promise<Page> {
    requireName(repo);
    const index = await this.store.indexes.index(repo);
    if (!index) throw new RegistryError("NAME_UNKNOWN", `repository ${repo} is not known`);
    return paginate(index.sortedTags(), n, last);
  }

  /**
   * A page of the repository names in lexical order; with `visible`, only the names it
   * accepts (the caller's pull right), filtered before paging so `n` and `last` stay exact.
   * The root is rescanned on every call (directory reads only; blob directories are not
   * entered), so a layout dropped into the root is listed at once; the derived index is
   * written only for what changed.
   */
  async catalog(n: number | undefined, last: string | undefined, visible?: (repo: string) => boolean): Promise<Page> {
    const repositories = await this.store.repositories();
    await this.reconcileAll(repositories);
    return paginate(visible ? repositories.filter(visible) : repositories, n, last);
  }

  /** Manifests of `repo` whose subject is `digest`, optionally only those of `artifactType`. */
  async referrers(repo: string, digestText: string, artifactType?: string): Promise<Descriptor[]> {
    requireName(repo);
    const digest = requireDigest(digestText);
    if (!(await this.reconcile(repo)) && !(await this.store.indexes.exists(repo))) return [];
    const all = this.meta.referrers(repo, digest.value);
    return artifactType === undefined ? all : all.filter((d) => d.artifactType === artifactType);
  }

  /** Digests of the blobs manifest `digest` of `repo` references; empty when it cannot be read. */
  private async blobsOf(repo: string, digest: Digest, mediaType: string | undefined): Promise<string[]> {
    const info = this.store.blobs.stat(repo, digest);
    if (!info || info.size > this.options.maxManifestBytes) return [];
    try {
      const bytes = await this.store.blobs.read(repo, digest);
      return parseManifest(bytes, mediaType || sniffManifestType(bytes) || "", "stored").blobs.map((b) => b.digest);
    } catch {
      return [];
    }
  }

  /**
   * Re-derives the repository's rows in the index if its index.json changed since they
   * were built. Returns true if it rebuilt them.
   */
  private async reconcile(repo: string): Promise<boolean> {
    // a backend that can tell the stamp without reading the index (local: one stat) spares
    // the read (and the cache entry) when the rows are current: a start-up or catalog walk
    // over every repository then reads no index.json that did not change
    const quick = await this.store.indexes.stamp?.(repo);
    if (quick !== undefined && (this.indexed.get(repo) === quick || this.meta.stampOf(repo) === quick)) {
      this.indexed.set(repo, quick);
      return false;
    }
    const index = await this.store.indexes.index(repo);
    if (!index) {
      if (this.meta.stampOf(repo) !== undefined) this.meta.dropRepo(repo);
      this.indexed.delete(repo);
      return false;
    }
    if (this.indexed.get(repo) === index.stamp) return false;
    if (this.meta.stampOf(repo) === index.stamp) {
      this.indexed.set(repo, index.stamp);
      return false;
    }
    const records: ManifestRecord[] = [];
    const seen = new Set<string>();
    const visit = async (desc: Descriptor): Promise<void> => {
      if (seen.has(desc.digest)) return;
      seen.add(desc.digest);
      const digest = parseDigest(desc.digest);
      // not only from memory: an index written elsewhere (S3: another berth on the bucket, a
      // tool) lists manifests whose links this process has not listed yet
      const info = digest && (await this.blobInRepo(repo, digest));
      if (!digest || !info || info.size > this.options.maxManifestBytes) return;
      try {
        const bytes = await this.store.blobs.read(repo, digest);
        const parsed = parseManifest(bytes, desc.mediaType, "stored");
        records.push({ digest: desc.digest, mediaType: parsed.mediaType, size: info.size, parsed });
        for (const child of parsed.manifests) await visit(child);
      } catch (err) {
        this.log.debug("manifest not indexed", { repo, digest: desc.digest, error: (err as Error).message });
      }
    };
    for (const desc of index.doc.manifests) await visit(desc);
    this.meta.replaceRepo(repo, index.stamp, records);
    this.indexed.set(repo, index.stamp);
    this.log.info("repository indexed", { repo, manifests: records.length });
    return true;
  }
}
