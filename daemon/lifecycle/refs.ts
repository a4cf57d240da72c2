/**
 * What a manifest references, read from its bytes as conservatively as garbage collection
 * needs (see graph.ts): the structured fields, every other digest it mentions, and for bytes
 * that are not a JSON object, every digest-shaped string in them. Parsed forms are cached
 * by digest (content-addressed, so they never change), bounded in bytes: the cache only
 * has to span one repository's two reads of a pass (outside, then under its lock), and it
 * lives as long as the daemon, so a pass over 100,000 manifests must not leave them all.
 * The passes clear it after each repository ({@link ParseCache.clear}).
 */
import { parseDigest } from "../oci/digest";

/** What a manifest's bytes say (content-addressed, so it never changes for a digest). */
export interface Parsed {
  blobs: string[];
  children: string[];
  /** The media type each child's descriptor declares ("" when none), in the order of `children`. */
  childTypes?: string[];
  subject?: string;
  unreadable?: string;
}

/** Default budget of a {@link ParseCache}, in estimated bytes. */
export const PARSE_CACHE_BYTES = 1024 * 1024;

/** Estimated bytes of a parsed form: its strings (two bytes a character) plus a fixed overhead. */
export function weighParsed(digest: string, p: Parsed): number {
  let chars = digest.length + (p.subject?.length ?? 0) + (p.unreadable?.length ?? 0);
  for (const list of [p.blobs, p.children, p.childTypes ?? []]) for (const s of list) chars += s.length + 8;
  return chars * 2 + 128;
}

/** Parsed manifests by digest, bounded in bytes (oldest leave first), shared by the passes of one collector. */
export class ParseCache {
  private readonly map = new Map<string, { parsed: Parsed; weight: number }>();
  private used = 0;

  constructor(private readonly budget = PARSE_CACHE_BYTES) {}

  /** The parsed form of `digest`, if cached. */
  get(digest: string): Parsed | undefined {
    return this.map.get(digest)?.parsed;
  }

  /** Caches `parsed` for `digest`, dropping the oldest entries over the budget. */
  set(digest: string, parsed: Parsed): void {
    const old = this.map.get(digest);
    if (old) {
      this.map.delete(digest);
      this.used -= old.weight;
    }
    const weight = weighParsed(digest, parsed);
    if (weight > this.budget) return;
    this.map.set(digest, { parsed, weight });
    this.used += weight;
    for (const [key, entry] of this.map) {
      if (this.used <= this.budget) break;
      this.map.delete(key);
      this.used -= entry.weight;
    }
  }

  /**
   * Forgets everything. The passes clear the cache after each repository: it only has to
   * span that repository's two reads, and entries kept longer are scattered among the
   * pass's garbage, where they keep whole blocks of the heap from being returned.
   */
  clear(): void {
    this.map.clear();
    this.used = 0;
  }

  /** Estimated bytes held. */
  size(): number {
    return this.used;
  }
}

const DIGEST_TEXT = /(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})(?![a-f0-9])/g;

function digestsOf(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  const out: string[] = [];
  for (const d of value) {
    const digest = (d as { digest?: unknown } | null)?.digest;
    if (typeof digest === "string") out.push(digest);
  }
  return out;
}

/** Every string in `value` (recursively, iteratively) that is a supported digest. */
function digestStrings(value: unknown, out: Set<string>): void {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === "string") {
      if (v.length >= 71 && parseDigest(v)) out.add(v);
    } else if (Array.isArray(v)) stack.push(...v);
    else if (v !== null && typeof v === "object") stack.push(...Object.values(v));
  }
}

/** What a manifest references, read as conservatively as the module comment says. */
export function parseNode(bytes: Uint8Array): Parsed {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    // Decoded byte for byte only here: a second copy of every manifest parsed was garbage otherwise.
    const found = [...new Set(new TextDecoder("latin1").decode(bytes).match(DIGEST_TEXT) ?? [])];
    return { blobs: found, children: found, unreadable: "not JSON; every digest its bytes contain is kept" };
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    const found = new Set<string>();
    digestStrings(doc, found);
    return { blobs: [...found], children: [...found], unreadable: "not a JSON object; every digest it contains is kept" };
  }
  const o = doc as Record<string, unknown>;
  const blobs = new Set<string>();
  const config = (o.config as { digest?: unknown } | undefined)?.digest;
  if (typeof config === "string") blobs.add(config);
  for (const d of [...digestsOf(o.layers), ...digestsOf(o.blobs)]) blobs.add(d);
  for (const [key, value] of Object.entries(o)) if (key !== "subject" && key !== "manifests") digestStrings(value, blobs);
  const parsed: Parsed = { blobs: [...blobs], children: digestsOf(o.manifests) };
  if (Array.isArray(o.manifests)) {
    parsed.childTypes = o.manifests
      .filter((d) => typeof (d as { digest?: unknown } | null)?.digest === "string")
      .map((d) => String((d as { mediaType?: unknown }).mediaType ?? ""));
  }
  const subject = (o.subject as { digest?: unknown } | undefined)?.digest;
  if (typeof subject === "string") parsed.subject = subject;
  return parsed;
}
