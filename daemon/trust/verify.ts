/**
 * One signature manifest, whatever tool made it, checked against the trust store: which
 * kind it is (cosign tag scheme, cosign sigstore bundle, notation JWS), and one verdict per
 * signature it carries, in zot's terms (tool, trusted, author) plus the reason when it is
 * not trusted. Reads blobs through a callback; no other I/O.
 */
import { BUNDLE_V03, SIMPLE_SIGNING, type LayerDesc, verifyBundle, verifySimpleSigning } from "./cosign";
import type { TrustSet } from "./keys";
import { JWS_ENVELOPE, NOTATION_SIGNATURE, verifyJws } from "./notation";

/** Which tool made a signature manifest. */
export type SignatureKind = "cosign-tag" | "cosign-bundle" | "notation";

/** One signature's verdict (zot's `SignatureInfo { Tool IsTrusted Author }`, plus why not). */
export interface SignatureInfo {
  tool: "cosign" | "notation";
  isTrusted: boolean;
  /** The key name or certificate subject that verified it; empty when not trusted. */
  author: string;
  /** Why it is not trusted; absent when it is. */
  reason?: string;
  /** Digest of the signature manifest. */
  signature: string;
}

/** Largest signature blob read (payloads, bundles, envelopes are a few KiB). */
export const MAX_SIGNATURE_BLOB = 1024 * 1024;

interface ManifestDoc {
  artifactType?: string;
  config?: { mediaType?: string };
  layers?: LayerDesc[];
  subject?: { digest?: string };
}

/** Parses a manifest's JSON; undefined when it is not an object. */
export function manifestDoc(bytes: Uint8Array): ManifestDoc | undefined {
  try {
    const doc = JSON.parse(new TextDecoder().decode(bytes));
    return typeof doc === "object" && doc !== null && !Array.isArray(doc) ? doc : undefined;
  } catch {
    return undefined;
  }
}

/** The kind of signature a manifest is, or undefined when it is no signature. */
export function signatureKind(doc: ManifestDoc): SignatureKind | undefined {
  const type = doc.artifactType ?? doc.config?.mediaType;
  const layers = Array.isArray(doc.layers) ? doc.layers : [];
  if (type === NOTATION_SIGNATURE && layers.some((l) => l?.mediaType === JWS_ENVELOPE)) return "notation";
  if (layers.some((l) => l?.mediaType === BUNDLE_V03) && (type === BUNDLE_V03 || doc.subject)) return "cosign-bundle";
  if (layers.length > 0 && layers.every((l) => l?.mediaType === SIMPLE_SIGNING)) return "cosign-tag";
  return undefined;
}

/** What verification reads: blobs of the repository (undefined when absent or too large). */
export type BlobReader = (digest: string) => Promise<Uint8Array | undefined>;

/**
 * Verdicts of signature manifest `sigDigest` (already parsed as `doc`) about `target`.
 * `targetBytes` are the signed manifest's bytes (message-signature bundles need them).
 */
export async function verifySignatureManifest(
  doc: ManifestDoc,
  sigDigest: string,
  target: string,
  targetBytes: Uint8Array | undefined,
  read: BlobReader,
  trust: TrustSet,
  now: number,
): Promise<SignatureInfo[]> {
  const kind = signatureKind(doc);
  if (!kind) return [];
  const tool = kind === "notation" ? "notation" : "cosign";
  const out: SignatureInfo[] = [];
  const want = kind === "notation" ? JWS_ENVELOPE : kind === "cosign-bundle" ? BUNDLE_V03 : SIMPLE_SIGNING;
  // a signature manifest is small; a hostile one with thousands of layers is cut short
  for (const layer of (doc.layers ?? []).filter((l) => l?.mediaType === want).slice(0, 16)) {
    const bytes = typeof layer.digest === "string" ? await read(layer.digest) : undefined;
    if (!bytes) {
      out.push({ tool, isTrusted: false, author: "", reason: `signature blob ${String(layer.digest)} is missing or larger than ${MAX_SIGNATURE_BLOB} bytes`, signature: sigDigest });
      continue;
    }
    const v = kind === "notation" ? verifyJws(bytes, target, trust, now)
      : kind === "cosign-bundle" ? verifyBundle(bytes, target, targetBytes, trust, now)
      : verifySimpleSigning(layer, bytes, target, trust, now);
    out.push({ tool, isTrusted: v.verified, author: v.author, ...(v.reason ? { reason: v.reason } : {}), signature: sigDigest });
  }
  return out;
}

/** True for a referrer's artifact type that a signature may have (notation, sigstore; none: decided by its config). */
export function maySign(artifactType: string | undefined): boolean {
  return artifactType === undefined || /notary|sigstore|cosign/i.test(artifactType);
}
