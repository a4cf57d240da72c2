/**
 * The storage engine under the registry: what it leaves on disk is a valid OCI layout, the
 * derived index survives restarts and is rebuilt when missing or stale, start-up cleans
 * what an interrupted run left, and faults (no hard links, a full disk) lose nothing.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Disk, TEMP_PREFIX, realDisk } from "../../daemon/platform/disk";
import { createTestRegistry, imageManifest, pushBlob, pushImage, sha256 } from "../helpers/registry";
import { OCI_INDEX, OCI_MANIFEST } from "../../daemon/oci/mediatypes";
import { requireDigest } from "../../daemon/oci/digest";
import { createLogger } from "../../daemon/log";
import { Store } from "../../daemon/storage/store";
import { SimDisk } from "../helpers/simdisk";

describe("on-disk layout", () => {
  test("each repository is an OCI image layout with tags as ref.name annotations", async () => {
    await using r = await createTestRegistry();
    const img = await pushImage(r, "team/app", "v1", "layout");
    const dir = join(r.root, "team/app");
    expect(JSON.parse(readFileSync(join(dir, "oci-layout"), "utf8"))).toEqual({ imageLayoutVersion: "1.0.0" });
    const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
    expect(index.schemaVersion).toBe(2);
    expect(index.manifests).toEqual([
      { mediaType: OCI_MANIFEST, digest: img.digest, size: img.manifest.length, annotations: { "org.opencontainers.image.ref.name": "v1" } },
    ]);
    for (const content of [img.manifest, img.config, img.layer]) {
      expect(readFileSync(join(dir, "blobs/sha256", sha256(content).slice(7)), "utf8")).toBe(content);
    }
  });
});

describe("the derived index", () => {
  test("survives a restart, and is rebuilt when the database is deleted", async () => {
    await using r = await createTestRegistry();
    const img = await pushImage(r, "app", "v1", "meta");
    await pushBlob(r, "app", "{}");
    const ref = imageManifest("{}", [], { subject: { mediaType: OCI_MANIFEST, digest: img.digest, size: img.manifest.length } });
    await r.call("PUT", `/v2/app/manifests/${sha256(ref)}`, { headers: { "Content-Type": OCI_MANIFEST }, body: ref });
    const referrers = async (reg: typeof r) => ((await (await reg.call("GET", `/v2/app/referrers/${img.digest}`)).json()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest);
    expect(await referrers(r)).toEqual([sha256(ref)]);

    const again = await r.reopen();
    expect(await referrers(again)).toEqual([sha256(ref)]);
    await again[Symbol.asyncDispose]();

    for (const f of ["meta.db", "meta.db-wal", "meta.db-shm"]) rmSync(join(r.root, ".berth", f), { force: true });
    const rebuilt = await r.reopen();
    expect(await referrers(rebuilt)).toEqual([sha256(ref)]);
    expect(((await (await rebuilt.call("GET", "/v2/_catalog")).json()) as { repositories: string[] }).repositories).toEqual(["app"]);
    await rebuilt[Symbol.asyncDispose]();
  });

  test("an index.json changed by another tool is picked up without a restart", async () => {
    await using r = await createTestRegistry();
    const a = await pushImage(r, "app", "a", "one");
    await pushImage(r, "app", "b", "two");
    const path = join(r.root, "app/index.json");
    const doc = JSON.parse(readFileSync(path, "utf8"));
    doc.manifests = doc.manifests.filter((m: { annotations?: Record<string, string> }) => m.annotations?.["org.opencontainers.image.ref.name"] !== "b");
    doc.manifests.push({ ...doc.manifests[0], annotations: { "org.opencontainers.image.ref.name": "c" } });
    writeFileSync(`${path}.new`, JSON.stringify(doc));
    require("node:fs").renameSync(`${path}.new`, path);
    expect(await (await r.call("GET", "/v2/app/tags/list")).json()).toEqual({ name: "app", tags: ["a", "c"] });
    expect((await r.call("GET", "/v2/app/manifests/c")).headers.get("docker-content-digest")).toBe(a.digest);
  });
});

describe("start-up recovery", () => {
  test("removes upload sessions and temp files left by an interrupted run, keeps content", async () => {
    await using r = await createTestRegistry();
    const img = await pushImage(r, "app", "v1", "recover");
    mkdirSync(join(r.root, ".berth/uploads/dead-session"), { recursive: true });
    writeFileSync(join(r.root, ".berth/uploads/dead-session/data"), "half an upload");
    writeFileSync(join(r.root, "app", `${TEMP_PREFIX}123-1`), "torn index");
    writeFileSync(join(r.root, "app/blobs/sha256", `${TEMP_PREFIX}123-2`), "torn copy");
    writeFileSync(join(r.root, ".berth/pool/sha256", `${TEMP_PREFIX}123-3`), "torn");
    const again = await r.reopen();
    expect(existsSync(join(r.root, ".berth/uploads/dead-session"))).toBe(false);
    expect(existsSync(join(r.root, "app", `${TEMP_PREFIX}123-1`))).toBe(false);
    expect(existsSync(join(r.root, "app/blobs/sha256", `${TEMP_PREFIX}123-2`))).toBe(false);
    expect(existsSync(join(r.root, ".berth/pool/sha256", `${TEMP_PREFIX}123-3`))).toBe(false);
    expect(await (await again.call("GET", "/v2/app/manifests/v1")).text()).toBe(img.manifest);
    await again[Symbol.asyncDispose]();
  });

  test("a layout placed in the root before start is served; one with an invalid name is not", async () => {
    await using r = await createTestRegistry();
    const img = await pushImage(r, "origin", "v1", "dropped");
    const fs = require("node:fs") as typeof import("node:fs");
    fs.cpSync(join(r.root, "origin"), join(r.root, "dropped/copy"), { recursive: true });
    fs.cpSync(join(r.root, "origin"), join(r.root, "Bad_Name"), { recursive: true });
    const again = await r.reopen();
    expect(await (await again.call("GET", "/v2/dropped/copy/manifests/v1")).text()).toBe(img.manifest);
    expect(((await (await again.call("GET", "/v2/_catalog")).json()) as { repositories: string[] }).repositories).toEqual(["dropped/copy", "origin"]);
    await again[Symbol.asyncDispose]();
  });
});

/** A disk whose hard links fail as on a file system without them. */
function noLinkDisk(): Disk {
  return { ...realDisk, link: async () => Promise.reject(Object.assign(new Error("EXDEV"), { code: "EXDEV" })) };
}

