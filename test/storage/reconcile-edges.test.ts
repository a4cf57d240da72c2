/**
 * The derived index rebuilt from a layout edited by another tool (registry reconcile): a
 * manifest listed in index.json whose file is larger than `max_manifest_bytes` is neither
 * read nor indexed, so it cannot show up as a referrer, while the manifests within the bound
 * next to it are indexed as usual.
 */
import { expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createTestRegistry, pushBlob, pushImage, sha256 } from "../helpers/registry";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";

test("a listed manifest over max_manifest_bytes is not indexed; the referrer within the bound is", async () => {
  await using r = await createTestRegistry({ maxManifestBytes: 2048 });
  const img = await pushImage(r, "app", "v1", "subject image");
  await pushBlob(r, "app", "{}");
  const referrer = (pad: number) => JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: "application/vnd.example.sig",
    config: { mediaType: "application/vnd.oci.empty.v1+json", digest: sha256("{}"), size: 2 },
    layers: [{ mediaType: "application/vnd.oci.empty.v1+json", digest: sha256("{}"), size: 2 }],
    subject: { mediaType: OCI_MANIFEST, digest: img.digest, size: img.manifest.length },
    annotations: { pad: "x".repeat(pad) },
  });
  const small = referrer(10);
  const big = referrer(4096); // over the bound: another tool wrote it, berth would have refused it
  const index = JSON.parse(readFileSync(join(r.root, "app/index.json"), "utf8")) as { manifests: unknown[] };
  for (const m of [small, big]) {
    writeFileSync(join(r.root, "app/blobs/sha256", sha256(m).slice(7)), m);
    index.manifests.push({ mediaType: OCI_MANIFEST, digest: sha256(m), size: m.length });
  }
  writeFileSync(join(r.root, "app/index.json"), `${JSON.stringify(index)}\n`);
  const res = await r.call("GET", `/v2/app/referrers/${img.digest}`);
  expect(res.status).toBe(200);
  const listed = ((await res.json()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest);
  expect(listed).toEqual([sha256(small)]);
});

test("a manifest is served with the media type its repository's index.json gives it, whatever another repository's listing said", async () => {
  await using first = await createTestRegistry();
  const img = await pushImage(first, "a", "v1", "listed twice");
  const DOCKER = "application/vnd.docker.distribution.manifest.v2+json";
  // a layout dropped in that lists the same bytes under the Docker media type
  const dir = join(first.root, "b");
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  for (const b of [img.manifest, img.config, img.layer]) writeFileSync(join(dir, "blobs", "sha256", sha256(b).slice(7)), b);
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: DOCKER, digest: img.digest, size: img.manifest.length }] }));
  await using r = await first.reopen();
  expect((await r.call("GET", `/v2/a/manifests/${img.digest}`)).headers.get("content-type")).toBe(OCI_MANIFEST);
  expect((await r.call("GET", `/v2/b/manifests/${img.digest}`)).headers.get("content-type")).toBe(DOCKER);
});

test("reconciling counts the repositories whose derived index was rebuilt: a layout dropped in once, then none", async () => {
  await using r = await createTestRegistry();
  const img = await pushImage(r, "a", "v1", "reconciled image");
  const dir = join(r.root, "dropped");
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  for (const b of [img.manifest, img.config, img.layer]) writeFileSync(join(dir, "blobs", "sha256", sha256(b).slice(7)), b);
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: OCI_MANIFEST, digest: img.digest, size: img.manifest.length, annotations: { "org.opencontainers.image.ref.name": "v1" } }] }));
  expect(await r.registry.reconcileAll(["a", "dropped"])).toBe(1);
  expect(await r.registry.reconcileAll(["a", "dropped"])).toBe(0);
  expect(await (await r.call("GET", "/v2/dropped/manifests/v1")).text()).toBe(img.manifest);
});
