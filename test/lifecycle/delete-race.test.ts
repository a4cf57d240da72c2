/**
 * Deletes against pushes, and a mount against the GC sweep of its source, made deterministic
 * (issue 15): the test wraps the store's lock entry points (helpers/locks.ts) so that the
 * first time an operation asks for a repository's lock — after it has done its checks and
 * published its bytes outside the lock — another whole request runs and is acknowledged
 * first. No sleeps, no load: each interleaving is chosen, and each test names what the
 * losing side must see and what must be stored afterwards.
 */
import { describe, expect, test } from "bun:test";
import { createLifecycleRegistry, type LifecycleRegistry } from "../helpers/lifecycle";
import { beforeNextLock } from "../helpers/locks";
import { imageManifest, pushBlob, pushImage, sha256 } from "../helpers/registry";
import { statSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../helpers/clients";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";
import { type Disk, realDisk } from "../../daemon/platform/disk";

const put = (r: LifecycleRegistry, repo: string, ref: string, body: string) =>
  r.call("PUT", `/v2/${repo}/manifests/${ref}`, { headers: { "Content-Type": OCI_MANIFEST }, body });
const tagsOf = async (r: LifecycleRegistry, repo: string) =>
  ((await (await r.call("GET", `/v2/${repo}/tags/list`)).json()) as { tags: string[] }).tags;
const codeOf = async (res: Response) => ((await res.json()) as { errors: { code: string }[] }).errors[0]!.code;

/**
 * Waits (a bounded poll) for the clock to pass the file's change time: GC with grace 0 holds
 * back a blob whose file changed in the current millisecond, so a pass right after a write
 * must not depend on the timing.
 */
async function clockPast(path: string): Promise<void> {
  await waitFor(`the clock to pass the change time of ${path}`, () => Date.now() > Math.max(statSync(path).ctimeMs, statSync(path).mtimeMs), 1_000, 1);
}

/** The blob as served, checked against its digest. */
async function expectBlob(r: LifecycleRegistry, repo: string, content: string): Promise<void> {
  const res = await r.call("GET", `/v2/${repo}/blobs/${sha256(content)}`);
  expect(res.status).toBe(200);
  expect(await res.text()).toBe(content);
}

describe("deletes against pushes", () => {
  test("manifest DELETE acknowledged between a PUT of the same manifest's publish and its commit: the PUT republishes, every blob is served", async () => {
    await using r = await createLifecycleRegistry();
    const img = await pushImage(r, "app", "v1", "shared image");
    const statuses: number[] = [];
    beforeNextLock(r.store.indexes, "app", async () => {
      statuses.push((await r.call("DELETE", `/v2/app/manifests/${img.digest}`)).status);
    });
    const res = await put(r, "app", "v2", img.manifest);
    expect(statuses).toEqual([202]);
    expect(res.status).toBe(201);
    expect(await tagsOf(r, "app")).toEqual(["v2"]); // v1 went with the DELETE, v2 came with the PUT
    expect(await (await r.call("GET", "/v2/app/manifests/v2")).text()).toBe(img.manifest);
    expect(await (await r.call("GET", `/v2/app/manifests/${img.digest}`)).text()).toBe(img.manifest);
    const report = await r.lifecycle.gc();
    expect(report.blobs).toEqual([]);
    for (const b of [img.manifest, img.config, img.layer]) await expectBlob(r, "app", b);
  });

  test("manifest DELETE of another manifest sharing the layer, acknowledged before the PUT commits: GC keeps the shared layer", async () => {
    await using r = await createLifecycleRegistry();
    const old = await pushImage(r, "app", "old", "old image");
    const config = JSON.stringify({ architecture: "arm64", os: "linux", n: "new" });
    await pushBlob(r, "app", config);
    const manifest = imageManifest(config, [old.layer]); // the same layer as "old"
    const statuses: number[] = [];
    beforeNextLock(r.store.indexes, "app", async () => {
      statuses.push((await r.call("DELETE", `/v2/app/manifests/${old.digest}`)).status);
    });
    expect((await put(r, "app", "new", manifest)).status).toBe(201);
    expect(statuses).toEqual([202]);
    const report = await r.lifecycle.gc();
    expect(report.blobs.map((b) => b.digest)).toEqual([sha256(old.config)]); // the DELETE removed the manifest's own file
    await expectBlob(r, "app", old.layer);
    await expectBlob(r, "app", config);
    expect((await r.call("GET", `/v2/app/manifests/${old.digest}`)).status).toBe(404);
  });

  test("blob DELETE acknowledged between a manifest PUT's first check and its commit: the PUT is refused with MANIFEST_BLOB_UNKNOWN and nothing is listed", async () => {
    await using r = await createLifecycleRegistry();
    await pushImage(r, "app", "base", "already there"); // the repository exists
    const config = JSON.stringify({ architecture: "arm64", os: "linux", n: "doomed" });
    const layer = "layer deleted under the push";
    await pushBlob(r, "app", config);
    await pushBlob(r, "app", layer);
    const manifest = imageManifest(config, [layer]);
    const statuses: number[] = [];
    beforeNextLock(r.store.indexes, "app", async () => {
      statuses.push((await r.call("DELETE", `/v2/app/blobs/${sha256(layer)}`)).status);
    });
    const res = await put(r, "app", "doomed", manifest);
    expect(statuses).toEqual([202]);
    expect(res.status).toBe(400);
    expect(await codeOf(res)).toBe("MANIFEST_BLOB_UNKNOWN");
    expect(await tagsOf(r, "app")).toEqual(["base"]);
    expect((await r.call("HEAD", `/v2/app/blobs/${sha256(layer)}`)).status).toBe(404);
    // The refused manifest's bytes were published before the lock: unlisted, they are GC's to collect.
    await clockPast(join(r.root, "app/blobs/sha256", sha256(manifest).slice(7)));
    const report = await r.lifecycle.gc();
    expect(report.blobs.map((b) => b.digest).sort()).toEqual([sha256(config), sha256(manifest)].sort());
    expect((await r.call("GET", `/v2/app/manifests/${sha256(manifest)}`)).status).toBe(404);
  });

  test("tag DELETE acknowledged before a PUT moving the same tag commits: the move wins, the old manifest stays by digest", async () => {
    await using r = await createLifecycleRegistry();
    const a = await pushImage(r, "app", "cur", "image a");
    const b = await pushImage(r, "app", "other", "image b");
    const statuses: number[] = [];
    beforeNextLock(r.store.indexes, "app", async () => {
      statuses.push((await r.call("DELETE", "/v2/app/manifests/cur")).status);
    });
    expect((await put(r, "app", "cur", b.manifest)).status).toBe(201);
    expect(statuses).toEqual([202]);
    expect(await tagsOf(r, "app")).toEqual(["cur", "other"]);
    expect(await (await r.call("GET", "/v2/app/manifests/cur")).text()).toBe(b.manifest);
    expect(await (await r.call("GET", `/v2/app/manifests/${a.digest}`)).text()).toBe(a.manifest);
  });

  test("a tag move acknowledged before a tag DELETE commits: the DELETE removes the moved tag, both manifests stay by digest", async () => {
    await using r = await createLifecycleRegistry();
    const a = await pushImage(r, "app", "cur", "image a");
    const b = await pushImage(r, "app", "other", "image b");
    const statuses: number[] = [];
    beforeNextLock(r.store.indexes, "app", async () => {
      statuses.push((await put(r, "app", "cur", b.manifest)).status);
    });
    expect((await r.call("DELETE", "/v2/app/manifests/cur")).status).toBe(202);
    expect(statuses).toEqual([201]);
    expect(await tagsOf(r, "app")).toEqual(["other"]);
    expect((await r.call("GET", "/v2/app/manifests/cur")).status).toBe(404);
    expect(await (await r.call("GET", `/v2/app/manifests/${a.digest}`)).text()).toBe(a.manifest);
    expect(await (await r.call("GET", `/v2/app/manifests/${b.digest}`)).text()).toBe(b.manifest);
  });
});

describe("a tag DELETE holds the repository's lock", () => {
  test("a PUT of another tag that arrives while the DELETE writes index.json waits for it: the deleted tag is gone and the new tag is kept", async () => {
    // index.json writes of "app" can be held at their start (the DELETE's mutation is decided by then)
    let hold: (() => Promise<void>) | undefined;
    const disk: Disk = {
      ...realDisk,
      async writeAtomic(path, bytes) {
        const h = hold;
        if (h && path.endsWith(join("app", "index.json"))) {
          hold = undefined;
          await h();
        }
        return realDisk.writeAtomic(path, bytes);
      },
    };
    await using r = await createLifecycleRegistry({}, { disk });
    const a = await pushImage(r, "app", "cur", "image a");
    const b = await pushImage(r, "app", "other", "image b");
    let put: Promise<Response> | undefined;
    hold = async () => {
      // Is the repository's lock free while the DELETE writes? A probe for it runs within
      // microtasks if so; one macrotask turn later it has run or it is queued behind the DELETE.
      let free = false;
      void r.store.indexes.withLock("app", async () => void (free = true));
      await new Promise<void>((resolve) => setImmediate(resolve));
      put = r.call("PUT", "/v2/app/manifests/new", { headers: { "Content-Type": OCI_MANIFEST }, body: b.manifest });
      // without the lock the PUT would commit now, inside the DELETE's read-and-write
      if (free) await put;
    };
    expect((await r.call("DELETE", "/v2/app/manifests/cur")).status).toBe(202);
    expect(put).toBeDefined();
    expect((await put!).status).toBe(201);
    expect(await tagsOf(r, "app")).toEqual(["new", "other"]);
    expect(await (await r.call("GET", "/v2/app/manifests/new")).text()).toBe(b.manifest);
    expect(await (await r.call("GET", `/v2/app/manifests/${a.digest}`)).text()).toBe(a.manifest);
  });
});

describe("mounts against the GC sweep", () => {
  test("a mount acknowledged while GC waits for the source's lock: the sweep unlinks the source's name only, and the mounted blob is pushed on", async () => {
    await using r = await createLifecycleRegistry(); // grace 0: the source's blob is unreferenced, so it goes
    await pushImage(r, "dst", "base", "dst exists"); // visited (and left alone) before src
    const layer = "a layer only src holds, unreferenced";
    const digest = await pushBlob(r, "src", layer);
    const statuses: number[] = [];
    beforeNextLock(r.store.indexes, "src", async () => {
      statuses.push((await r.call("POST", `/v2/dst/blobs/uploads/?mount=${digest}&from=src`)).status);
      // The link changed the inode's ctime, which GC (grace 0) reads as "changed now": wait for
      // the clock to pass it, so the pass finds src's name collectable whatever the timing.
      await clockPast(join(r.root, "src/blobs/sha256", digest.slice(7)));
    });
    const report = await r.lifecycle.gc();
    expect(statuses).toEqual([201]);
    expect(report.blobs).toEqual([{ repo: "src", digest, size: layer.length }]);
    expect(report.pool).toEqual([]); // dst's link still holds the pool entry
    expect((await r.call("HEAD", `/v2/src/blobs/${digest}`)).status).toBe(404);
    await expectBlob(r, "dst", layer);
    const config = JSON.stringify({ architecture: "arm64", os: "linux", n: "mounted" });
    await pushBlob(r, "dst", config);
    expect((await put(r, "dst", "mounted", imageManifest(config, [layer]))).status).toBe(201);
    // a later mount with no source (from the pool) still works
    expect((await r.call("POST", `/v2/third/blobs/uploads/?mount=${digest}`)).status).toBe(201);
    await expectBlob(r, "third", layer);
  });

  test("a mount from the pool (no `from`) whose pool entry GC removes at that moment falls back to an upload, not a 500", async () => {
    let armed: { pool: string; names: string[] } | undefined;
    const disk = {
      ...realDisk,
      async link(src: string, dst: string) {
        if (armed && src === armed.pool && dst.includes("/dst/")) {
          // what a sweep does between the mount's check of the pool and its link: every name goes
          for (const n of armed.names) await realDisk.unlink(n);
          armed = undefined;
        }
        return realDisk.link(src, dst);
      },
    };
    await using r = await createLifecycleRegistry({}, { disk });
    const digest = await pushBlob(r, "src", "a blob in the pool, about to be collected");
    const pool = `${r.root}/.berth/pool/sha256/${digest.slice(7)}`;
    armed = { pool, names: [`${r.root}/src/blobs/sha256/${digest.slice(7)}`, pool] };
    const res = await r.call("POST", `/v2/dst/blobs/uploads/?mount=${digest}`);
    expect(armed).toBeUndefined();
    expect(res.status).toBe(202);
    expect(res.headers.get("location")).toContain("/v2/dst/blobs/uploads/");
    expect((await r.call("HEAD", `/v2/dst/blobs/${digest}`)).status).toBe(404);
  });
});
