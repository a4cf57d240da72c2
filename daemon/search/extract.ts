/**
 * What search keeps of a manifest and of an image config (image-spec "Image Manifest",
 * "Image Index", "Image Configuration"): platform, creation time, labels, history, layers.
 * Pure and lenient: the bytes were validated when they were pushed; a field of the wrong
 * type is left out rather than failing the whole image. History is bounded in entries and
 * in text per entry so one odd config cannot bloat the index.
 */

/** A descriptor as search keeps it. */
export interface BlobRef {
  digest: string;
  size: number;
  mediaType?: string;
}

/** What search extracts from a manifest and, for an image, from its config. */
export interface ManifestFacts {
  kind: "image" | "index";
  config?: BlobRef & { mediaType?: string };
  layers: BlobRef[];
  children?: (BlobRef & { os?: string; arch?: string })[];
  artifactType?: string;
  annotations?: Record<string, string>;
  os?: string;
  arch?: string;
  variant?: string;
  /** ms since the epoch. */
  created?: number;
  labels?: Record<string, string>;
  history?: HistoryEntry[];
}

/** One entry of a config's history. */
export interface HistoryEntry {
  created?: string;
  createdBy?: string;
  author?: string;
  comment?: string;
  emptyLayer?: boolean;
}

/** History entries kept per image. */
export const MAX_HISTORY = 256;
/** Characters kept of each history text (a RUN line can be very long). */
export const MAX_HISTORY_TEXT = 1024;

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

function blobRef(v: unknown): BlobRef | undefined {
  if (!isObject(v) || typeof v.digest !== "string" || typeof v.size !== "number") return undefined;
  const ref: BlobRef = { digest: v.digest, size: v.size };
  if (typeof v.mediaType === "string") ref.mediaType = v.mediaType;
  return ref;
}

function strings(v: unknown): Record<string, string> | undefined {
  if (!isObject(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === "string") out[k] = x;
  return Object.keys(out).length > 0 ? out : undefined;
}

function parse(bytes: Uint8Array): Json | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return isObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The facts of manifest bytes of media type `mediaType`; undefined when they are not a manifest. */
export function extractManifest(bytes: Uint8Array, mediaType: string): ManifestFacts | undefined {
  const doc = parse(bytes);
  if (!doc) return undefined;
  const isIndex = Array.isArray(doc.manifests) || mediaType.includes("index") || mediaType.includes("manifest.list");
  const facts: ManifestFacts = { kind: isIndex ? "index" : "image", layers: [] };
  const annotations = strings(doc.annotations);
  if (annotations) facts.annotations = annotations;
  const artifactType = str(doc.artifactType);
  if (artifactType) facts.artifactType = artifactType;
  if (isIndex) {
    facts.children = [];
    for (const m of Array.isArray(doc.manifests) ? doc.manifests : []) {
      const ref = blobRef(m);
      if (!ref) continue;
      const p = isObject(m) && isObject(m.platform) ? m.platform : undefined;
      const child: BlobRef & { os?: string; arch?: string } = ref;
      if (p && typeof p.os === "string") child.os = p.os;
      if (p && typeof p.architecture === "string") child.arch = p.architecture;
      facts.children.push(child);
    }
    return facts;
  }
  const config = blobRef(doc.config);
  if (config) facts.config = config;
  for (const l of Array.isArray(doc.layers) ? doc.layers : []) {
    const ref = blobRef(l);
    if (ref) facts.layers.push(ref);
  }
  return facts;
}

/** The facts of an image config: platform, created time, labels, history. */
export function extractConfig(bytes: Uint8Array): Partial<ManifestFacts> {
  const doc = parse(bytes);
  if (!doc) return {};
  const out: Partial<ManifestFacts> = {};
  const os = str(doc.os);
  const arch = str(doc.architecture);
  const variant = str(doc.variant);
  if (os) out.os = os;
  if (arch) out.arch = arch;
  if (variant) out.variant = variant;
  const created = timeOf(doc.created);
  if (created !== undefined) out.created = created;
  const labels = isObject(doc.config) ? strings(doc.config.Labels) : undefined;
  if (labels) out.labels = labels;
  if (Array.isArray(doc.history)) {
    out.history = doc.history.slice(0, MAX_HISTORY).filter(isObject).map((h) => {
      const e: HistoryEntry = {};
      const c = str(h.created);
      if (c) e.created = c;
      const by = str(h.created_by);
      if (by) e.createdBy = by.slice(0, MAX_HISTORY_TEXT);
      const author = str(h.author);
      if (author) e.author = author.slice(0, MAX_HISTORY_TEXT);
      const comment = str(h.comment);
      if (comment) e.comment = comment.slice(0, MAX_HISTORY_TEXT);
      if (h.empty_layer === true) e.emptyLayer = true;
      return e;
    });
    // zot's LastUpdated: the config's created time, else the newest history entry
    if (out.created === undefined) {
      for (const h of out.history) {
        const t = timeOf(h.created);
        if (t !== undefined && (out.created === undefined || t > out.created)) out.created = t;
      }
    }
  }
  return out;
}

function timeOf(v: unknown): number | undefined {
  if (typeof v !== "string") return undefined;
  const t = Date.parse(v);
  return Number.isFinite(t) && t > 0 ? t : undefined;
}
