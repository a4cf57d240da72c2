/**
 * cosign's two ways of attaching a signature to an image, verified offline:
 *
 * - the tag scheme: a manifest tagged `sha256-<hex>.sig` whose layers are simple-signing
 *   payloads (`application/vnd.dev.cosign.simplesigning.v1+json`), each carrying its
 *   signature, base64, in the `dev.cosignproject.cosign/signature` annotation and, for a
 *   certificate-based signature, the PEM certificate (`dev.sigstore.cosign/certificate`)
 *   and chain (`dev.sigstore.cosign/chain`). The payload's
 *   `critical.image.docker-manifest-digest` must be the signed manifest's digest.
 * - the referrers scheme: a manifest whose subject is the image, with one layer holding a
 *   sigstore bundle (`application/vnd.dev.sigstore.bundle.v0.3+json`): a DSSE envelope
 *   over an in-toto statement whose subject digest must be the image's, or a message
 *   signature over the image manifest's bytes.
 *
 * Key-based only: no Rekor or Fulcio is consulted; a certificate is accepted when it chains
 * to a CA of the trust store (valid now).
 */
import { createHash, type X509Certificate } from "node:crypto";
import { certificateOf, certificatesOfPem, chainTooLong, countPemCertificates, oneLine, type TrustSet, verifyChain, verifySignature } from "./keys";

/** Media type of a simple-signing payload layer. */
export const SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json";
/** Annotation with the base64 signature of a simple-signing layer. */
export const SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
const CERT_ANNOTATION = "dev.sigstore.cosign/certificate";
const CHAIN_ANNOTATION = "dev.sigstore.cosign/chain";
/** Media type (and artifact type) of a sigstore bundle v0.3. */
export const BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json";
const IN_TOTO = "application/vnd.in-toto+json";

/** One signature's verdict. */
export interface Verdict {
  verified: boolean;
  /** Key name or certificate subject that verified it; empty when nothing did. */
  author: string;
  /** Why it is not verified (absent when verified). */
  reason?: string;
}

/** The cosign tag under which the signature of `digest` is attached ("sha256-<hex>.sig"). */
export function cosignTag(digest: string): string {
  return `${digest.replace(":", "-")}.sig`;
}

/** The digest a cosign signature tag signs, or undefined when `tag` is not one. */
export function digestOfCosignTag(tag: string): string | undefined {
  const m = /^(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})\.sig$/.exec(tag);
  return m ? `${m[1]}:${m[2]}` : undefined;
}

/** A layer of a signature manifest. */
export interface LayerDesc {
  mediaType?: string;
  digest: string;
  annotations?: Record<string, string>;
}

/**
 * Verifies one layer of a tag-scheme signature manifest: `payload` is the layer's bytes,
 * `target` the digest it must sign.
 */
export function verifySimpleSigning(layer: LayerDesc, payload: Uint8Array, target: string, trust: TrustSet, now: number): Verdict {
  const sigText = layer.annotations?.[SIGNATURE_ANNOTATION];
  if (!sigText) return fail(`layer ${layer.digest} has no ${SIGNATURE_ANNOTATION} annotation`);
  let doc: { critical?: { image?: Record<string, unknown>; type?: unknown } };
  try {
    doc = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return fail(`the payload ${layer.digest} is not JSON`);
  }
  const signed = doc?.critical?.image?.["docker-manifest-digest"];
  if (typeof signed !== "string") return fail("the payload has no critical.image.docker-manifest-digest");
  if (signed !== target) return fail(`the payload signs ${signed}, not ${target}`);
  const sig = Buffer.from(sigText, "base64");
  const certPem = layer.annotations?.[CERT_ANNOTATION];
  if (certPem) {
    const chainPem = layer.annotations?.[CHAIN_ANNOTATION] ?? "";
    const tooLong = chainTooLong(countPemCertificates(certPem) + countPemCertificates(chainPem));
    if (tooLong) return fail(tooLong);
    const chain = [...certificatesOfPem(certPem), ...certificatesOfPem(chainPem)];
    return byCertificate(chain, payload, sig, trust, now);
  }
  return byKey(payload, sig, trust);
}

/** Tries every trusted key; the first that verifies names the author. */
function byKey(data: Uint8Array, sig: Uint8Array, trust: TrustSet): Verdict {
  if (trust.keys.length === 0) return fail("no public key is installed in the trust store");
  for (const k of trust.keys) if (verifySignature(k.key, data, sig)) return { verified: true, author: k.name };
  return fail(`the signature does not verify with any of the ${trust.keys.length} trusted public keys`);
}

/** A certificate-based signature: the leaf must chain to a trusted CA and its key must verify. */
function byCertificate(chain: X509Certificate[], data: Uint8Array, sig: Uint8Array, trust: TrustSet, now: number): Verdict {
  const leaf = chain[0];
  if (!leaf) return fail("the certificate annotation holds no certificate that parses");
  // a leaf whose key is itself installed counts as that key
  const own = trust.keys.find((k) => k.key.equals(leaf.publicKey));
  if (own) return verifySignature(own.key, data, sig) ? { verified: true, author: own.name } : fail(`the signature does not verify with the certificate's key "${own.name}"`);
  const checked = verifyChain(chain, trust.cas, [now]);
  if (!checked.ok) return fail(checked.reason);
  if (!verifySignature(leaf.publicKey, data, sig)) return fail(`the signature does not verify with the key of certificate "${checked.subject}"`);
  return { verified: true, author: checked.subject || oneLine(leaf.subjectAltName ?? "") };
}