describe("faults", () => {
  test("where hard links fail, blobs are copied and everything still works", async () => {
    await using r = await createTestRegistry({ disk: noLinkDisk() });
    const img = await pushImage(r, "a", "v1", "copies");
    expect((await r.call("POST", `/v2/b/blobs/uploads/?mount=${sha256(img.layer)}&from=a`)).status).toBe(201);
    expect(await (await r.call("GET", `/v2/b/blobs/${sha256(img.layer)}`)).text()).toBe(img.layer);
    const a = statSync(join(r.root, "a/blobs/sha256", sha256(img.layer).slice(7)));
    const b = statSync(join(r.root, "b/blobs/sha256", sha256(img.layer).slice(7)));
    expect(a.ino).not.toBe(b.ino);
    expect(await (await r.call("GET", "/v2/a/manifests/v1")).text()).toBe(img.manifest);
  });

  test("a full disk mid-upload is a clear 507, nothing partial is visible, and the registry keeps serving", async () => {
    let full = false;
    const disk: Disk = {
      ...realDisk,
      async openAppend(path) {
        const file = await realDisk.openAppend(path);
        return {
          ...file,
          write: (chunks) => (full ? Promise.reject(Object.assign(new Error("ENOSPC"), { code: "ENOSPC" })) : file.write(chunks)),
          truncate: (n) => file.truncate(n),
          sync: () => file.sync(),
          close: () => file.close(),
        };
      },
    };
    await using r = await createTestRegistry({ disk });
    const before = await pushImage(r, "app", "v1", "before");
    full = true;
    const digest = sha256("will not fit");
    const res = await r.call("POST", `/v2/app/blobs/uploads/?digest=${digest}`, { body: "will not fit" });
    expect(res.status).toBe(507);
    expect(((await res.json()) as { errors: { detail: string }[] }).errors[0]!.detail).toContain("disk is full");
    expect((await r.call("HEAD", `/v2/app/blobs/${digest}`)).status).toBe(404);
    const m = await r.call("PUT", "/v2/app/manifests/v2", { headers: { "Content-Type": OCI_MANIFEST }, body: before.manifest });
    expect(m.status).toBe(507);
    expect((await r.call("GET", "/v2/app/manifests/v2")).status).toBe(404);
    full = false;
    expect(await (await r.call("GET", "/v2/app/manifests/v1")).text()).toBe(before.manifest);
    expect((await r.call("POST", `/v2/app/blobs/uploads/?digest=${digest}`, { body: "will not fit" })).status).toBe(201);
  });
});

