/**
 * GC decisions that only show with a grace period or with `untagged` (issue 15, killing
 * mutants that survived the GC tests): an untagged referrer of a tagged image is kept by an
 * `untagged` pass; with a grace of an hour, the blobs of a manifest just deleted are freed at
 * once (DELETE and one pass free a full disk) while a fresh unreferenced upload is held
 * back, and an emptied repository whose index.json changed within the grace is kept (even
 * after a restart has forgotten every touch); and a repository GC removed can be pushed to
 * again, and is unknown in between.
 */
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type LifecycleRegistry, createLifecycleRegistry, testLifecycleOptions } from "../helpers/lifecycle";
import { imageManifest, pushBlob, pushImage, sha256 } from "../helpers/registry";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";

const gcWith = (over: Partial<ReturnType<typeof testLifecycleOptions>["gc"]>) => ({ gc: { ...testLifecycleOptions().gc, ...over } });
const HOUR = 3_600_000;

describe("GC with untagged and with a grace period", () => {
  test("untagged: an untagged referrer of a tagged image stays; an untagged image goes", async () => {
    await using r = await createLifecycleRegistry(gcWith({ untagged: true }));
    const img = await pushImage(r, "app", "v1", "tagged image");
    const loose = await pushImage(r, "app", "tmp", "soon untagged");
    expect((await r.call("DELETE", "/v2/app/manifests/tmp")).status).toBe(202);
    await pushBlob(r, "app", "{}");
    const sig = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: "application/vnd.example.sig",
      config: { mediaType: "application/vnd.oci.empty.v1+json", digest: sha256("{}"), size: 2 },
      layers: [{ mediaType: "application/vnd.oci.empty.v1+json", digest: sha256("{}"), size: 2 }],
      subject: { mediaType: OCI_MANIFEST, digest: img.digest, size: img.manifest.length },
    });
    expect((await r.call("PUT", `/v2/app/manifests/${sha256(sig)}`, { headers: { "Content-Type": OCI_MANIFEST }, body: sig })).status).toBe(201);
    const report = await r.lifecycle.gc();
    expect(report.manifests.map((m) => m.digest)).toEqual([loose.digest]);
    expect(await (await r.call("GET", `/v2/app/manifests/${sha256(sig)}`)).text()).toBe(sig);
    const refs = (await (await r.call("GET", `/v2/app/referrers/${img.digest}`)).json()) as { manifests: { digest: string }[] };
    expect(refs.manifests.map((m) => m.digest)).toEqual([sha256(sig)]);
  });

  test("grace 1 h: a deleted manifest's blobs are freed at once; a fresh unreferenced upload is held back", async () => {
    await using r = await createLifecycleRegistry(gcWith({ graceMs: HOUR }));
    await pushImage(r, "app", "keep", "kept image");
    const gone = await pushImage(r, "app", "gone", "deleted image");
    const fresh = await pushBlob(r, "app", "uploaded, not referenced yet");
    expect((await r.call("DELETE", `/v2/app/manifests/${gone.digest}`)).status).toBe(202);
    const report = await r.lifecycle.gc();
    expect(report.blobs.map((b) => b.digest).sort()).toEqual([sha256(gone.config), sha256(gone.layer)].sort());
    expect(report.heldBack.blobs).toBe(1);
    expect((await r.call("HEAD", `/v2/app/blobs/${fresh}`)).status).toBe(200);
  });

  test("grace 1 h: an emptied repository whose index.json just changed is kept, also after a restart forgot the touches", async () => {
    await using r = await createLifecycleRegistry(gcWith({ graceMs: HOUR }));
    const img = await pushImage(r, "app", "v1", "only image");
    expect((await r.call("DELETE", `/v2/app/manifests/${img.digest}`)).status).toBe(202);
    // the first pass frees the deleted manifest's blobs (settled) and keeps the empty repository
    const first = await r.lifecycle.gc();
    expect(first.blobs.map((b) => b.digest).sort()).toEqual([sha256(img.config), sha256(img.layer)].sort());
    expect(first.emptyRepositories).toEqual([]);
    await using again = (await r.reopen()) as LifecycleRegistry;
    const report = await again.lifecycle.gc();
    expect(report.emptyRepositories).toEqual([]);
    expect(existsSync(join(again.root, "app/index.json"))).toBe(true);
    expect((await again.call("GET", "/v2/app/tags/list")).status).toBe(200);
  });

  test("grace 1 h: a fresh unreferenced upload is held by its file's age after a restart forgot the touches", async () => {
    await using r = await createLifecycleRegistry(gcWith({ graceMs: HOUR }));
    const fresh = await pushBlob(r, "app", "uploaded just before the restart");
    await using again = (await r.reopen()) as LifecycleRegistry;
    const report = await again.lifecycle.gc();
    expect(report.blobs).toEqual([]);
    expect(report.heldBack.blobs).toBe(1);
    expect((await again.call("HEAD", `/v2/app/blobs/${fresh}`)).status).toBe(200);
  });

  test("grace 1 h: a young untagged manifest whose blobs a tagged one keeps is held, and the report says until when", async () => {
    await using r = await createLifecycleRegistry(gcWith({ graceMs: HOUR, untagged: true }));
    const kept = await pushImage(r, "app", "keep", "shared image");
    const young = imageManifest(kept.config, [kept.layer], { annotations: { copy: "untagged" } });
    const before = Date.now();
    expect((await r.call("PUT", `/v2/app/manifests/${sha256(young)}`, { headers: { "Content-Type": OCI_MANIFEST }, body: young })).status).toBe(201);
    const report = await r.lifecycle.gc();
    expect(report.manifests).toEqual([]);
    expect(report.heldBack).toMatchObject({ manifests: 1, blobs: 0 });
    expect(Date.parse(report.heldBack.earliest!)).toBeGreaterThanOrEqual(before + HOUR - 1000);
  });

  test("a repository GC removed is unknown, and can be pushed to again", async () => {
    await using r = await createLifecycleRegistry();
    const img = await pushImage(r, "app", "v1", "only image");
    expect((await r.call("GET", "/v2/app/tags/list")).status).toBe(200); // its index is cached now
    expect((await r.call("DELETE", `/v2/app/manifests/${img.digest}`)).status).toBe(202);
    const report = await r.lifecycle.gc();
    expect(report.emptyRepositories).toEqual(["app"]);
    expect(existsSync(join(r.root, "app"))).toBe(false);
    const unknown = await r.call("GET", "/v2/app/tags/list");
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("NAME_UNKNOWN");
    const back = await pushImage(r, "app", "v2", "pushed again");
    expect(await (await r.call("GET", "/v2/app/manifests/v2")).text()).toBe(back.manifest);
    expect(await (await r.call("GET", `/v2/app/blobs/${sha256(back.layer)}`)).text()).toBe(back.layer);
  });
});
