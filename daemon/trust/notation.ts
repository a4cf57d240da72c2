/**
 * Notary Project (notation) signatures in the JWS envelope, verified offline: a manifest of
 * artifact type `application/vnd.cncf.notary.signature` whose layer
 * (`application/jose+json`) is a JWS JSON serialization. The protected header must carry
 * the notation content type, a supported `alg` (PS256/384/512, ES256/384/512), the
 * `io.cncf.notary.signingScheme` "notary.x509" with a signing time, and list in `crit` only
 * headers understood here; `io.cncf.notary.expiry`, when present, must not have passed. The
 * payload's `targetArtifact.digest` must be the signed manifest's digest. The certificates
 * in the unprotected `x5c` header (leaf first, base64 DER) must chain to a CA of the trust
 * store and be valid both now and at the signing time.
 */
import { type X509Certificate } from "node:crypto";
import { certificateOf, chainTooLong, type HashName, type TrustSet, verifyChain, verifySignature } from "./keys";
import type { Verdict } from "./cosign";

/** Artifact type of a notation signature manifest. */
export const NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature";
/** Media type of the JWS envelope layer. */
export const JWS_ENVELOPE = "application/jose+json";
const PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json";
const SCHEME = "io.cncf.notary.signingScheme";
const SIGNING_TIME = "io.cncf.notary.signingTime";
const EXPIRY = "io.cncf.notary.expiry";
/** Critical headers this verifier understands. */
const UNDERSTOOD = new Set([SCHEME, EXPIRY]);

const ALGS: Record<string, { hash: HashName; rsa?: "pss"; curve?: string }> = {
  PS256: { hash: "sha256", rsa: "pss" },
  PS384: { hash: "sha384", rsa: "pss" },
  PS512: { hash: "sha512", rsa: "pss" },
  ES256: { hash: "sha256", curve: "prime256v1" },
  ES384: { hash: "sha384", curve: "secp384r1" },
  ES512: { hash: "sha512", curve: "secp521r1" },
};

interface Jws {
  payload?: string;
  protected?: string;
  header?: { x5c?: unknown };
  signature?: string;
}

/** Verifies a JWS envelope signing `target` with the trust store, at time `now` (ms). */
export function verifyJws(envelope: Uint8Array, target: string, trust: TrustSet, now: number): Verdict {
  let jws: Jws;
  try {
    jws = JSON.parse(new TextDecoder().decode(envelope));
  } catch {
    return fail("the JWS envelope is not JSON");
  }
  if (typeof jws !== "object" || jws === null || typeof jws.protected !== "string" || typeof jws.payload !== "string" || typeof jws.signature !== "string") {
    return fail("the JWS envelope lacks payload, protected or signature");
  }
  let header: Record<string, unknown>;
  let payload: { targetArtifact?: { digest?: unknown } };
  try {
    header = JSON.parse(Buffer.from(jws.protected, "base64url").toString("utf8"));
    payload = JSON.parse(Buffer.from(jws.payload, "base64url").toString("utf8"));
  } catch {
    return fail("the JWS protected header or payload is not base64url JSON");
  }
  const alg = ALGS[String(header.alg)];
  if (!alg) return fail(`JWS alg ${JSON.stringify(header.alg)} is not one of ${Object.keys(ALGS).join(", ")}`);
  if (header.cty !== PAYLOAD_TYPE) return fail(`JWS cty ${JSON.stringify(header.cty)} is not ${PAYLOAD_TYPE}`);
  const crit = header.crit;
  if (!Array.isArray(crit) || !crit.includes(SCHEME)) return fail(`JWS crit must list ${SCHEME}`);
  const unknown = crit.find((c) => !UNDERSTOOD.has(String(c)) || !(String(c) in header));
  if (unknown !== undefined) return fail(`JWS critical header ${JSON.stringify(unknown)} is not supported or is missing`);
  if (header[SCHEME] !== "notary.x509") return fail(`signing scheme ${JSON.stringify(header[SCHEME])} is not supported (only notary.x509; a signing authority needs a timestamp service)`);
  const signingTime = typeof header[SIGNING_TIME] === "string" ? Date.parse(header[SIGNING_TIME] as string) : Number.NaN;
  if (Number.isNaN(signingTime)) return fail(`JWS ${SIGNING_TIME} is missing or not a time`);
  if (signingTime > now + 5 * 60_000) return fail(`the signing time ${new Date(signingTime).toISOString()} is in the future`);
  if (header[EXPIRY] !== undefined) {
    const expiry = typeof header[EXPIRY] === "string" ? Date.parse(header[EXPIRY] as string) : Number.NaN;
    if (Number.isNaN(expiry)) return fail(`JWS ${EXPIRY} is not a time`);
    if (expiry <= now) return fail(`the signature expired at ${new Date(expiry).toISOString()}`);
  }
  const signed = payload?.targetArtifact?.digest;
  if (typeof signed !== "string") return fail("the JWS payload has no targetArtifact.digest");
  if (signed !== target) return fail(`the signature is for ${signed}, not ${target}`);
  const x5c = Array.isArray(jws.header?.x5c) ? jws.header.x5c : [];
  if (x5c.length === 0) return fail("the JWS header has no x5c certificate chain");
  const tooLong = chainTooLong(x5c.length);
  if (tooLong) return fail(tooLong);
  const chain = x5c.map((c) => (typeof c === "string" ? certificateOf(Buffer.from(c, "base64")) : undefined));
  if (chain.some((c) => c === undefined)) return fail("a certificate of the x5c chain does not parse");
  const certs = chain as X509Certificate[];
  const leafKey = certs[0]!.publicKey;
  if (alg.curve && leafKey.asymmetricKeyDetails?.namedCurve !== alg.curve) return fail(`JWS alg ${String(header.alg)} does not match the certificate's key`);
  if (alg.rsa && leafKey.asymmetricKeyType !== "rsa" && leafKey.asymmetricKeyType !== "rsa-pss") return fail(`JWS alg ${String(header.alg)} needs an RSA certificate`);
  const checked = verifyChain(certs, trust.cas, [now, signingTime]);
  if (!checked.ok) return fail(checked.reason);
  const input = Buffer.from(`${jws.protected}.${jws.payload}`, "ascii");
  const sig = Buffer.from(jws.signature, "base64url");
  const ok = verifySignature(leafKey, input, sig, { hash: alg.hash, ...(alg.rsa ? { rsa: alg.rsa } : { ecdsa: "p1363" as const }) });
  if (!ok) return fail(`the JWS signature does not verify with the key of certificate "${checked.subject}"`);
  return { verified: true, author: checked.subject };
}

function fail(reason: string): Verdict {
  return { verified: false, author: "", reason };
}
