/**
 * The trust material an operator installs and the checks made with it, free of I/O: public
 * keys (cosign's key-based signatures) and CA certificates (certificate chains of cosign
 * signatures and notation's X.509 chains), parsed from PEM with node:crypto, which Bun
 * implements. A signature is checked against a key by its key type: ECDSA (P-256, P-384;
 * DER or IEEE P1363 encoded), RSA (PKCS#1 v1.5 or PSS) and Ed25519.
 */
import { type KeyObject, X509Certificate, constants, createHash, createPublicKey, verify } from "node:crypto";

/** A public key the operator trusts (cosign, key-based). */
export interface TrustedKey {
  kind: "key";
  /** Short stable id: the first 16 hex digits of the SHA-256 of the key's SPKI DER. */
  id: string;
  /** A human name: the file name it was installed under. */
  name: string;
  key: KeyObject;
  pem: string;
}

/** A CA certificate the operator trusts (certificate chains: cosign and notation). */
export interface TrustedCa {
  kind: "ca";
  id: string;
  name: string;
  cert: X509Certificate;
  pem: string;
}

/** What signatures are verified against. */
export interface TrustSet {
  keys: readonly TrustedKey[];
  cas: readonly TrustedCa[];
}

/** The empty trust set: nothing verifies. */
export const NO_TRUST: TrustSet = { keys: [], cas: [] };

/** A PEM text that is neither a public key nor a certificate, or one that does not parse. */
export class TrustMaterialError extends Error {}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/**
 * Parses a PEM text into trusted keys and CA certificates (several blocks may follow each
 * other). `name` names them. Throws {@link TrustMaterialError} for a private key, an
 * unknown block or a text without PEM.
 */
export function parseTrustPem(text: string, name: string): (TrustedKey | TrustedCa)[] {
  const out: (TrustedKey | TrustedCa)[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    const label = m[1]!;
    const pem = `${m[0]}\n`;
    try {
      if (label === "PUBLIC KEY") {
        const key = createPublicKey(pem);
        out.push({ kind: "key", id: keyId(key), name, key, pem });
      } else if (label === "CERTIFICATE") {
        const cert = new X509Certificate(pem);
        out.push({ kind: "ca", id: cert.fingerprint256.replaceAll(":", "").slice(0, 16).toLowerCase(), name, cert, pem });
      } else {
        throw new TrustMaterialError(`"${name}" holds a PEM block "${label}"; only PUBLIC KEY and CERTIFICATE are accepted`);
      }
    } catch (err) {
      if (err instanceof TrustMaterialError) throw err;
      throw new TrustMaterialError(`"${name}" holds a ${label} that does not parse (${(err as Error).message})`);
    }
  }
  if (out.length === 0) throw new TrustMaterialError(`"${name}" holds no PEM block (PUBLIC KEY or CERTIFICATE)`);
  return out;
}

/** The id of a public key: the first 16 hex digits of SHA-256 over its SPKI DER. */
export function keyId(key: KeyObject): string {
  return createHash("sha256").update(key.export({ type: "spki", format: "der" })).digest("hex").slice(0, 16);
}

/** Hash names of node:crypto by JWS/sigstore size. */
export type HashName = "sha256" | "sha384" | "sha512";

/** How a signature is laid out, when the key type leaves a choice. */
export interface SigningScheme {
  /** The digest algorithm; Ed25519 ignores it. Default: by key (P-384: sha384, else sha256). */
  hash?: HashName;
  /** RSA padding: PKCS#1 v1.5 (default) or PSS (salt length = hash length, as JWS PS* and cosign use). */
  rsa?: "pkcs1" | "pss";
  /** ECDSA encoding: DER (cosign, default) or r||s (JWS ES*). */
  ecdsa?: "der" | "p1363";
}

/**
 * True when `signature` over `data` verifies with `key`. For RSA without a stated padding,
 * PKCS#1 v1.5 and then PSS are tried (cosign accepts both for RSA keys). Never throws.
 */
