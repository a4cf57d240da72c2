/**
 * `berth bundle export`: selected repositories, tags and one platform, with their cosign
 * tags (`sha256-<hex>.sig|.att|.sbom`) and their referrers (OCI 1.1 referrers API: SBOMs,
 * notation signatures, attestations), from a running registry over HTTP into one
 * oci-archive file (see format.ts). Online rather than offline on a root: it works against
 * any OCI registry the operator can pull from (a berth, zot, distribution), through the same
 * credentials and access rules as a pull, so nothing the caller may not pull can leak into a
 * bundle.
 *
 * Memory: manifests (small, capped) are held while the selection is resolved; blob bytes
 * stream from the response into the tar one chunk at a time, hashed on the way, and a blob
 * that does not hash to its digest fails the export. The archive is written to FILE.partial
 * and renamed into place when complete, so FILE is never a torn bundle.
 *
 * Incremental: given the target's inventory (`berth bundle have`), blobs a target
 * repository already holds are left out; manifests (small) are always carried, so tags can
 * be set on the target from the bundle alone.
 */
import { rename, rm } from "node:fs/promises";
import { ClientError, EXIT } from "../client/errors";
import type { RegistryClient } from "../client/http";
import type { ProgressBar } from "../client/output";
import { catalog, parseRef, type Ref, tags as listTags } from "../client/registry";
import { createHasher } from "../platform/hash";
import type { Algorithm } from "../oci/digest";
import { OCI_INDEX, OCI_LAYOUT_VERSION } from "../oci/mediatypes";
import { cosignTags, declaredType, type Have, type IndexEntry, parseDoc, REF_NAME, refName, REPO_ANNOTATION } from "./format";
import { blobStream, getManifestRaw, referrers } from "./remote";
import { TarWriter } from "./tar";

/** What to export. */
export interface ExportOptions {
  /** REPO (every tag), REPO:TAG or REPO@DIGEST; empty with `all`. */
  refs: string[];
  /** Every repository of the catalog the caller may see. */
  all?: boolean;
  /** "os/arch[/variant]": an index is narrowed to that platform's manifest. */
  platform?: string;
  /** The target's inventory: blobs its repositories hold are left out. */
  have?: Have;
  /** Leave out cosign tags and referrers. */
  noSignatures?: boolean;
  progress?: ProgressBar;
}

/** What an export wrote. */
export interface ExportReport {
  file: string;
  entries: { repo: string; tag?: string; digest: string }[];
  manifests: number;
  blobs: number;
  bytes: number;
  /** Blobs left out because the target holds them (incremental). */
  skippedBlobs: number;
  skippedBytes: number;
}

interface Manifest {
  bytes: Uint8Array;
  mediaType: string;
}

const MAX_REFERRER_DEPTH = 4;

