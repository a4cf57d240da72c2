/**
 * `require_signature` through a signed index, at the scale a push right allows (trust/status.ts
 * `trust_signed_parents`): hundreds of unsigned indexes listing a child, pushed in one burst
 * past the in-memory refresh bound, hide no signed index, and the decision reads a constant
 * number of manifests however many indexes list the child; tables created over an existing
 * registry (an upgrade) are backfilled, so the signed index counts before anyone reads it.
 * A TrustIndex over a real derived index (meta.ts) in memory and a registry model in a map.
 */
import { expect, test } from "bun:test";
import { Meta } from "../../daemon/meta/meta";
import { parseManifest } from "../../daemon/oci/manifest";
import { openDatabase } from "../../daemon/platform/sqlite";
import { SIGNATURE_ANNOTATION, SIMPLE_SIGNING } from "../../daemon/trust/cosign";
import { TrustIndex, type TrustSource } from "../../daemon/trust/status";
import { cosignSign, digestOf, keyPair, simplePayload, trustOf } from "./fixtures";

const INDEX = "application/vnd.oci.image.index.v1+json";
const IMAGE = "application/vnd.oci.image.manifest.v1+json";
const REPO = "secure/app";

/** A repository in memory, indexed into meta as the registry would. */
function registry() {
  const db = openDatabase(":memory:");
  const meta = new Meta(db);
  const manifests = new Map<string, Uint8Array>();
  const tags = new Map<string, string>();
  const blobs = new Map<string, Uint8Array>();
  let stamp = 0;
  const reads = { manifests: 0 };
  const put = (doc: object, mediaType: string, tag?: string): string => {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, ...doc }));
    const digest = digestOf(bytes);
    manifests.set(digest, bytes);
    if (tag) tags.set(tag, digest);
    meta.addManifest(REPO, String(++stamp), { digest, mediaType, size: bytes.length, parsed: parseManifest(bytes, mediaType) });
    return digest;
  };
  const source: TrustSource = {
    stamp: async () => String(stamp),
    manifest: async (_repo, ref) => {
      reads.manifests++;
      const digest = ref.startsWith("sha256:") ? ref : tags.get(ref);
      const bytes = digest ? manifests.get(digest) : undefined;
      return digest && bytes ? { digest, bytes } : undefined;
    },
    blob: async (_repo, digest) => blobs.get(digest),
    referrers: async () => [],
    parents: (repo, digest) => meta.parentsOf(repo, digest),
  };
  const empty = Buffer.from("{}");
  blobs.set(digestOf(empty), empty);
  const config = { mediaType: "application/vnd.oci.image.config.v1+json", digest: digestOf(empty), size: 2 };
  const image = (content: string) => {
    const layer = Buffer.from(content);
    blobs.set(digestOf(layer), layer);
    return put({ config, layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: digestOf(layer), size: layer.length }] }, IMAGE);
  };
  const index = (children: string[], n: number, tag?: string) =>
    put({ manifests: children.map((c) => ({ mediaType: IMAGE, digest: c, size: manifests.get(c)!.length })), annotations: { n: String(n) } }, INDEX, tag);
  const sign = (target: string, pair: ReturnType<typeof keyPair>) => {
    const payload = simplePayload(target);
    blobs.set(digestOf(payload), payload);
    return put({ config, layers: [{ mediaType: SIMPLE_SIGNING, digest: digestOf(payload), size: payload.length, annotations: { [SIGNATURE_ANNOTATION]: cosignSign(pair, payload) } }] }, IMAGE, `${target.replace(":", "-")}.sig`);
  };
  return { db, source, reads, image, index, sign };
}

test("a burst of 300 unsigned indexes listing a child, past the refresh bound, hides no signed one; the decision reads a constant number of manifests", async () => {
  const r = registry();
  const pair = keyPair("p256");
  const trust = trustOf({ pem: pair.publicPem, name: "release.pub" });
  const index = new TrustIndex(r.db, r.source, () => trust);
  const child = r.image("child");
  const signed = r.index([child], -1, "v1");
  index.refresh(REPO, signed);
  index.refresh(REPO, r.sign(signed, pair));
  // pushed in one go: the drain runs only after all 300 refreshes were asked for; at least 16
  // of them sort before the signed index (a look at the first parents in digest order misses it)
  let before = 0;
  for (let i = 0; i < 300 || before < 16; i++) {
    const d = r.index([child], i);
    index.refresh(REPO, d);
    if (d < signed) before++;
  }
  await index.idle();
  r.reads.manifests = 0;
  const verdict = await index.servable(REPO, child);
  expect(verdict).toMatchObject({ ok: true });
  expect((verdict as { by: string }).by).toContain(`on index ${signed}`);
  // the child's own status, and the one signed index: nothing of the 300 others is read
  expect(r.reads.manifests).toBeLessThanOrEqual(4);
  const other = r.image("other");
  for (let i = 0; i < 20; i++) index.refresh(REPO, r.index([other], 1000 + i));
  await index.idle();
  expect(await index.servable(REPO, other)).toEqual({ ok: false, reason: `${other} has no signature` });
});

test("tables created over an existing registry are backfilled: the signed index counts before anyone reads it", async () => {
  const r = registry();
  const pair = keyPair("p256");
  const trust = trustOf({ pem: pair.publicPem, name: "release.pub" });
  const child = r.image("child");
  const signed = r.index([child], -1, "v1");
  let before = 0;
  for (let i = 0; i < 40 || before < 16; i++) if (r.index([child], i) < signed) before++;
  r.sign(signed, pair);
  // the registry existed before the trust module: no refresh was ever asked for
  const index = new TrustIndex(r.db, r.source, () => trust);
  await index.idle();
  r.reads.manifests = 0;
  expect(await index.servable(REPO, child)).toMatchObject({ ok: true });
  expect(r.reads.manifests).toBeLessThanOrEqual(4);
});
