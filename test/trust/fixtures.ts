/**
 * Signatures built in the tests from the formats' specifications: cosign simple-signing
 * payloads and sigstore bundles signed with node:crypto keys, notation JWS envelopes signed
 * with openssl-made certificates (a CA, an intermediate, leaves).
 */
import { constants, createHash, createPrivateKey, generateKeyPairSync, type KeyObject, sign, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseTrustPem, type TrustSet, type TrustedCa, type TrustedKey } from "../../daemon/trust/keys";

/** Key types cosign accepts. */
export type KeyType = "p256" | "p384" | "rsa" | "ed25519";

/** A key pair with its public PEM. */
export interface Pair {
  type: KeyType;
  privateKey: KeyObject;
  publicPem: string;
}

/** A fresh key pair of `type`. */
export function keyPair(type: KeyType): Pair {
  const pair = type === "p256" ? generateKeyPairSync("ec", { namedCurve: "P-256" })
    : type === "p384" ? generateKeyPairSync("ec", { namedCurve: "P-384" })
    : type === "rsa" ? generateKeyPairSync("rsa", { modulusLength: 2048 })
    : generateKeyPairSync("ed25519");
  return { type, privateKey: pair.privateKey, publicPem: pair.publicKey.export({ type: "spki", format: "pem" }).toString() };
}

/** Signs `data` as cosign does for `pair`'s key type (`pss` for RSA-PSS). */
export function cosignSign(pair: Pair, data: Uint8Array, pss = false): string {
  if (pair.type === "ed25519") return sign(null, data, pair.privateKey).toString("base64");
  const hash = pair.type === "p384" ? "sha384" : "sha256";
  if (pair.type === "rsa" && pss) return sign(hash, data, { key: pair.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }).toString("base64");
  return sign(hash, data, pair.privateKey).toString("base64");
}

/** A simple-signing payload for `digest`, as cosign and skopeo write it. */
export function simplePayload(digest: string, ref = "registry.example/app"): Uint8Array {
  return Buffer.from(JSON.stringify({ critical: { identity: { "docker-reference": ref }, image: { "docker-manifest-digest": digest }, type: "cosign container image signature" }, optional: null }));
}

/** sha256 digest of bytes. */
export function digestOf(bytes: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** A trust set of the given PEM texts (keys and CA certificates). */
export function trustOf(...pems: { pem: string; name: string }[]): TrustSet {
  const all = pems.flatMap((p) => parseTrustPem(p.pem, p.name));
  return { keys: all.filter((x): x is TrustedKey => x.kind === "key"), cas: all.filter((x): x is TrustedCa => x.kind === "ca") };
}

/** An in-toto statement about `digest`, DSSE-signed, in a sigstore bundle v0.3 with a public key hint. */
export function dsseBundle(pair: Pair, digest: string, opts: { certDer?: Buffer; tamper?: boolean } = {}): Uint8Array {
  const statement = Buffer.from(JSON.stringify({
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ name: "registry.example/app", digest: { sha256: digest.split(":")[1] } }],
    predicateType: "https://sigstore.dev/cosign/sign/v1",
    predicate: {},
  }));
  const type = "application/vnd.in-toto+json";
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${type.length} ${type} ${statement.length} `), statement]);
  const sig = cosignSign(pair, pae);
  const payload = opts.tamper ? Buffer.from(statement.toString().replace("sign/v1", "sign/v2")) : statement;
  return Buffer.from(JSON.stringify({
    mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
    verificationMaterial: opts.certDer ? { certificate: { rawBytes: opts.certDer.toString("base64") }, tlogEntries: [] } : { publicKey: { hint: "test" }, tlogEntries: [] },
    dsseEnvelope: { payload: payload.toString("base64"), payloadType: type, signatures: [{ sig, keyid: "" }] },
  }));
}

/** A message-signature bundle over `manifest`'s bytes. */
export function messageBundle(pair: Pair, manifest: Uint8Array): Uint8Array {
  return Buffer.from(JSON.stringify({
    mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
    verificationMaterial: { publicKey: { hint: "test" }, tlogEntries: [] },
    messageSignature: { messageDigest: { algorithm: "SHA2_256", digest: createHash("sha256").update(manifest).digest("base64") }, signature: cosignSign(pair, manifest) },
  }));
}

/** openssl-made certificates: a root CA, an intermediate, and leaves. */
export interface Pki extends Disposable {
  dir: string;
  caPem: string;
  interPem: string;
  /** A leaf (RSA, "CN=release signer,O=acme") issued by the intermediate. */
  leaf: { key: KeyObject; pem: string; der: Buffer };
  /** An EC P-256 leaf issued by the intermediate. */
  ecLeaf: { key: KeyObject; pem: string; der: Buffer };
  /** A root CA nobody trusts, and a leaf of it. */
  otherCaPem: string;
  otherLeaf: { key: KeyObject; pem: string; der: Buffer };
}

function openssl(args: string[], cwd: string): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr.toString()}`);
}

