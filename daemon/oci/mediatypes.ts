/**
 * Media types the registry understands (image-spec "Media Types", Docker image manifest v2,
 * schema 2). Any other manifest media type is accepted as an opaque artifact only if its
 * body parses as one of the known shapes (see manifest.ts).
 */

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const OCI_LAYOUT_VERSION = "1.0.0";

/** The annotation that carries a tag in an OCI layout's index.json. */
export const REF_NAME = "org.opencontainers.image.ref.name";

/** Manifest media types that list other manifests. */
export const INDEX_TYPES: ReadonlySet<string> = new Set([OCI_INDEX, DOCKER_MANIFEST_LIST]);
/** Manifest media types that reference a config and layers. */
export const IMAGE_TYPES: ReadonlySet<string> = new Set([OCI_MANIFEST, DOCKER_MANIFEST]);
/** Every manifest media type berth stores and serves. */
export const MANIFEST_TYPES: ReadonlySet<string> = new Set([...INDEX_TYPES, ...IMAGE_TYPES]);

/** Layer media types whose blobs are not pushed to registries (foreign layers). */
const NON_DISTRIBUTABLE = /nondistributable|foreign/;

/** True when a layer descriptor points outside the registry and need not exist in it. */
export function isNonDistributable(mediaType: string, urls: unknown): boolean {
  return NON_DISTRIBUTABLE.test(mediaType) || (Array.isArray(urls) && urls.length > 0);
}

/** Strips parameters and whitespace from a Content-Type value: "a/b; x=y" -> "a/b". */
export function bareMediaType(value: string | null | undefined): string {
  if (!value) return "";
  const semi = value.indexOf(";");
  return (semi >= 0 ? value.slice(0, semi) : value).trim().toLowerCase();
}

/**
 * True when an Accept header admits `mediaType`. No header, an empty one, or a wildcard
 * admits everything. Several Accept lines arrive merged with commas, as fetch does.
 */
export function acceptAdmits(accept: string | null, mediaType: string): boolean {
  if (!accept) return true;
  let sawAny = false;
  for (const part of accept.split(",")) {
    const type = bareMediaType(part);
    if (!type) continue;
    sawAny = true;
    if (type === mediaType || type === "*/*" || type === "application/*") return true;
  }
  return !sawAny;
}

/**
 * A layer media type a container runtime unpacks into a root filesystem: OCI
 * `image.layer.*` (also nondistributable), Docker `image.rootfs.*`, or anything `tar`.
 */
const FILESYSTEM_LAYER = /^application\/vnd\.(oci\.image\.layer\.|docker\.image\.rootfs\.)|tar/i;

/**
 * True when the manifest document `doc` (parsed JSON) lists a layer a runtime would unpack
 * and run, or a layer without a media type: such an image is runnable whatever its
 * `subject`, `artifactType` or tag say, so it is no mere signature or attachment.
 */
export function hasFilesystemLayer(doc: { layers?: unknown }): boolean {
  const layers = Array.isArray(doc.layers) ? doc.layers : [];
  return layers.some((l) => {
    const type = typeof l === "object" && l !== null ? (l as { mediaType?: unknown }).mediaType : undefined;
    return typeof type !== "string" || FILESYSTEM_LAYER.test(type);
  });
}
