/**
 * sha512 content through the storage lifecycle (issue 15): an image whose config, layer and
 * manifest are addressed by sha512, and a referrer of it, pushed through /v2; then a
 * cross-repository mount of a sha512 blob, the referrers API, scrub (a clean pass checks the
 * sha512 files, a rotten one is quarantined with its actual sha512) and GC (what the image
 * references stays, an unreferenced sha512 blob and its pool entry go).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createLifecycleRegistry, type LifecycleRegistry } from "../helpers/lifecycle";
import { sha512 } from "../helpers/registry";
import { waitFor } from "../helpers/clients";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";

async function push512(r: LifecycleRegistry, repo: string, data: string): Promise<string> {
  const digest = sha512(data);
  const res = await r.call("POST", `/v2/${repo}/blobs/uploads/?digest=${digest}`, { body: data });
  expect(res.status).toBe(201);
  expect(res.headers.get("docker-content-digest")).toBe(digest);
  return digest;
}

/** A sha512 image (and a referrer of it) in `repo`. */
async function image512(r: LifecycleRegistry, repo: string) {
  const config = JSON.stringify({ architecture: "arm64", os: "linux", alg: "sha512" });
  const layer = "a layer addressed by sha512";
  await push512(r, repo, config);
  await push512(r, repo, layer);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha512(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha512(layer), size: layer.length }],
  });
  const put = await r.call("PUT", `/v2/${repo}/manifests/${sha512(manifest)}`, { headers: { "Content-Type": OCI_MANIFEST }, body: manifest });
  expect(put.status).toBe(201);
  expect(put.headers.get("docker-content-digest")).toBe(sha512(manifest));
  const empty = "{}";
  await push512(r, repo, empty);
  const referrer = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: "application/vnd.example.sbom",
    config: { mediaType: "application/vnd.oci.empty.v1+json", digest: sha512(empty), size: 2 },
    layers: [{ mediaType: "application/vnd.oci.empty.v1+json", digest: sha512(empty), size: 2 }],
    subject: { mediaType: OCI_MANIFEST, digest: sha512(manifest), size: manifest.length },
  });
  const ref = await r.call("PUT", `/v2/${repo}/manifests/${sha512(referrer)}`, { headers: { "Content-Type": OCI_MANIFEST }, body: referrer });
  expect(ref.status).toBe(201);
  expect(ref.headers.get("oci-subject")).toBe(sha512(manifest));
  return { config, layer, manifest, referrer, empty };
}

describe("sha512 through the lifecycle", () => {
  test("mount, referrers, scrub and GC keep and check sha512 content by its own algorithm", async () => {
    await using r = await createLifecycleRegistry();
    const img = await image512(r, "app");
    // pulled back by sha512
    expect(await (await r.call("GET", `/v2/app/manifests/${sha512(img.manifest)}`)).text()).toBe(img.manifest);
    expect(await (await r.call("GET", `/v2/app/blobs/${sha512(img.layer)}`)).text()).toBe(img.layer);

    // referrers of a sha512 subject
    const list = (await (await r.call("GET", `/v2/app/referrers/${sha512(img.manifest)}`)).json()) as { manifests: { digest: string; artifactType: string }[] };
    expect(list.manifests).toEqual([expect.objectContaining({ digest: sha512(img.referrer), artifactType: "application/vnd.example.sbom" })]);

    // cross-repository mount of a sha512 blob, and from the pool (no `from`)
    const mount = await r.call("POST", `/v2/other/blobs/uploads/?mount=${sha512(img.layer)}&from=app`);
    expect(mount.status).toBe(201);
    expect(mount.headers.get("docker-content-digest")).toBe(sha512(img.layer));
    expect(await (await r.call("GET", `/v2/other/blobs/${sha512(img.layer)}`)).text()).toBe(img.layer);
    expect((await r.call("POST", `/v2/third/blobs/uploads/?mount=${sha512(img.config)}`)).status).toBe(201);

    // GC: an unreferenced sha512 blob goes (and its pool entry); what the manifests reference stays
    const loose = await push512(r, "app", "an unreferenced sha512 blob");
    // GC with grace 0 holds back a file changed in the current millisecond: let the clock pass it
    const loosePath = join(r.root, "app/blobs/sha512", loose.slice(7));
    await waitFor("the clock to pass the last write", () => Date.now() > statSync(loosePath).ctimeMs, 1_000, 1);
    const report = await r.lifecycle.gc();
    const gone = report.blobs.map((b) => `${b.repo} ${b.digest}`).sort();
    expect(gone).toEqual([`app ${loose}`, `other ${sha512(img.layer)}`, `third ${sha512(img.config)}`].sort());
    expect(report.pool.map((p) => p.digest)).toEqual([loose]);
    expect(existsSync(join(r.root, ".berth/pool/sha512", loose.slice(7)))).toBe(false);
    for (const b of [img.config, img.layer, img.manifest, img.referrer, img.empty]) {
      expect(await (await r.call("GET", `/v2/app/blobs/${sha512(b)}`)).text()).toBe(b);
    }

    // scrub: a clean pass checks the sha512 files; a rotten one is quarantined with its actual sha512
    const clean = await r.lifecycle.scrub();
    expect(clean.quarantined).toEqual([]);
    expect(clean.blobsChecked).toBe(5);
    const rotten = img.layer.toUpperCase();
    writeFileSync(join(r.root, ".berth/pool/sha512", sha512(img.layer).slice(7)), rotten);
    const dirty = await r.lifecycle.scrub();
    expect(dirty.quarantined.map((q) => [q.digest, q.actual])).toEqual([[sha512(img.layer), sha512(rotten)]]);
    expect((await r.call("GET", `/v2/app/blobs/${sha512(img.layer)}`)).status).toBe(404);
  });
});
