/**
 * Just enough XML for S3's responses (ListObjectsV2, ListParts, InitiateMultipartUpload,
 * CompleteMultipartUpload, DeleteObjects, CopyObject, Error) and requests (CompleteMultipartUpload,
 * Delete). S3's documents are flat, namespace-free-in-practice and small (a listing page is at
 * most 1,000 entries), so elements are found by name with a non-greedy scan instead of a full
 * parser; an input larger than `MAX_XML` is refused by the client before it gets here.
 */

/** Largest XML body the client reads (a 1,000-key listing with long keys stays far below). */
export const MAX_XML = 8 * 1024 * 1024;

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** Decodes the five named entities and numeric character references. */
export function unescapeXml(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, e: string) =>
    e[0] === "#" ? String.fromCodePoint(e[1] === "x" ? Number.parseInt(e.slice(2), 16) : Number(e.slice(1))) : (ENTITIES[e] ?? ""),
  );
}

/** Escapes text for an element's content. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&${Object.entries(ENTITIES).find(([, v]) => v === c)?.[0]};`);
}

/** The raw inner XML of every `<name>` element (not nested in another of the same name). */
export function elements(xml: string, name: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`<${name}(?:\\s[^>]*)?(?:/>|>([\\s\\S]*?)</${name}>)`, "g");
  for (const m of xml.matchAll(re)) out.push(m[1] ?? "");
  return out;
}

/** The decoded text of the first `<name>` element, or undefined. */
export function text(xml: string, name: string): string | undefined {
  const [first] = elements(xml, name);
  return first === undefined ? undefined : unescapeXml(first);
}
