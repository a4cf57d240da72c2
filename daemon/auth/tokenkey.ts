/**
 * The token service's signing key: an ECDSA P-256 private key in a PKCS#8 PEM file
 * (`[auth.token] key_file`), created 0600 on first start and refused when group or world
 * readable. Its `kid` is the RFC 7638 JWK thumbprint of the public key, so a replaced key
 * file makes every token signed with the old one unknown at once.
 */
import { readFileSync } from "node:fs";
import { b64url, type SigningKey } from "./jwt";
import { checkSecretFile, writeSecretFile } from "./secretfile";

const ALG = { name: "ECDSA", namedCurve: "P-256" } as const;
const PEM_LABEL = "PRIVATE KEY";

function toPem(der: ArrayBuffer): string {
  const body = Buffer.from(der).toString("base64").replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN ${PEM_LABEL}-----\n${body}-----END ${PEM_LABEL}-----\n`;
}

function fromPem(text: string, path: string): Uint8Array<ArrayBuffer> {
  const m = /-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----/.exec(text);
  if (!m) throw new Error(`token key file "${path}" is not a PKCS#8 PEM private key ("BEGIN PRIVATE KEY")`);
  return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ""), "base64"));
}

/** Builds a {@link SigningKey} from an extractable P-256 private key. */
export async function signingKeyFrom(privateKey: CryptoKey): Promise<SigningKey> {
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  const pub = { crv: jwk.crv!, kty: jwk.kty!, x: jwk.x!, y: jwk.y! };
  const publicKey = await crypto.subtle.importKey("jwk", pub, ALG, true, ["verify"]);
  // RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace
  const thumb = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(JSON.stringify(pub)));
  return { kid: b64url(new Uint8Array(thumb)), privateKey, publicKey };
}

/** A fresh P-256 signing key (tests, and the first start). */
export async function generateSigningKey(): Promise<SigningKey> {
  const pair = (await crypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  return signingKeyFrom(pair.privateKey);
}

/**
 * Loads the signing key from `path`, creating it (0600, atomically) when it does not exist.
 * Throws with a message naming the file when it is readable beyond its owner or is not a
 * PKCS#8 P-256 key.
 */
export async function loadOrCreateSigningKey(path: string): Promise<SigningKey> {
  if (!checkSecretFile(path)) {
    const key = await generateSigningKey();
    writeSecretFile(path, toPem(await crypto.subtle.exportKey("pkcs8", key.privateKey)));
    return key;
  }
  const der = fromPem(readFileSync(path, "utf8"), path);
  let privateKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey("pkcs8", der, ALG, true, ["sign"]);
  } catch (err) {
    throw new Error(`token key file "${path}" is not an ECDSA P-256 private key (${(err as Error).message})`);
  }
  return signingKeyFrom(privateKey);
}
