/**
 * Offline verification of cosign (tag scheme, sigstore bundles) and notation (JWS)
 * signatures, from signatures built by the fixtures: every key type, and each way a
 * signature must fail (wrong key, tampered payload, another digest, expired certificate,
 * untrusted CA, expired signature, unknown critical header).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { SIGNATURE_ANNOTATION, SIMPLE_SIGNING, verifyBundle, verifySimpleSigning } from "../../daemon/trust/cosign";
import { verifyJws } from "../../daemon/trust/notation";
import { signatureKind, verifySignatureManifest } from "../../daemon/trust/verify";
import { NO_TRUST } from "../../daemon/trust/keys";
import { cosignSign, der, digestOf, dsseBundle, keyPair, makePki, messageBundle, notationJws, simplePayload, trustOf, type KeyType } from "./fixtures";

const TARGET = digestOf("the image manifest");
const OTHER = digestOf("another manifest");
const pki = makePki();
// the certificates' validity starts at the whole second they were made
const now = Date.now() + 2000;
afterAll(() => pki[Symbol.dispose]());

function layer(payload: Uint8Array, sig: string, extra: Record<string, string> = {}) {
  return { mediaType: SIMPLE_SIGNING, digest: digestOf(payload), annotations: { [SIGNATURE_ANNOTATION]: sig, ...extra } };
}

describe("cosign tag scheme", () => {
  for (const type of ["p256", "p384", "rsa", "ed25519"] as KeyType[]) {
    test(`a ${type} signature verifies with its key and names it`, () => {
      const pair = keyPair(type);
      const payload = simplePayload(TARGET);
      const v = verifySimpleSigning(layer(payload, cosignSign(pair, payload)), payload, TARGET, trustOf({ pem: pair.publicPem, name: "release.pub" }), now);
      expect(v).toEqual({ verified: true, author: "release.pub" });
    });
  }

  test("RSA-PSS signatures verify too", () => {
    const pair = keyPair("rsa");
    const payload = simplePayload(TARGET);
    expect(verifySimpleSigning(layer(payload, cosignSign(pair, payload, true)), payload, TARGET, trustOf({ pem: pair.publicPem, name: "k" }), now).verified).toBe(true);
  });

  test("the wrong key does not verify", () => {
    const [signer, other] = [keyPair("p256"), keyPair("p256")];
    const payload = simplePayload(TARGET);
    const v = verifySimpleSigning(layer(payload, cosignSign(signer, payload)), payload, TARGET, trustOf({ pem: other.publicPem, name: "other.pub" }), now);
    expect(v.verified).toBe(false);
    expect(v.reason).toContain("does not verify with any of the 1 trusted public keys");
  });

  test("a tampered payload does not verify", () => {
    const pair = keyPair("p256");
    const payload = simplePayload(TARGET);
    const sig = cosignSign(pair, payload);
    const tampered = simplePayload(TARGET, "registry.example/evil");
    expect(verifySimpleSigning(layer(tampered, sig), tampered, TARGET, trustOf({ pem: pair.publicPem, name: "k" }), now).verified).toBe(false);
  });

  test("a signature for another digest does not count for this one", () => {
    const pair = keyPair("p256");
    const payload = simplePayload(OTHER);
    const v = verifySimpleSigning(layer(payload, cosignSign(pair, payload)), payload, TARGET, trustOf({ pem: pair.publicPem, name: "k" }), now);
    expect(v).toEqual({ verified: false, author: "", reason: `the payload signs ${OTHER}, not ${TARGET}` });
  });

  test("no key installed: not verified, and says so", () => {
    const pair = keyPair("p256");
    const payload = simplePayload(TARGET);
    expect(verifySimpleSigning(layer(payload, cosignSign(pair, payload)), payload, TARGET, NO_TRUST, now).reason).toContain("no public key is installed");
  });

  test("a certificate chained to a configured CA is accepted; an untrusted CA and an expired certificate are not", () => {
    const payload = simplePayload(TARGET);
    const sig = cosignSign({ type: "rsa", privateKey: pki.leaf.key, publicPem: "" }, payload);
    const l = layer(payload, sig, { "dev.sigstore.cosign/certificate": pki.leaf.pem, "dev.sigstore.cosign/chain": pki.interPem });
    const trusted = trustOf({ pem: pki.caPem, name: "ca.pem" });
    expect(verifySimpleSigning(l, payload, TARGET, trusted, now)).toEqual({ verified: true, author: "CN=release signer, O=acme" });
    expect(verifySimpleSigning(l, payload, TARGET, trustOf({ pem: pki.otherCaPem, name: "o" }), now).reason).toContain("was not issued by a trusted CA");
    const later = now + 30 * 86_400_000;
    expect(verifySimpleSigning(l, payload, TARGET, trusted, later).reason).toContain("expired at");
  });
});

describe("cosign sigstore bundle v0.3", () => {
  test("a DSSE in-toto bundle verifies; another digest, a tampered statement and the wrong key do not", () => {
    const pair = keyPair("p256");
    const trust = trustOf({ pem: pair.publicPem, name: "cosign.pub" });
    expect(verifyBundle(dsseBundle(pair, TARGET), TARGET, undefined, trust, now)).toEqual({ verified: true, author: "cosign.pub" });
    expect(verifyBundle(dsseBundle(pair, OTHER), TARGET, undefined, trust, now).reason).toContain("subject is sha256:");
    expect(verifyBundle(dsseBundle(pair, TARGET, { tamper: true }), TARGET, undefined, trust, now).verified).toBe(false);
    expect(verifyBundle(dsseBundle(keyPair("p256"), TARGET), TARGET, undefined, trust, now).verified).toBe(false);
  });

  test("a bundle with a certificate chains to the CA", () => {
    const bundle = dsseBundle({ type: "p256", privateKey: pki.ecLeaf.key, publicPem: "" }, TARGET, { certDer: pki.ecLeaf.der });
    // the bundle carries only the leaf: the intermediate must then be trusted too
    const v = verifyBundle(bundle, TARGET, undefined, trustOf({ pem: pki.interPem, name: "inter.pem" }), now);
    expect(v).toEqual({ verified: true, author: "CN=ec signer, O=acme" });
    expect(verifyBundle(bundle, TARGET, undefined, trustOf({ pem: pki.otherCaPem, name: "o" }), now).verified).toBe(false);
  });

  test("a message-signature bundle verifies over the manifest's bytes", () => {
    const pair = keyPair("ed25519");
    const manifest = Buffer.from("the image manifest");
    const trust = trustOf({ pem: pair.publicPem, name: "k" });
    expect(verifyBundle(messageBundle(pair, manifest), TARGET, manifest, trust, now).verified).toBe(true);
    expect(verifyBundle(messageBundle(pair, Buffer.from("x")), TARGET, manifest, trust, now).reason).toContain("not sha256:");
    expect(verifyBundle(messageBundle(pair, manifest), TARGET, undefined, trust, now).reason).toContain("not stored yet");
  });
});

describe("notation JWS", () => {
  const trust = trustOf({ pem: pki.caPem, name: "ca.pem" });
  const chain = [der(pki.interPem)];

  test("PS256 and ES256 envelopes chained to the CA verify, naming the subject", () => {
    expect(verifyJws(notationJws(pki.leaf, TARGET, { chain }), TARGET, trust, now)).toEqual({ verified: true, author: "CN=release signer, O=acme" });
    expect(verifyJws(notationJws(pki.ecLeaf, TARGET, { alg: "ES256", chain }), TARGET, trust, now).verified).toBe(true);
  });

  test("failures say why", () => {
    const cases: [string, Uint8Array, string, number?][] = [
      ["another digest", notationJws(pki.leaf, OTHER, { chain }), `is for ${OTHER}`],
      ["tampered payload", notationJws(pki.leaf, TARGET, { chain, tamper: true }), "does not verify"],
      ["untrusted CA", notationJws(pki.otherLeaf, TARGET), "not issued by a trusted CA"],
      ["missing intermediate", notationJws(pki.leaf, TARGET), "not issued by a trusted CA"],
      ["expired signature", notationJws(pki.leaf, TARGET, { chain, expiry: new Date(now - 1000) }), "signature expired at"],
      ["expired certificate", notationJws(pki.leaf, TARGET, { chain }), "expired at", now + 30 * 86_400_000],
      ["unknown critical header", notationJws(pki.leaf, TARGET, { chain, crit: ["io.cncf.notary.signingScheme", "io.cncf.notary.verificationPlugin"] }), "is not supported"],
      ["wrong content type", notationJws(pki.leaf, TARGET, { chain, cty: "application/json" }), "cty"],
      ["signed before the certificate", notationJws(pki.leaf, TARGET, { chain, signingTime: new Date(now - 86_400_000) }), "not valid before"],
    ];
    for (const [name, env, reason, at] of cases) {
      const v = verifyJws(env, TARGET, trust, at ?? now);
      expect({ name, verified: v.verified }).toEqual({ name, verified: false });
      expect(v.reason).toContain(reason);
    }
  });

  test("an expiry in the future is fine", () => {
    expect(verifyJws(notationJws(pki.leaf, TARGET, { chain, expiry: new Date(now + 86_400_000) }), TARGET, trust, now).verified).toBe(true);
  });
});

describe("signature manifests", () => {
  test("kinds are told apart and each layer gets a verdict", async () => {
    const pair = keyPair("p256");
    const good = simplePayload(TARGET);
    const bad = simplePayload(OTHER);
    const blobs = new Map([[digestOf(good), good], [digestOf(bad), bad]]);
    const doc = { layers: [layer(good, cosignSign(pair, good)), layer(bad, cosignSign(pair, bad))] };
    expect(signatureKind(doc)).toBe("cosign-tag");
    expect(signatureKind({ artifactType: "application/vnd.cncf.notary.signature", layers: [{ mediaType: "application/jose+json", digest: OTHER }] })).toBe("notation");
    expect(signatureKind({ layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: OTHER }] })).toBeUndefined();
    const out = await verifySignatureManifest(doc, "sha256:sig", TARGET, undefined, async (d) => blobs.get(d), trustOf({ pem: pair.publicPem, name: "k" }), now);
    expect(out.map((s) => [s.tool, s.isTrusted])).toEqual([["cosign", true], ["cosign", false]]);
    const missing = await verifySignatureManifest(doc, "sha256:sig", TARGET, undefined, async () => undefined, NO_TRUST, now);
    expect(missing[0]!.reason).toContain("is missing");
  });
});