/** Resolves the selection, then writes the bundle to `file`. */
export async function exportBundle(client: RegistryClient, file: string, options: ExportOptions): Promise<ExportReport> {
  const manifests = new Map<string, Manifest>();
  /** digest -> size and the repositories it is needed for (the first one is read from) */
  const blobs = new Map<string, { size: number; repos: Set<string> }>();
  const entries: IndexEntry[] = [];
  const seenEntry = new Set<string>();
  const wantsPlatform = options.platform?.split("/");

  const addEntry = (repo: string, digest: string, mediaType: string, size: number, tag?: string) => {
    const key = `${repo}\n${tag ?? ""}\n${digest}`;
    if (seenEntry.has(key)) return;
    seenEntry.add(key);
    const annotations: Record<string, string> = { [REPO_ANNOTATION]: repo };
    if (tag !== undefined) annotations[REF_NAME] = refName(repo, tag);
    entries.push({ mediaType, digest, size, annotations });
  };

  /** Fetches a manifest and everything under it into `manifests` and `blobs`. */
  const walk = async (repo: string, digest: string, depth = 0): Promise<Manifest> => {
    let m = manifests.get(digest);
    if (!m) {
      const got = await getManifestRaw(client, repo, digest);
      if (!got) throw new ClientError(`manifest ${repo}@${digest} is not in the registry`, EXIT.notFound);
      checkDigest(digest, got.bytes);
      m = { bytes: got.bytes, mediaType: declaredType(got.bytes, got.mediaType) };
      manifests.set(digest, m);
    }
    const parsed = parseDoc(m.bytes, m.mediaType, digest);
    for (const b of parsed.blobs) {
      const slot = blobs.get(b.digest) ?? { size: b.size, repos: new Set<string>() };
      slot.repos.add(repo);
      blobs.set(b.digest, slot);
    }
    for (const child of parsed.manifests) await walk(repo, child.digest, depth);
    if (!options.noSignatures && depth < MAX_REFERRER_DEPTH) {
      for (const r of await referrers(client, repo, digest)) {
        await walk(repo, r.digest, depth + 1);
        addEntry(repo, r.digest, r.mediaType, r.size);
      }
    }
    return m;
  };

  /** One tagged (or digest-named) image of the selection, with its cosign tags. */
  const selectOne = async (repo: string, reference: string, tag: string | undefined, allTags: boolean) => {
    const got = await getManifestRaw(client, repo, reference);
    if (!got) throw new ClientError(`${repo}:${reference} is not in the registry`, EXIT.notFound);
    let digest = got.digest;
    checkDigest(digest, got.bytes);
    let mediaType = declaredType(got.bytes, got.mediaType);
    let size = got.bytes.length;
    const parsed = parseDoc(got.bytes, mediaType, digest);
    if (wantsPlatform && parsed.kind === "index" && !isCosignTag(tag)) {
      const child = parsed.manifests.find((c) => matches(c.platform, wantsPlatform));
      if (!child) throw new ClientError(`${repo}:${reference} has no ${options.platform} manifest`, EXIT.notFound);
      ({ digest, mediaType, size } = child);
    }
    await walk(repo, digest);
    addEntry(repo, digest, mediaType, size, tag);
    if (options.noSignatures || allTags) return;
    for (const sigTag of cosignTags(digest)) {
      const sig = await getManifestRaw(client, repo, sigTag);
      if (!sig) continue;
      checkDigest(sig.digest, sig.bytes);
      await walk(repo, sig.digest);
      addEntry(repo, sig.digest, declaredType(sig.bytes, sig.mediaType), sig.bytes.length, sigTag);
    }
  };

  const selection: Ref[] = options.all ? (await catalog(client)).map((repo) => ({ repo })) : options.refs.map(parseRef);
  if (selection.length === 0) throw new ClientError("bundle export needs REPO[:TAG] references or --all", EXIT.usage);
  for (const ref of selection) {
    if (ref.digest !== undefined) await selectOne(ref.repo, ref.digest, ref.tag, false);
    else if (ref.tag !== undefined) await selectOne(ref.repo, ref.tag, ref.tag, false);
    else {
      const all = await listTags(client, ref.repo);
      if (all.length === 0) throw new ClientError(`repository "${ref.repo}" has no tags`, EXIT.notFound);
      for (const t of all) await selectOne(ref.repo, t, t, true);
    }
  }

  // blobs the target's repositories already hold are left out (incremental)
  const have = options.have?.repositories ?? {};
  const haveBlobs = new Map(Object.entries(have).map(([r, v]) => [r, new Set(v.blobs)]));
  const send: [string, { size: number; repo: string }][] = [];
  let skippedBlobs = 0;
  let skippedBytes = 0;
  for (const [digest, b] of blobs) {
    if (manifests.has(digest)) continue;
    const needed = [...b.repos].filter((r) => !haveBlobs.get(r)?.has(digest));
    if (needed.length === 0) (skippedBlobs++, (skippedBytes += b.size));
    else send.push([digest, { size: b.size, repo: needed[0]! }]);
  }

  const totalBytes = send.reduce((a, [, b]) => a + b.size, 0) + [...manifests.values()].reduce((a, m) => a + m.bytes.length, 0);
  const progress = { done: 0, total: manifests.size + send.length, bytes: 0, totalBytes };
  const partial = `${file}.partial`;
  const tar = await TarWriter.create(partial);
  try {
    const enc = new TextEncoder();
    const layout = enc.encode(JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }));
    await tar.file("oci-layout", layout.length, [layout]);
    const index = enc.encode(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries }));
    await tar.file("index.json", index.length, [index]);
    await tar.directory("blobs/");
    const dirs = new Set<string>();
    const dirOf = async (digest: string) => {
      const alg = digest.slice(0, digest.indexOf(":"));
      if (!dirs.has(alg)) (dirs.add(alg), await tar.directory(`blobs/${alg}/`));
      return `blobs/${alg}/${digest.slice(alg.length + 1)}`;
    };
    for (const [digest, m] of manifests) {
      await tar.file(await dirOf(digest), m.bytes.length, [m.bytes]);
      progress.done++;
      progress.bytes += m.bytes.length;
      options.progress?.update(progress);
    }
    for (const [digest, b] of send) {
      const stream = await blobStream(client, b.repo, digest);
      await tar.file(await dirOf(digest), b.size, verified(digest, stream, (n) => {
        progress.bytes += n;
        options.progress?.update(progress);
      }));
      progress.done++;
    }
    await tar.close();
    await rename(partial, file);
  } catch (err) {
    await tar.abort();
    await rm(partial, { force: true });
    throw err;
  } finally {
    options.progress?.finish();
  }
  return {
    file,
    entries: entries.map((e) => ({ repo: e.annotations![REPO_ANNOTATION]!, ...(e.annotations![REF_NAME] && { tag: e.annotations![REF_NAME].slice(e.annotations![REPO_ANNOTATION]!.length + 1) }), digest: e.digest })),
    manifests: manifests.size,
    blobs: send.length,
    bytes: tar.size,
    skippedBlobs,
    skippedBytes,
  };
}

