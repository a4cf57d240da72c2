/**
 * Manifest parsing and validation (image-spec "Image Manifest" and "Image Index"; Docker
 * image manifest v2 schema 2 and manifest list). Pure: the caller has the bytes, this says
 * what they reference. The bytes themselves are never re-serialised: the registry stores
 * and serves exactly what the client sent.
 */
import { RegistryError } from "./errors";
import { clip, parseDigest } from "./digest";
import { type MAX_JSON_DEPTH, NestingScanner, jsonProblem } from "./jsonscan";
import { IMAGE_TYPES, INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST, isNonDistributable } from "./mediatypes";

const OCI_TYPES: ReadonlySet<string> = new Set([OCI_MANIFEST, OCI_INDEX]);

/** An OCI content descriptor, as it appears in manifests and indexes. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  artifactType?: string;
  platform?: Record<string, unknown>;
}

/** What a manifest is and what it points at. */
export interface ParsedManifest {
  /** The manifest's media type: its `mediaType` field, else the Content-Type it was pushed with. */
  mediaType: string;
  kind: "image" | "index";
  /** Blobs the manifest needs in the repository: config and distributable layers. */
  blobs: Descriptor[];
  /** Manifests an index lists. */
  manifests: Descriptor[];
  subject?: Descriptor;
  /** The artifact type the referrers API reports (artifactType, else config.mediaType for images). */
  artifactType?: string;
  annotations?: Record<string, string>;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalid(detail: string): RegistryError {
  return new RegistryError("MANIFEST_INVALID", detail);
}

function stringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) throw invalid(`${where} must be an object of strings`);
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== "string") throw invalid(`${where}["${clip(key, 80)}"] must be a string`);
  }
  return value as Record<string, string>;
}

/** Validates one descriptor; `where` names it in errors, e.g. `layers[2]`. */
export function parseDescriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw invalid(`${where} must be a descriptor object`);
  const { mediaType, digest, size, urls, artifactType, platform } = value;
  if (typeof mediaType !== "string" || mediaType.length === 0) throw invalid(`${where}.mediaType must be a non-empty string`);
  if (typeof digest !== "string" || !parseDigest(digest)) {
    throw invalid(`${where}.digest ${typeof digest === "string" ? `"${clip(digest)}" ` : ""}is not a valid sha256 or sha512 digest`);
  }
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) throw invalid(`${where}.size must be a non-negative integer`);
  if (urls !== undefined && (!Array.isArray(urls) || urls.some((u) => typeof u !== "string"))) {
    throw invalid(`${where}.urls must be an array of strings`);
  }
  if (artifactType !== undefined && typeof artifactType !== "string") throw invalid(`${where}.artifactType must be a string`);
  if (platform !== undefined && !isObject(platform)) throw invalid(`${where}.platform must be an object`);
  const descriptor: Descriptor = { mediaType, digest, size };
  if (urls !== undefined) descriptor.urls = urls as string[];
  const annotations = stringMap(value.annotations, `${where}.annotations`);
  if (annotations) descriptor.annotations = annotations;
  if (artifactType !== undefined) descriptor.artifactType = artifactType;
  if (platform !== undefined) descriptor.platform = platform;
  return descriptor;
}

function descriptorList(value: unknown, field: string): Descriptor[] {
  if (!Array.isArray(value)) throw invalid(`"${field}" must be an array of descriptors`);
  return value.map((item, i) => parseDescriptor(item, `${field}[${i}]`));
}

/**
 * The children of an index: each must be a manifest or an index (image-spec "Image Index":
 * `manifests` lists manifests). A layer or config listed there would be stored as a
 * "manifest" no reader can parse.
 */
function childList(value: unknown): Descriptor[] {
  const children = descriptorList(value, "manifests");
  children.forEach((child, i) => {
    if (!MANIFEST_TYPES.has(child.mediaType)) {
      throw invalid(`manifests[${i}] (${clip(child.digest, 80)}) has media type "${clip(child.mediaType, 80)}", which is not a manifest or index type`);
    }
  });
  return children;
}