describe("concurrency and internal faults", () => {
  test("concurrent tag pushes to one repository lose no update", async () => {
    await using r = await createTestRegistry();
    const img = await pushImage(r, "busy", "seed", "concurrent");
    const tags = Array.from({ length: 40 }, (_, i) => `t${String(i).padStart(2, "0")}`);
    const results = await Promise.all(
      tags.map((tag) => r.call("PUT", `/v2/busy/manifests/${tag}`, { headers: { "Content-Type": OCI_MANIFEST }, body: img.manifest })),
    );
    expect(results.map((x) => x.status)).toEqual(tags.map(() => 201));
    const listed = ((await (await r.call("GET", "/v2/busy/tags/list")).json()) as { tags: string[] }).tags;
    expect(listed).toEqual(["seed", ...tags]);
    const onDisk = JSON.parse(readFileSync(join(r.root, "busy/index.json"), "utf8")) as { manifests: unknown[] };
    expect(onDisk.manifests).toHaveLength(41);
  });

  test("an unexpected I/O error is 500 UNKNOWN with nothing internal in the body", async () => {
    let broken = false;
    const disk: Disk = {
      ...realDisk,
      link: (src, dst) => (broken ? Promise.reject(Object.assign(new Error(`EIO: i/o error, link '${src}' -> '${dst}'`), { code: "EIO" })) : realDisk.link(src, dst)),
    };
    await using r = await createTestRegistry({ disk });
    broken = true;
    const res = await r.call("POST", `/v2/app/blobs/uploads/?digest=${sha256("x")}`, { body: "x" });
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ errors: [{ code: "UNKNOWN", message: "unknown error" }] });
    expect(text).not.toContain(r.root);
    broken = false;
    expect((await r.call("POST", `/v2/app/blobs/uploads/?digest=${sha256("x")}`, { body: "x" })).status).toBe(201);
  });
});

describe("manifest writes under the repository lock", () => {
  test("concurrent PUT and DELETE of one manifest never list a manifest whose bytes are gone", async () => {
    await using r = await createTestRegistry();
    const img = await pushImage(r, "race", "seed", "race");
    let listedChecked = 0;
    let deleted = 0;
    for (let round = 0; round < 30; round++) {
      const [put1, del, put2] = await Promise.all([
        r.call("PUT", `/v2/race/manifests/t${round}`, { headers: { "Content-Type": OCI_MANIFEST }, body: img.manifest }),
        r.call("DELETE", `/v2/race/manifests/${img.digest}`),
        r.call("PUT", `/v2/race/manifests/u${round}`, { headers: { "Content-Type": OCI_MANIFEST }, body: img.manifest }),
      ]);
      expect([put1.status, put2.status]).toEqual([201, 201]);
      expect([202, 404]).toContain(del.status);
      if (del.status === 202) deleted++;
      const index = JSON.parse(readFileSync(join(r.root, "race/index.json"), "utf8")) as { manifests: { digest: string }[] };
      for (const m of index.manifests) {
        expect(existsSync(join(r.root, "race/blobs/sha256", m.digest.slice(7)))).toBe(true);
        listedChecked++;
      }
    }
    // Both sides of the race happened: manifests were listed (and checked) and deletes took effect.
    expect(listedChecked).toBeGreaterThan(0);
    expect(deleted).toBeGreaterThan(0);
  });
});

