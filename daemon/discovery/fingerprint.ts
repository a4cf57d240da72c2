/**
 * Certificate fingerprints: SHA-256 over the DER encoding, written `sha256:<hex>`, the same
 * value `openssl x509 -noout -fingerprint -sha256` prints (without colons, lowercase).
 */
import { createHash } from "node:crypto";

/** The DER bytes of the first certificate in a PEM text; throws when there is none. */
export function firstCertificateDer(pem: string): Uint8Array {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem);
  if (!m) throw new Error("no PEM certificate found");
  return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ""), "base64"));
}

/** `sha256:<hex>` of DER bytes. */
export function fingerprintDer(der: Uint8Array): string {
  return `sha256:${createHash("sha256").update(der).digest("hex")}`;
}

/** DER bytes as a PEM certificate. */
export function derToPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}