/** Makes the certificates with openssl (valid for 10 days from now). */
export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), "berth-pki-"));
  writeFileSync(join(dir, "ca.ext"), "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n");
  writeFileSync(join(dir, "leaf.ext"), "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n");
  const root = (name: string, cn: string) => openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.pem`, "-subj", `/CN=${cn}`, "-days", "10", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"], dir);
  const issue = (name: string, subj: string, issuer: string, ext: string, keyAlg: string[]) => {
    openssl(["req", "-newkey", ...keyAlg, "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subj], dir);
    openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", `${issuer}.pem`, "-CAkey", `${issuer}.key`, "-CAcreateserial", "-out", `${name}.pem`, "-days", "5", "-extfile", ext], dir);
  };
  root("ca", "berth test root");
  issue("inter", "/CN=berth test intermediate", "ca", "ca.ext", ["rsa:2048"]);
  issue("leaf", "/CN=release signer/O=acme", "inter", "leaf.ext", ["rsa:2048"]);
  issue("ecleaf", "/CN=ec signer/O=acme", "inter", "leaf.ext", ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
  root("other", "untrusted root");
  issue("otherleaf", "/CN=intruder", "other", "leaf.ext", ["rsa:2048"]);
  const load = (name: string) => {
    const pem = readFileSync(join(dir, `${name}.pem`), "utf8");
    return { key: createPrivateKey(readFileSync(join(dir, `${name}.key`), "utf8")), pem, der: Buffer.from(new X509Certificate(pem).raw) };
  };
  return {
    dir,
    caPem: readFileSync(join(dir, "ca.pem"), "utf8"),
    interPem: readFileSync(join(dir, "inter.pem"), "utf8"),
    leaf: load("leaf"),
    ecLeaf: load("ecleaf"),
    otherCaPem: readFileSync(join(dir, "other.pem"), "utf8"),
    otherLeaf: load("otherleaf"),
    [Symbol.dispose]() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Options of a notation JWS envelope. */
export interface JwsOptions {
  alg?: "PS256" | "ES256";
  signingTime?: Date;
  expiry?: Date;
  crit?: string[];
  cty?: string;
  /** Certificates after the leaf (DER). */
  chain?: Buffer[];
  tamper?: boolean;
}

/** A notation JWS envelope signing `digest` with `leaf`. */
export function notationJws(leaf: { key: KeyObject; der: Buffer }, digest: string, o: JwsOptions = {}): Uint8Array {
  const alg = o.alg ?? "PS256";
  const header: Record<string, unknown> = {
    alg,
    crit: o.crit ?? ["io.cncf.notary.signingScheme", ...(o.expiry ? ["io.cncf.notary.expiry"] : [])],
    cty: o.cty ?? "application/vnd.cncf.notary.payload.v1+json",
    "io.cncf.notary.signingScheme": "notary.x509",
    "io.cncf.notary.signingTime": (o.signingTime ?? new Date()).toISOString(),
    ...(o.expiry ? { "io.cncf.notary.expiry": o.expiry.toISOString() } : {}),
  };
  const target = { targetArtifact: { mediaType: "application/vnd.oci.image.manifest.v1+json", digest, size: 100 } };
  const protectedB64 = Buffer.from(JSON.stringify(header)).toString("base64url");
  const payloadB64 = Buffer.from(JSON.stringify(target)).toString("base64url");
  const input = Buffer.from(`${protectedB64}.${payloadB64}`);
  const sig = alg === "PS256"
    ? sign("sha256", input, { key: leaf.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
    : sign("sha256", input, { key: leaf.key, dsaEncoding: "ieee-p1363" });
  const payload = o.tamper ? Buffer.from(JSON.stringify({ ...target, extra: 1 })).toString("base64url") : payloadB64;
  return Buffer.from(JSON.stringify({
    payload,
    protected: protectedB64,
    header: { x5c: [leaf.der, ...(o.chain ?? [])].map((d) => d.toString("base64")), "io.cncf.notary.signingAgent": "berth-test" },
    signature: sig.toString("base64url"),
  }));
}

/** DER of a PEM certificate. */
export function der(pem: string): Buffer {
  return Buffer.from(new X509Certificate(pem).raw);
}
