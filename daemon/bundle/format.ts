/**
 * The bundle format: an OCI image layout (image-spec "image-layout.md") in a tar, the file
 * skopeo and other tools call `oci-archive`. Several repositories share one layout:
 *
 *   oci-layout          {"imageLayoutVersion":"1.0.0"}
 *   index.json          one descriptor per exported manifest, annotated with
 *                         org.opencontainers.image.ref.name = "REPO:TAG"  (tagged manifests)
 *                         io.berth.bundle.repository     = "REPO"      (every entry)
 *   blobs/<alg>/<hex>   manifests, configs and layers, each once whatever repositories hold it
 *
 * "REPO:TAG" is what `skopeo copy oci-archive:FILE:REPO:TAG …` asks for: skopeo splits the
 * reference at the first colon (the file name) and matches the rest against ref.name.
 * Untagged entries (referrers such as SBOMs, which are found through their `subject`)
 * carry only the repository annotation. An archive made by another tool has entries without
 * it: their ref.name "NAME:TAG" gives repository and tag, a bare "TAG" needs `--repo`.
 *
 * The target's inventory (`berth bundle have`), read by an incremental export:
 *
 *   {"berthBundleHave":1,"repositories":{"REPO":{"manifests":["sha256:…"],"blobs":["sha256:…"]}}}
 */
import { ClientError, EXIT } from "../client/errors";
import { parseManifest, type ParsedManifest } from "../oci/manifest";
import { REF_NAME } from "../oci/mediatypes";

/** The annotation naming the repository of an index.json entry. */
export const REPO_ANNOTATION = "io.berth.bundle.repository";
export { REF_NAME };

/** Largest manifest or index.json a bundle may carry (the registry's own manifest cap is smaller). */
export const MAX_DOC = 8 << 20;

/** A descriptor of index.json. */
export interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Record<string, unknown>;
}

/** The target's inventory, per repository. */
export interface Have {
  berthBundleHave: 1;
  repositories: Record<string, { manifests: string[]; blobs: string[] }>;
}

/** Parses an inventory file's text; a usage error when it is not one. */
export function parseHave(text: string, file: string): Have {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw new ClientError(`"${file}" is not JSON (write it with: berth bundle have > FILE)`, EXIT.usage);
  }
  const h = j as Partial<Have>;
  if (h?.berthBundleHave !== 1 || typeof h.repositories !== "object" || h.repositories === null) {
    throw new ClientError(`"${file}" is not an inventory of berth bundle have`, EXIT.usage);
  }
  return h as Have;
}

const REPO = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** True when `name` is a repository name of the distribution spec. */
export function isRepoName(name: string): boolean {
  return name.length <= 255 && REPO.test(name);
}

/** True when `tag` is a tag of the distribution spec. */
export function isTagName(tag: string): boolean {
  return TAG.test(tag);
}

/**
 * Repository and tag of an index.json entry: the repository annotation, else the part of
 * ref.name before its last colon, else `fallbackRepo`; the tag from ref.name. Throws a
 * usage error when no repository can be named.
 */
export function entryTarget(entry: IndexEntry, fallbackRepo: string | undefined): { repo: string; tag?: string } {
  const ref = entry.annotations?.[REF_NAME];
  const annotated = entry.annotations?.[REPO_ANNOTATION];
  let repo = annotated;
  let tag: string | undefined;
  if (ref !== undefined) {
    const colon = ref.lastIndexOf(":");
    if (colon > 0 && !ref.slice(colon + 1).includes("/")) {
      repo ??= ref.slice(0, colon);
      tag = ref.slice(colon + 1);
    } else tag = ref;
  }
  if (fallbackRepo !== undefined && annotated === undefined && (ref === undefined || !ref.includes(":"))) repo = fallbackRepo;
  repo ??= fallbackRepo;
  if (repo === undefined) {
    throw new ClientError(`the bundle entry ${entry.digest}${ref ? ` ("${ref}")` : ""} names no repository; give one with --repo`, EXIT.usage);
  }
  if (!isRepoName(repo)) throw new ClientError(`the bundle entry ${entry.digest} names "${repo}", which is not a repository name`, EXIT.error);
  if (tag !== undefined && !isTagName(tag)) throw new ClientError(`the bundle entry ${entry.digest} names "${tag}", which is not a tag`, EXIT.error);
  return tag === undefined ? { repo } : { repo, tag };
}

/** The ref.name of a tagged entry. */
export function refName(repo: string, tag: string): string {
  return `${repo}:${tag}`;
}

/** Parses manifest bytes with the registry's own rules (the error says which digest). */
export function parseDoc(bytes: Uint8Array, mediaType: string, digest: string): ParsedManifest {
  try {
    return parseManifest(bytes, mediaType, "stored");
  } catch (err) {
    throw new ClientError(`manifest ${digest} is not valid: ${(err as Error).message}`, EXIT.error);
  }
}

/** The media type stored in a manifest's own `mediaType` field, else `fallback`. */
export function declaredType(bytes: Uint8Array, fallback: string): string {
  try {
    const t = (JSON.parse(new TextDecoder().decode(bytes)) as { mediaType?: unknown }).mediaType;
    return typeof t === "string" && t ? t : fallback;
  } catch {
    return fallback;
  }
}

/** The cosign tags (signature, attestation, SBOM) that belong to manifest `digest`. */
export function cosignTags(digest: string): string[] {
  const base = digest.replace(":", "-");
  return [`${base}.sig`, `${base}.att`, `${base}.sbom`];
}
