/**
 * GC against writes in flight, made deterministic (issue 9, item 1). A manifest push that
 * commits between the pass's first look at a repository and the moment it holds the
 * repository's lock: the test wraps the store's lock entry points so that the first time
 * the pass asks for the lock, a whole manifest PUT runs and is acknowledged before the pass
 * gets it. And a cross-repository mount whose source a pass unlinks between the mount's
 * checks and its link (a disk wrapper does the unlinking at that moment). And a client that
 * looks at a blob (HEAD) while the pass unlinks it: the pass puts it back from the pool, and
 * its report does not count it as freed.
 */
import { describe, expect, test } from "bun:test";
import { createLifecycleRegistry } from "../helpers/lifecycle";
import { imageManifest, pushBlob, pushImage, sha256 } from "../helpers/registry";
import { beforeNextLock } from "../helpers/locks";
import { realDisk } from "../../daemon/platform/disk";
import { OCI_INDEX, OCI_MANIFEST } from "../../daemon/oci/mediatypes";

describe("GC and writes in flight", () => {
  for (const kind of ["image", "index"] as const) {
    test(`every blob of the acknowledged ${kind} survives the pass (grace 0, untagged kept)`, async () => {
      await using r = await createLifecycleRegistry(); // grace 0, untagged = false: the path the old race test never reached
      await pushImage(r, "app", "base", "already there");
      const config = JSON.stringify({ architecture: "arm64", os: "linux", n: kind });
      const layer = `layer pushed just before its ${kind}`;
      await pushBlob(r, "app", config);
      await pushBlob(r, "app", layer);
      const manifest = imageManifest(config, [layer]);
      const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(manifest), size: manifest.length }] });
      const statuses: number[] = [];
      beforeNextLock(r.store.indexes, "app", async () => {
        // An index push is its child manifest by digest, then the index by tag: both acknowledged here.
        if (kind === "index") statuses.push((await r.call("PUT", `/v2/app/manifests/${sha256(manifest)}`, { headers: { "Content-Type": OCI_MANIFEST }, body: manifest })).status);
        const [type, body] = kind === "image" ? [OCI_MANIFEST, manifest] : [OCI_INDEX, index];
        statuses.push((await r.call("PUT", "/v2/app/manifests/new", { headers: { "Content-Type": type }, body })).status);
      });
      const report = await r.lifecycle.gc();
      expect(statuses).toEqual(kind === "image" ? [201] : [201, 201]);
      expect(report.blobs).toEqual([]);
      const top = kind === "image" ? manifest : index;
      expect(await (await r.call("GET", "/v2/app/manifests/new")).text()).toBe(top);
      for (const b of new Set([top, manifest, config, layer])) {
        const res = await r.call("GET", `/v2/app/blobs/${sha256(b)}`);
        expect(res.status).toBe(200);
        expect(sha256(new Uint8Array(await res.arrayBuffer()))).toBe(sha256(b));
      }
    });
  }

  test("blobs no manifest references yet are collected, and the manifest that comes later is refused with MANIFEST_BLOB_UNKNOWN", async () => {
    await using r = await createLifecycleRegistry();
    const config = JSON.stringify({ architecture: "arm64", os: "linux", n: "late" });
    const layer = "layer whose manifest comes too late";
    await pushBlob(r, "app", config);
    await pushBlob(r, "app", layer);
    const report = await r.lifecycle.gc();
    expect(report.blobs.map((b) => b.digest).sort()).toEqual([sha256(config), sha256(layer)].sort());
    const res = await r.call("PUT", "/v2/app/manifests/late", { headers: { "Content-Type": OCI_MANIFEST }, body: imageManifest(config, [layer]) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("MANIFEST_BLOB_UNKNOWN");
  });

  test("a cross-repository mount whose source GC unlinks (repository and pool) at that moment falls back to an upload, not a 500", async () => {
    let armed: { source: string; pool: string } | undefined;
    const disk = {
      ...realDisk,
      async link(src: string, dst: string) {
        if (armed && src === armed.pool && dst.includes("/dst/")) {
          // What a pass does between the mount's checks and its link: both names of the unreferenced blob go.
          await realDisk.unlink(armed.source);
          await realDisk.unlink(armed.pool);
          armed = undefined;
        }
        return realDisk.link(src, dst);
      },
    };
    await using r = await createLifecycleRegistry({}, { disk });
    const digest = await pushBlob(r, "src", "a blob only src has, unreferenced");
    armed = { source: `${r.root}/src/blobs/sha256/${digest.slice(7)}`, pool: `${r.root}/.berth/pool/sha256/${digest.slice(7)}` };
    const res = await r.call("POST", `/v2/dst/blobs/uploads/?mount=${digest}&from=src`);
    expect(armed).toBeUndefined();
    expect(res.status).toBe(202);
    expect(res.headers.get("location")).toContain("/v2/dst/blobs/uploads/");
    expect((await r.call("HEAD", `/v2/dst/blobs/${digest}`)).status).toBe(404);
  });

  test("a blob a client looks at while the pass unlinks it is put back, and the report frees only the other blob's bytes", async () => {
    // Grace 1 h: the deleted manifest's blobs are collectable at once (settled by the DELETE,
    // not protected by their files' age), and a HEAD keeps a blob fresh for an hour. The HEAD
    // runs when the pass unlinks the layer, after its decision and before its sweep checks touches.
    let armed: { path: string; digest: string } | undefined;
    let headStatus = 0;
    const disk = {
      ...realDisk,
      async unlink(path: string) {
        if (armed && path === armed.path) {
          const { digest } = armed;
          armed = undefined;
          headStatus = (await r.call("HEAD", `/v2/app/blobs/${digest}`)).status;
        }
        return realDisk.unlink(path);
      },
    };
    await using r = await createLifecycleRegistry({ gc: { intervalMs: 0, graceMs: 3_600_000, untagged: false, orphanReferrers: true, emptyRepositories: true } }, { disk });
    await pushImage(r, "app", "keep", "kept image");
    const gone = await pushImage(r, "app", "gone", "deleted image");
    expect((await r.call("DELETE", `/v2/app/manifests/${gone.digest}`)).status).toBe(202);
    const layer = sha256(gone.layer);
    armed = { path: `${r.root}/app/blobs/sha256/${layer.slice(7)}`, digest: layer };
    const report = await r.lifecycle.gc();
    expect(armed).toBeUndefined();
    expect(headStatus).toBe(200);
    // the layer was relinked: not in the report, not freed, still served
    expect(report.blobs.map((b) => b.digest)).toEqual([sha256(gone.config)]);
    // freed: the config's bytes and the deleted manifest's own (both pool entries no one links now)
    expect(report.pool.map((b) => b.digest).sort()).toEqual([sha256(gone.config), gone.digest].sort());
    expect(report.bytesFreed).toBe(Buffer.byteLength(gone.config) + Buffer.byteLength(gone.manifest));
    expect(await (await r.call("GET", `/v2/app/blobs/${layer}`)).text()).toBe(gone.layer);
  });
});