export function verifySignature(key: KeyObject, data: Uint8Array, signature: Uint8Array, scheme: SigningScheme = {}): boolean {
  try {
    const type = key.asymmetricKeyType;
    if (type === "ed25519") return verify(null, data, key, signature);
    if (type === "ec") {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const hash = scheme.hash ?? (curve === "secp384r1" ? "sha384" : curve === "secp521r1" ? "sha512" : "sha256");
      if (scheme.ecdsa) return verify(hash, data, { key, dsaEncoding: scheme.ecdsa === "p1363" ? "ieee-p1363" : "der" }, signature);
      return verify(hash, data, { key, dsaEncoding: "der" }, signature) || verify(hash, data, { key, dsaEncoding: "ieee-p1363" }, signature);
    }
    if (type === "rsa" || type === "rsa-pss") {
      const hash = scheme.hash ?? "sha256";
      const pss = () => verify(hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signature);
      if (scheme.rsa === "pss") return pss();
      const pkcs1 = type === "rsa" && verify(hash, data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
      return pkcs1 || (scheme.rsa === undefined && pss());
    }
    return false;
  } catch {
    return false;
  }
}

/** The outcome of a chain check: the leaf's subject, or why it is not trusted. */
export type ChainResult = { ok: true; subject: string; ca: string } | { ok: false; reason: string };

const MAX_CHAIN = 8;
/**
 * Most certificates a signature may carry (leaf, intermediates, one spare): checked before
 * any is parsed, since every extra certificate whose issuer name matches costs a signature
 * verification per chain step, and a signature blob of 1 MiB holds thousands.
 */
export const MAX_CHAIN_CERTS = MAX_CHAIN + 2;

/** Why a chain of `count` certificates is not looked at, or undefined when it may be. */
export function chainTooLong(count: number): string | undefined {
  return count > MAX_CHAIN_CERTS ? `the signature carries ${count} certificates; at most ${MAX_CHAIN_CERTS} are read` : undefined;
}

/**
 * Checks that `chain[0]` (the leaf) chains, through the other certificates given, to one of
 * the trusted CAs, and that every certificate on the way is valid at each of `times` (ms
 * since the epoch; e.g. now and a signing time). Intermediates must be CAs.
 */
export function verifyChain(chain: readonly X509Certificate[], cas: readonly TrustedCa[], times: readonly number[]): ChainResult {
  if (chain.length === 0) return { ok: false, reason: "the signature carries no certificate" };
  const tooLong = chainTooLong(chain.length);
  if (tooLong) return { ok: false, reason: tooLong };
  if (cas.length === 0) return { ok: false, reason: "no CA certificate is installed in the trust store" };
  let current = chain[0]!;
  const pool = chain.slice(1);
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    const invalid = outsideValidity(current, times);
    if (invalid) return { ok: false, reason: invalid };
    if (depth > 0 && !current.ca) return { ok: false, reason: `certificate "${oneLine(current.subject)}" issues another certificate but is not a CA` };
    const trusted = cas.find((c) => c.cert.fingerprint256 === current.fingerprint256 || (current.checkIssued(c.cert) && current.verify(c.cert.publicKey)));
    if (trusted) {
      const invalidCa = outsideValidity(trusted.cert, times);
      if (invalidCa) return { ok: false, reason: invalidCa };
      return { ok: true, subject: oneLine(chain[0]!.subject), ca: oneLine(trusted.cert.subject) };
    }
    const issuer = pool.find((c) => c !== current && current.checkIssued(c) && current.verify(c.publicKey));
    if (!issuer) return { ok: false, reason: `certificate "${oneLine(current.subject)}" was not issued by a trusted CA (issuer "${oneLine(current.issuer)}")` };
    current = issuer;
  }
  return { ok: false, reason: `the certificate chain is longer than ${MAX_CHAIN}` };
}

function outsideValidity(cert: X509Certificate, times: readonly number[]): string | undefined {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  for (const t of times) {
    if (t > to) return `certificate "${oneLine(cert.subject)}" expired at ${new Date(to).toISOString()}`;
    if (t < from) return `certificate "${oneLine(cert.subject)}" is not valid before ${new Date(from).toISOString()}`;
  }
  return undefined;
}

/** A certificate subject on one line ("CN=leaf, O=acme"). */
export function oneLine(subject: string): string {
  return subject.split("\n").filter(Boolean).join(", ");
}

/** Parses a DER (or PEM) certificate; undefined when it does not parse. */
export function certificateOf(bytes: Uint8Array | string): X509Certificate | undefined {
  try {
    return new X509Certificate(typeof bytes === "string" ? bytes : Buffer.from(bytes));
  } catch {
    return undefined;
  }
}

/** How many CERTIFICATE blocks a PEM text holds (counted without parsing them). */
export function countPemCertificates(text: string): number {
  let n = 0;
  for (const m of text.matchAll(PEM_BLOCK)) if (m[1] === "CERTIFICATE") n++;
  return n;
}

/** Every certificate of a PEM text (a chain); empty when none parses. */
export function certificatesOfPem(text: string): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    if (m[1] !== "CERTIFICATE") continue;
    const c = certificateOf(m[0]);
    if (c) out.push(c);
  }
  return out;
}