/**
 * Parses and validates manifest bytes pushed with `contentType` (already stripped of
 * parameters; may be empty). Throws MANIFEST_INVALID naming the first problem found:
 * JSON nested deeper than {@link MAX_JSON_DEPTH} or with a duplicate key is refused before
 * it is parsed (see jsonscan.ts). `stored` reads a manifest already in the store (pushed
 * before the duplicate-key rule existed, or in a layout dropped into the root): nesting is
 * still bounded, duplicate keys are tolerated (JSON.parse keeps the last), so such a
 * manifest stays indexed and served.
 */
export function parseManifest(bytes: Uint8Array, contentType: string, origin: "push" | "stored" = "push"): ParsedManifest {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw invalid("the manifest is not valid UTF-8 JSON");
  }
  const problem = origin === "push" ? jsonProblem(text) : new NestingScanner().feed(bytes);
  if (problem) throw invalid(problem);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw invalid("the manifest is not valid UTF-8 JSON");
  }
  if (!isObject(doc)) throw invalid("the manifest must be a JSON object");
  if (doc.schemaVersion === 1) throw invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI");
  if (doc.schemaVersion !== 2) throw invalid('"schemaVersion" must be 2');

  const declared = doc.mediaType;
  if (declared !== undefined && typeof declared !== "string") throw invalid('"mediaType" must be a string');
  if (declared && contentType && declared !== contentType) {
    throw invalid(`the manifest's mediaType "${clip(declared)}" does not match its Content-Type "${clip(contentType)}"`);
  }
  const mediaType = declared || contentType;
  if (!mediaType) throw invalid("the manifest has no mediaType field and the request no Content-Type");
  if (!MANIFEST_TYPES.has(mediaType)) throw invalid(`"${clip(mediaType)}" is not a manifest media type`);

  const annotations = stringMap(doc.annotations, "annotations");
  // subject is an OCI field (image-spec v1.1); Docker's types have none, so it is ignored there.
  const subject = doc.subject === undefined || !OCI_TYPES.has(mediaType) ? undefined : parseDescriptor(doc.subject, "subject");
  const artifactTypeField = doc.artifactType;
  if (artifactTypeField !== undefined && typeof artifactTypeField !== "string") throw invalid('"artifactType" must be a string');

  if (INDEX_TYPES.has(mediaType)) {
    // CVE-2021-41190: a document that could be read both ways is refused.
    if (doc.layers !== undefined || doc.config !== undefined) throw invalid('an index must not have "layers" or "config"');
    const parsed: ParsedManifest = { mediaType, kind: "index", blobs: [], manifests: childList(doc.manifests) };
    if (subject) parsed.subject = subject;
    if (artifactTypeField) parsed.artifactType = artifactTypeField;
    if (annotations) parsed.annotations = annotations;
    return parsed;
  }

  if (IMAGE_TYPES.has(mediaType)) {
    if (doc.manifests !== undefined) throw invalid('an image manifest must not have "manifests"');
    const config = parseDescriptor(doc.config, "config");
    const layers = descriptorList(doc.layers, "layers");
    const blobs = [config, ...layers.filter((l) => !isNonDistributable(l.mediaType, l.urls))];
    const parsed: ParsedManifest = { mediaType, kind: "image", blobs, manifests: [] };
    if (subject) parsed.subject = subject;
    parsed.artifactType = artifactTypeField || config.mediaType;
    if (annotations) parsed.annotations = annotations;
    return parsed;
  }
  throw invalid(`"${clip(mediaType)}" is not a manifest media type`);
}

/**
 * Guesses the media type of stored manifest bytes that carry no `mediaType` field and no
 * recorded type (a layout dropped in by hand). Returns undefined if the bytes are no manifest.
 */
export function sniffManifestType(bytes: Uint8Array): string | undefined {
  if (new NestingScanner().feed(bytes)) return undefined; // hostile nesting is no manifest
  try {
    const doc: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (!isObject(doc)) return undefined;
    if (typeof doc.mediaType === "string" && doc.mediaType) return doc.mediaType;
    if (Array.isArray(doc.manifests)) return "application/vnd.oci.image.index.v1+json";
    if (isObject(doc.config)) return "application/vnd.oci.image.manifest.v1+json";
  } catch {
    return undefined;
  }
  return undefined;
}
