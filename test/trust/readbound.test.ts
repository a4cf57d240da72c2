/**
 * The work one trust status costs is bounded by what a push right can add (trust/status.ts
 * MAX_EXTRA_SIGNATURE_READS): 64 signature referrers of 16 layers each made every recomputation read
 * 1,040 signature blobs of up to 1 MiB, and any push (a new stamp) made the next pull recompute.
 * The first layer of every signature manifest is still read, so the bound hides no signature
 * the 64-referrer bound did not already.
 */
import { expect, test } from "bun:test";
import { Meta } from "../../daemon/meta/meta";
import { openDatabase } from "../../daemon/platform/sqlite";
import { SIGNATURE_ANNOTATION, SIMPLE_SIGNING } from "../../daemon/trust/cosign";
import { TrustIndex, type TrustSource } from "../../daemon/trust/status";
import { cosignSign, digestOf, keyPair, simplePayload, trustOf } from "./fixtures";

const IMAGE = "application/vnd.oci.image.manifest.v1+json";
const REPO = "secure/app";

test("64 signature referrers of 16 layers each cost a bounded number of blob reads; a tagged signature still verifies", async () => {
  const db = openDatabase(":memory:");
  new Meta(db);
  const pair = keyPair("p256");
  const trust = trustOf({ pem: pair.publicPem, name: "release.pub" });
  const manifests = new Map<string, Uint8Array>();
  const tags = new Map<string, string>();
  const blobs = new Map<string, Uint8Array>();
  const put = (doc: object, tag?: string) => {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: IMAGE, ...doc }));
    const digest = digestOf(bytes);
    manifests.set(digest, bytes);
    if (tag) tags.set(tag, digest);
    return digest;
  };
  const empty = Buffer.from("{}");
  blobs.set(digestOf(empty), empty);
  const config = { mediaType: "application/vnd.oci.image.config.v1+json", digest: digestOf(empty), size: 2 };
  const layer = Buffer.from("child");
  blobs.set(digestOf(layer), layer);
  const child = put({ config, layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: digestOf(layer), size: layer.length }] });
  // a pile of signatures by nobody trusted, as referrers of the child
  const referrers: { digest: string }[] = [];
  for (let i = 0; i < 64; i++) {
    const layers = [];
    for (let j = 0; j < 16; j++) {
      const payload = Buffer.from(`${simplePayload(child).toString()} ${i}-${j}`);
      blobs.set(digestOf(payload), payload);
      layers.push({ mediaType: SIMPLE_SIGNING, digest: digestOf(payload), size: payload.length, annotations: { [SIGNATURE_ANNOTATION]: "AAAA" } });
    }
    referrers.push({ digest: put({ config, layers, subject: { mediaType: IMAGE, digest: child, size: 1 } }) });
  }
  let blobReads = 0;
  let stamp = 1;
  const source: TrustSource = {
    stamp: async () => String(stamp),
    manifest: async (_repo, ref) => {
      const digest = ref.startsWith("sha256:") ? ref : tags.get(ref);
      const bytes = digest ? manifests.get(digest) : undefined;
      return digest && bytes ? { digest, bytes } : undefined;
    },
    blob: async (_repo, digest) => {
      blobReads++;
      return blobs.get(digest);
    },
    referrers: async () => referrers,
    parents: () => [],
  };
  const index = new TrustIndex(db, source, () => trust);
  await index.idle();
  const refused = await index.servable(REPO, child);
  expect(refused.ok).toBe(false);
  expect(blobReads).toBeGreaterThan(0);
  expect(blobReads).toBeLessThanOrEqual(64 + 64 + 1);
  // the release signature is the cosign tag's: read first, it still decides
  const payload = simplePayload(child);
  blobs.set(digestOf(payload), payload);
  put({ config, layers: [{ mediaType: SIMPLE_SIGNING, digest: digestOf(payload), size: payload.length, annotations: { [SIGNATURE_ANNOTATION]: cosignSign(pair, payload) } }] }, `${child.replace(":", "-")}.sig`);
  stamp++;
  blobReads = 0;
  expect((await index.servable(REPO, child)).ok).toBe(true);
  expect(blobReads).toBeLessThanOrEqual(64 + 64 + 1);
});