/** The DSSE pre-authentication encoding: "DSSEv1 <len(type)> <type> <len(body)> <body>". */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = Buffer.from(payloadType, "utf8");
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

interface BundleDoc {
  mediaType?: string;
  verificationMaterial?: {
    publicKey?: { hint?: string };
    certificate?: { rawBytes?: string };
    x509CertificateChain?: { certificates?: { rawBytes?: string }[] };
  };
  dsseEnvelope?: { payload?: string; payloadType?: string; signatures?: { sig?: string; keyid?: string }[] };
  messageSignature?: { messageDigest?: { algorithm?: string; digest?: string }; signature?: string };
}

/**
 * Verifies a sigstore bundle (v0.3) signing `target`. `targetBytes` (the signed manifest's
 * bytes) is needed only for a message-signature bundle; undefined when the image is absent.
 */
export function verifyBundle(bundleBytes: Uint8Array, target: string, targetBytes: Uint8Array | undefined, trust: TrustSet, now: number): Verdict {
  let b: BundleDoc;
  try {
    b = JSON.parse(new TextDecoder().decode(bundleBytes));
  } catch {
    return fail("the sigstore bundle is not JSON");
  }
  if (typeof b !== "object" || b === null) return fail("the sigstore bundle is not a JSON object");
  if (b.mediaType !== BUNDLE_V03) return fail(`sigstore bundle media type ${JSON.stringify(b.mediaType)} is not ${BUNDLE_V03}`);
  let data: Uint8Array;
  let sig: Uint8Array;
  if (b.dsseEnvelope) {
    const env = b.dsseEnvelope;
    if (env.payloadType !== IN_TOTO) return fail(`the DSSE payload type ${JSON.stringify(env.payloadType)} is not ${IN_TOTO}`);
    const payload = Buffer.from(env.payload ?? "", "base64");
    const problem = statementProblem(payload, target);
    if (problem) return fail(problem);
    const first = env.signatures?.[0]?.sig;
    if (!first) return fail("the DSSE envelope has no signature");
    data = pae(IN_TOTO, payload);
    sig = Buffer.from(first, "base64");
  } else if (b.messageSignature) {
    const ms = b.messageSignature;
    if (ms.messageDigest?.algorithm !== "SHA2_256") return fail(`message digest algorithm ${JSON.stringify(ms.messageDigest?.algorithm)} is not SHA2_256`);
    const hex = Buffer.from(ms.messageDigest.digest ?? "", "base64").toString("hex");
    if (`sha256:${hex}` !== target) return fail(`the bundle signs sha256:${hex}, not ${target}`);
    if (!targetBytes) return fail(`the signed manifest ${target} is not stored yet`);
    if (createHash("sha256").update(targetBytes).digest("hex") !== hex) return fail("the signed manifest's bytes do not match the bundle's message digest");
    if (!ms.signature) return fail("the message signature is empty");
    data = targetBytes;
    sig = Buffer.from(ms.signature, "base64");
  } else {
    return fail("the sigstore bundle has neither a DSSE envelope nor a message signature");
  }
  const vm = b.verificationMaterial ?? {};
  const raw = vm.certificate?.rawBytes ? [vm.certificate.rawBytes] : (vm.x509CertificateChain?.certificates ?? []).map((c) => c.rawBytes ?? "");
  if (raw.length > 0) {
    const tooLong = chainTooLong(raw.length);
    if (tooLong) return fail(tooLong);
    const chain = raw.map((r) => certificateOf(Buffer.from(r, "base64")));
    if (chain.some((c) => c === undefined)) return fail("a certificate of the bundle does not parse");
    return byCertificate(chain as X509Certificate[], data, sig, trust, now);
  }
  return byKey(data, sig, trust);
}

/** Why an in-toto statement does not name `target` as its subject, or undefined when it does. */
function statementProblem(payload: Uint8Array, target: string): string | undefined {
  let st: { _type?: unknown; subject?: { digest?: Record<string, unknown> }[] };
  try {
    st = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return "the DSSE payload is not a JSON in-toto statement";
  }
  if (typeof st?._type !== "string" || !st._type.startsWith("https://in-toto.io/Statement/")) return `the DSSE payload type ${JSON.stringify(st?._type)} is not an in-toto statement`;
  const [alg, hex] = target.split(":");
  const subjects = Array.isArray(st.subject) ? st.subject : [];
  if (subjects.some((s) => s?.digest?.[alg!] === hex)) return undefined;
  const named = subjects.map((s) => Object.entries(s?.digest ?? {}).map(([a, h]) => `${a}:${String(h)}`).join(",")).join(" ");
  return `the in-toto statement's subject is ${named || "empty"}, not ${target}`;
}

function fail(reason: string): Verdict {
  return { verified: false, author: "", reason };
}
