/**
 * The index.json of an OCI image layout as berth uses it (image-spec "Image Layout"):
 * one descriptor per (manifest, tag) pair, tagged with org.opencontainers.image.ref.name,
 * and one untagged descriptor for a manifest that has no tag. Every manifest pushed to a
 * repository is listed, so the index is the full set of the repository's roots. These are
 * pure functions from one list of descriptors to the next.
 */
import type { Descriptor } from "./manifest";
import { OCI_INDEX, REF_NAME } from "./mediatypes";

/** index.json; fields berth does not use are kept as they were. */
export interface IndexDoc {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  [field: string]: unknown;
}

/** The tag a descriptor carries, if any. */
export function tagOf(d: Descriptor): string | undefined {
  return d.annotations?.[REF_NAME];
}

/** An empty index.json document. */
export function emptyIndex(): IndexDoc {
  return { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] };
}

/**
 * Parses index.json leniently: entries without a usable digest are dropped, since a layout
 * written by another tool is served as it is. Throws if the text is not a JSON object.
 */
export function parseIndexDoc(text: string): IndexDoc {
  const doc = JSON.parse(text) as unknown;
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new Error("index.json is not a JSON object");
  const raw = (doc as { manifests?: unknown }).manifests;
  const manifests = Array.isArray(raw)
    ? raw.filter((d): d is Descriptor => typeof d === "object" && d !== null && typeof (d as Descriptor).digest === "string")
    : [];
  return { ...(doc as object), schemaVersion: 2, manifests };
}

function entryFor(desc: Descriptor, tag?: string): Descriptor {
  const entry: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
  if (tag !== undefined) entry.annotations = { [REF_NAME]: tag };
  return entry;
}

/**
 * Adds manifest `desc` under `tags` (moving each tag if it pointed elsewhere); with no tags,
 * adds it untagged unless it is already listed. A manifest that loses its last tag stays
 * listed, untagged: moving a tag never makes a manifest unreachable.
 */
export function withManifest(entries: Descriptor[], desc: Descriptor, tags: readonly string[]): Descriptor[] {
  const moving = new Set(tags);
  const removed: Descriptor[] = [];
  let out = entries.filter((e) => {
    const t = tagOf(e);
    if (t !== undefined && moving.has(t)) {
      removed.push(e);
      return false;
    }
    return true;
  });
  if (tags.length > 0) {
    out = out.filter((e) => !(e.digest === desc.digest && tagOf(e) === undefined));
    for (const tag of tags) out.push(entryFor(desc, tag));
  } else if (!out.some((e) => e.digest === desc.digest)) {
    out.push(entryFor(desc));
  }
  return keepOrphansListed(out, removed);
}

/** Removes `tag`; returns undefined if the index has no such tag. */
export function withoutTag(entries: Descriptor[], tag: string): Descriptor[] | undefined {
  const removed = entries.filter((e) => tagOf(e) === tag);
  if (removed.length === 0) return undefined;
  return keepOrphansListed(entries.filter((e) => tagOf(e) !== tag), removed);
}

/** Removes every entry (tagged or not) for `digest`. */
export function withoutDigest(entries: Descriptor[], digest: string): Descriptor[] {
  return entries.filter((e) => e.digest !== digest);
}

function keepOrphansListed(out: Descriptor[], removed: Descriptor[]): Descriptor[] {
  for (const e of removed) {
    if (!out.some((o) => o.digest === e.digest)) out.push(entryFor(e));
  }
  return out;
}