describe("a mount from a file berth may not write, without dedupe", () => {
  test("is copied (its data cannot be fsynced), not linked: hard links stay in use and no link failure is logged", async () => {
    const ROOT = "/srv/berth";
    const disk = new SimDisk();
    await disk.mountPoint(ROOT);
    const body = new TextEncoder().encode("a layer another user dropped in");
    const digest = requireDigest(sha256(body));
    const source = `${ROOT}/dropped/blobs/sha256/${digest.hex}`;
    await disk.mkdirp(`${ROOT}/dropped/blobs/sha256`);
    const f = await disk.openAppend(source);
    await f.write([body]);
    await f.close();
    disk.readOnly.add(source);
    const lines: string[] = [];
    const store = new Store(disk, { root: ROOT, dedupe: false, maxBlobBytes: 0, manifestCacheBytes: 1 << 20 }, createLogger("debug", "json", (l) => lines.push(l)));
    await store.recover();
    expect(await store.blobs.mount("app", digest, "dropped")).toBe(true);
    expect(new TextDecoder().decode(await disk.readFile(store.blobs.path("app", digest)))).toBe("a layer another user dropped in");
    expect(lines.filter((l) => l.includes("hard links are not possible"))).toEqual([]);
  });
});

test("a mount from a dropped-in layout whose blob does not hash to its name is refused, and nothing is linked", async () => {
  await using r = await createTestRegistry();
  const digest = requireDigest(sha256("the bytes the name promises"));
  mkdirSync(join(r.root, "dropped", "blobs", "sha256"), { recursive: true });
  writeFileSync(join(r.root, "dropped", "blobs", "sha256", digest.hex), "other bytes under that name");
  expect(await r.store.blobs.mount("app", digest, "dropped")).toBe(false);
  expect(r.store.blobs.stat("app", digest)).toBeUndefined();
  expect(existsSync(join(r.root, ".berth", "pool", "sha256", digest.hex))).toBe(false);
});

test("usage counts each stored inode once: a blob two repositories of a prefix share once for the prefix, a blob outside the pool too", async () => {
  await using r = await createTestRegistry();
  const shared = "a layer both team repositories hold";
  await pushBlob(r, "team/a", shared);
  await pushBlob(r, "team/b", shared);
  await pushBlob(r, "other/c", "a layer of another prefix");
  // a layout dropped into the root: its blob is not in the pool
  const dropped = "a blob only the dropped layout holds";
  mkdirSync(join(r.root, "dropped", "blobs", "sha256"), { recursive: true });
  writeFileSync(join(r.root, "dropped", "blobs", "sha256", sha256(dropped).slice(7)), dropped);
  writeFileSync(join(r.root, "dropped", "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(r.root, "dropped", "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [] }));
  const usage = r.store.meter.usage(["team/", "other/"]);
  expect(usage.byPrefix.get("team/")).toBe(shared.length);
  expect(usage.byPrefix.get("other/")).toBe("a layer of another prefix".length);
  expect(usage.total).toBe(shared.length + "a layer of another prefix".length + dropped.length);
});