function hex(algorithm: Algorithm, bytes: Uint8Array): string {
  const h = createHasher(algorithm);
  h.update(bytes);
  return h.hex();
}

function algorithmOf(digest: string): Algorithm {
  const alg = digest.slice(0, digest.indexOf(":"));
  if (alg !== "sha256" && alg !== "sha512") throw new ClientError(`digest "${digest}" has an unsupported algorithm`, EXIT.error);
  return alg;
}

/** Throws unless `bytes` hash to `digest`. */
export function checkDigest(digest: string, bytes: Uint8Array): void {
  const actual = `${algorithmOf(digest)}:${hex(algorithmOf(digest), bytes)}`;
  if (actual !== digest) throw new ClientError(`the registry sent bytes for ${digest} that hash to ${actual}`, EXIT.error);
}

/** The chunks of `stream`, hashed on the way; the last step throws when they do not hash to `digest`. */
async function* verified(digest: string, stream: ReadableStream<Uint8Array>, onChunk: (n: number) => void): AsyncGenerator<Uint8Array> {
  const h = createHasher(algorithmOf(digest));
  for await (const chunk of stream) {
    h.update(chunk);
    onChunk(chunk.length);
    yield chunk;
  }
  const actual = `${algorithmOf(digest)}:${h.hex()}`;
  if (actual !== digest) throw new ClientError(`the registry sent bytes for blob ${digest} that hash to ${actual}`, EXIT.error);
}

function isCosignTag(tag: string | undefined): boolean {
  return tag !== undefined && /^sha(256|512)-[a-f0-9]+\.(sig|att|sbom)$/.test(tag);
}

function matches(platform: Record<string, unknown> | undefined, want: string[]): boolean {
  if (!platform) return false;
  const [os, arch, variant] = want;
  return platform.os === os && platform.architecture === arch && (variant === undefined || platform.variant === variant);
}
