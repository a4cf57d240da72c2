/**
 * `only_signed` for sync: before an image is mirrored, its signatures are fetched from the
 * upstream (the cosign tag `sha256-<hex>.sig`, and the referrers: notation, sigstore
 * bundles) and verified with the trust store; the image is mirrored only when one verifies.
 * The cosign signature manifest found is handed back so that sync mirrors it (with its tag)
 * beside the image; referrers are mirrored by sync with their subject anyway.
 * Reads the upstream through a structural type: trust does not import sync.
 */
import { cosignTag } from "./cosign";
import type { TrustSet } from "./keys";
import { MAX_SIGNATURE_BLOB, manifestDoc, maySign, type SignatureInfo, signatureKind, verifySignatureManifest } from "./verify";

/** A manifest fetched from an upstream. */
export interface UpstreamManifest {
  digest: string;
  mediaType: string;
  bytes: Uint8Array;
}

/** What is read of an upstream (sync's Upstream has these). */
export interface UpstreamReader<M extends UpstreamManifest> {
  manifest(repo: string, ref: string, opts: { background?: boolean; signal?: AbortSignal }): Promise<M>;
  blob(repo: string, digest: { value: string; algorithm: "sha256" | "sha512"; hex: string }, opts: { background?: boolean; signal?: AbortSignal }): Promise<Response>;
  referrers(repo: string, digest: { value: string; algorithm: "sha256" | "sha512"; hex: string }, opts: { signal?: AbortSignal }): Promise<{ digest: string; artifactType?: string }[]>;
}

/** The verdict on an upstream image. */
export interface UpstreamVerdict<M> {
  ok: boolean;
  /** Who verified it, or why nothing did. */
  detail: string;
  /** The cosign tag-scheme signature manifest, to mirror with its tag. */
  cosign?: { manifest: M; tag: string };
}

/** Verifies the upstream signatures of `m` (of upstream repository `repo`) with `trust`. */
export async function verifyUpstream<M extends UpstreamManifest>(upstream: UpstreamReader<M>, repo: string, m: M, trust: TrustSet, signal?: AbortSignal, now = Date.now()): Promise<UpstreamVerdict<M>> {
  const opts = { background: true, ...(signal ? { signal } : {}) };
  const [algorithm, hex] = m.digest.split(":") as ["sha256" | "sha512", string];
  const subject = { value: m.digest, algorithm, hex };
  const read = async (digest: string): Promise<Uint8Array | undefined> => {
    const [a, h] = digest.split(":") as ["sha256" | "sha512", string];
    try {
      const res = await upstream.blob(repo, { value: digest, algorithm: a, hex: h }, opts);
      if (Number(res.headers.get("content-length") ?? 0) > MAX_SIGNATURE_BLOB) return void (await res.body?.cancel());
      const bytes = new Uint8Array(await res.arrayBuffer());
      const { createHash } = await import("node:crypto");
      // the verdict rests on these bytes: they must be the ones the manifest names
      return bytes.length <= MAX_SIGNATURE_BLOB && `${a}:${createHash(a).update(bytes).digest("hex")}` === digest ? bytes : undefined;
    } catch {
      return undefined;
    }
  };
  const tag = cosignTag(m.digest);
  const candidates: M[] = [];
  let cosign: M | undefined;
  try {
    cosign = await upstream.manifest(repo, tag, opts);
    candidates.push(cosign);
  } catch {
    // no cosign tag upstream
  }
  try {
    // only referrers a signature may be (an SBOM flood must not crowd the signature out), then at most 32
    const signatures = (await upstream.referrers(repo, subject, opts)).filter((r) => maySign(r.artifactType));
    for (const r of signatures.slice(0, 32)) candidates.push(await upstream.manifest(repo, r.digest, opts));
  } catch {
    // no referrers upstream
  }
  const verdicts: SignatureInfo[] = [];
  for (const c of candidates) {
    const doc = manifestDoc(c.bytes);
    if (!doc || !signatureKind(doc)) continue;
    verdicts.push(...(await verifySignatureManifest(doc, c.digest, m.digest, m.bytes, read, trust, now)));
  }
  const good = verdicts.find((v) => v.isTrusted);
  const cosignPart = cosign ? { cosign: { manifest: cosign, tag } } : {};
  if (good) return { ok: true, detail: `${good.tool}: ${good.author}`, ...cosignPart };
  return { ok: false, detail: verdicts.length === 0 ? `${m.digest} has no signature upstream` : verdicts.map((v) => v.reason).join("; ") };
}
