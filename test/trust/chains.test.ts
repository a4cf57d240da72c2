/**
 * A signature's certificate chain is bounded before it is parsed (review of trust): each
 * extra certificate whose issuer name matches cost one signature verification per chain
 * step, and a 1 MiB signature blob (or a manifest annotation) holds thousands, so one
 * pushed signature could hold the event loop for seconds at every status computation.
 * A chain of the longest accepted length still verifies.
 */
import { afterAll, expect, test } from "bun:test";
import { SIGNATURE_ANNOTATION, SIMPLE_SIGNING, verifyBundle, verifySimpleSigning } from "../../daemon/trust/cosign";
import { verifyJws } from "../../daemon/trust/notation";
import { MAX_CHAIN_CERTS } from "../../daemon/trust/keys";
import { cosignSign, der, digestOf, dsseBundle, keyPair, makePki, notationJws, simplePayload, trustOf } from "./fixtures";

const TARGET = digestOf("the image manifest");
const pki = makePki();
const now = Date.now() + 2000;
afterAll(() => pki[Symbol.dispose]());
const trust = trustOf({ pem: pki.caPem, name: "ca.pem" });
// certificates named like the leaf's issuer that did not issue it: each one a failed verification
const decoys = (n: number) => Array.from({ length: n }, () => der(pki.otherCaPem));

test("notation: an x5c of many certificates is refused before any is parsed; a normal one verifies", () => {
  const bomb = verifyJws(notationJws(pki.leaf, TARGET, { chain: [...decoys(200), der(pki.interPem)] }), TARGET, trust, now);
  expect(bomb.verified).toBe(false);
  expect(bomb.reason).toContain(`at most ${MAX_CHAIN_CERTS}`);
  expect(verifyJws(notationJws(pki.leaf, TARGET, { chain: [...decoys(MAX_CHAIN_CERTS - 2), der(pki.interPem)] }), TARGET, trust, now).verified).toBe(true);
});

test("cosign: a certificate chain annotation of many certificates is refused", () => {
  const payload = simplePayload(TARGET);
  const sig = cosignSign({ type: "rsa", privateKey: pki.leaf.key, publicPem: "" }, payload);
  const layer = (chain: string) => ({ mediaType: SIMPLE_SIGNING, digest: digestOf(payload), annotations: { [SIGNATURE_ANNOTATION]: sig, "dev.sigstore.cosign/certificate": pki.leaf.pem, "dev.sigstore.cosign/chain": chain } });
  const bomb = verifySimpleSigning(layer(pki.otherCaPem.repeat(200) + pki.interPem), payload, TARGET, trust, now);
  expect(bomb.reason).toContain(`at most ${MAX_CHAIN_CERTS}`);
  expect(verifySimpleSigning(layer(pki.interPem), payload, TARGET, trust, now).verified).toBe(true);
});

test("sigstore bundle: a certificate list of many certificates is refused", () => {
  const pair = keyPair("p256");
  const bundle = JSON.parse(Buffer.from(dsseBundle(pair, TARGET, { certDer: der(pki.interPem) })).toString());
  bundle.verificationMaterial = { x509CertificateChain: { certificates: decoys(200).map((d) => ({ rawBytes: d.toString("base64") })) }, tlogEntries: [] };
  const v = verifyBundle(Buffer.from(JSON.stringify(bundle)), TARGET, undefined, trust, now);
  expect(v.reason).toContain(`at most ${MAX_CHAIN_CERTS}`);
});