test("an index whose platforms are not all here is stored only when the caller (sync) allows a partial index", async () => {
  await using r = await createTestRegistry();
  const present = await pushImage(r, "app", "amd64", "the one platform mirrored");
  const missing = imageManifest(JSON.stringify({ os: "linux", architecture: "arm64" }), ["a layer not mirrored"]);
  const index = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      { mediaType: OCI_MANIFEST, digest: present.digest, size: present.manifest.length },
      { mediaType: OCI_MANIFEST, digest: sha256(missing), size: missing.length },
    ],
  }));
  const refused = await r.registry.putManifest("app", "multi", index, OCI_INDEX).catch((e: unknown) => e);
  expect((refused as { code?: string }).code).toBe("MANIFEST_BLOB_UNKNOWN");
  const stored = await r.registry.putManifest("app", "multi", index, OCI_INDEX, [], { partialIndex: true });
  expect(stored.tags).toEqual(["multi"]);
  expect(await (await r.call("GET", "/v2/app/manifests/multi")).text()).toBe(new TextDecoder().decode(index));
});

test("a tag moves only when it pointed at another manifest: re-pushing the same manifest under its tag moves nothing", async () => {
  await using r = await createTestRegistry();
  const a = await pushImage(r, "app", "v1", "image a");
  const b = await pushImage(r, "app", "other", "image b");
  const bytes = new TextEncoder().encode(a.manifest);
  expect((await r.registry.putManifest("app", "v1", bytes, OCI_MANIFEST)).moved).toEqual([]);
  expect((await r.registry.putManifest("app", "v1", new TextEncoder().encode(b.manifest), OCI_MANIFEST)).moved).toEqual([{ tag: "v1", from: a.digest }]);
});

test("an IO error linking a pushed blob into its repository fails the push at once (only a pool entry GC removed meanwhile is retried)", async () => {
  let failures = 0;
  let attempts = 0;
  const disk: Disk = {
    ...realDisk,
    async link(src, dst) {
      if (dst.includes(join("app", "blobs"))) {
        attempts++;
        if (failures-- > 0) throw Object.assign(new Error(`EIO: i/o error, link '${src}' -> '${dst}'`), { code: "EIO" });
      }
      return realDisk.link(src, dst);
    },
  };
  await using r = await createTestRegistry({ disk });
  failures = 1;
  const res = await r.call("POST", `/v2/app/blobs/uploads/?digest=${sha256("io error")}`, { body: "io error" });
  expect(res.status).toBe(500);
  expect(attempts).toBe(1);
  expect((await r.call("HEAD", `/v2/app/blobs/${sha256("io error")}`)).status).toBe(404);
  // the fault gone, the same push succeeds
  expect((await r.call("POST", `/v2/app/blobs/uploads/?digest=${sha256("io error")}`, { body: "io error" })).status).toBe(201);
});

test("a layout dropped into the root between two pages of the catalog is listed on the next page and served", async () => {
  await using r = await createTestRegistry();
  const img = await pushImage(r, "r00", "v1", "paged");
  const fs = require("node:fs") as typeof import("node:fs");
  for (let i = 1; i < 6; i++) fs.cpSync(join(r.root, "r00"), join(r.root, `r0${i}`), { recursive: true });
  const page = async (path: string) => {
    const res = await r.call("GET", path);
    return { repositories: ((await res.json()) as { repositories: string[] }).repositories, link: res.headers.get("link") };
  };
  const first = await page("/v2/_catalog?n=2");
  expect(first.repositories).toEqual(["r00", "r01"]);
  fs.cpSync(join(r.root, "r00"), join(r.root, "r02a"), { recursive: true }); // dropped in between pages
  const second = await page(/<([^>]+)>/.exec(first.link!)![1]!);
  expect(second.repositories).toEqual(["r02", "r02a"]);
  expect(await (await r.call("GET", "/v2/r02a/manifests/v1")).text()).toBe(img.manifest);
  expect(await (await r.call("GET", "/v2/r02a/tags/list")).json()).toEqual({ name: "r02a", tags: ["v1"] });
});
