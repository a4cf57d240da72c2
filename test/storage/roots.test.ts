/**
 * Several storage roots, in-process: routing by the longest prefix, the `[[storage.subpaths]]`
 * config checks (tables, prefixes, duplicate prefixes, nested and shared roots), the
 * composite's own behaviour over two real roots (a mount within a root is a link, across
 * roots a copy admitted by the target root, the catalog merged in order with names another
 * root claims left out, an unavailable root answering 503 UNAVAILABLE), and opening the roots
 * at start-up (a missing or read-only root named in the error, or left unavailable when it is
 * not required).
 */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../daemon/config/load";
import { checkPaths } from "../../daemon/config/verify";
import { validate } from "../../daemon/config/schema";
import { subpathLayoutProblems, type SubpathConfig } from "../../daemon/config/subpaths";
import { silentLogger } from "../../daemon/log";
import { type Digest, requireDigest } from "../../daemon/oci/digest";
import { RegistryError } from "../../daemon/oci/errors";
import { realDisk } from "../../daemon/platform/disk";
import { resourceError } from "../../daemon/registry/translate";
import type { Storage } from "../../daemon/storage/api";
import { StorageError } from "../../daemon/storage/errors";
import { CompositeStorage } from "../../daemon/storage/roots/composite";
import { openRoots } from "../../daemon/storage/roots/open";
import { RootRouter } from "../../daemon/storage/roots/route";
import { RootLifecycles, RootMarks } from "../../daemon/storage/roots/lifecycles";
import { lifecycleOptions } from "../../daemon/lifecycle/options";
import { Meta } from "../../daemon/meta/meta";
import { openDatabase } from "../../daemon/platform/sqlite";
import { Registry } from "../../daemon/registry/registry";
import { Store } from "../../daemon/storage/store";

const enc = new TextEncoder();
const digestOf = (b: Uint8Array): Digest => requireDigest(`sha256:${createHash("sha256").update(b).digest("hex")}`);

async function put(s: Storage, repo: string, bytes: Uint8Array): Promise<Digest> {
  const d = digestOf(bytes);
  const ingest = await s.blobs.ingest(repo, "sha256");
  await ingest.write([bytes]);
  await ingest.commit(d);
  return d;
}

/** Two real roots behind a composite: "" on `a`, "factory/" on `b`; `admitB` admits root b's bytes. */
async function twoRoots(admitB?: (repo: string, bytes: number) => Promise<void>) {
  const base = mkdtempSync(join(tmpdir(), "berth-roots-"));
  const dirs = [join(base, "a"), join(base, "b")];
  const stores = dirs.map((root, i) => new Store(realDisk, { root, dedupe: true, maxBlobBytes: 0, manifestCacheBytes: 0, ...(i === 1 && admitB ? { admit: admitB } : {}) }, silentLogger));
  for (const s of stores) await s.recover();
  const storage = new CompositeStorage([{ prefix: "", storage: stores[0] }, { prefix: "factory/", storage: stores[1] }], 1 << 20);
  const pool = (i: number, d: Digest) => join(dirs[i]!, ".berth", "pool", "sha256", d.hex);
  return {
    storage,
    stores: stores as [Store, Store],
    dirs,
    pool,
    [Symbol.dispose]() {
      storage.uploads.stop();
      rmSync(base, { recursive: true, force: true });
    },
  };
}

const exists = (path: string) => statSync(path, { throwIfNoEntry: false }) !== undefined;

describe("routing", () => {
  test("the longest matching prefix wins; the main root takes the rest; prefixes are whole components", () => {
    const r = new RootRouter(["", "factory/", "factory/cams/", "site/a/"]);
    expect(r.route("factory/x")).toBe(1);
    expect(r.route("factory/cams/front")).toBe(2);
    expect(r.route("factory/camsx/front")).toBe(1);
    expect(r.route("site/a/b")).toBe(3);
    expect(r.route("site/b")).toBe(0);
    expect(r.route("factory")).toBe(0);
    expect(r.route("factoryx/y")).toBe(0);
    expect(r.route("library/alpine")).toBe(0);
  });
});

describe("[[storage.subpaths]] config", () => {
  const problemsOf = (subpaths: unknown[]) => validate({ storage: { root: "/srv/berth", subpaths } }).problems;

  test("a valid table is read with its defaults", () => {
    const { config, problems } = validate({ storage: { root: "/srv/berth", subpaths: [{ prefix: "factory/", root: "/mnt/ssd/berth", max_bytes: "2 GiB", min_free: "10%" }] } });
    expect(problems).toEqual([]);
    expect(config.storage.subpaths).toEqual([{ prefix: "factory/", root: "/mnt/ssd/berth", required: true, dedupe: undefined, maxBytes: 2 * 1024 ** 3, minFree: { percent: 10 }, gc: true, scrub: true }]);
  });

  test("bad tables are refused with the key and the value", () => {
    expect(problemsOf([{ root: "/x" }])).toContain("storage.subpaths[0].prefix: required");
    expect(problemsOf([{ prefix: "factory", root: "/x" }])).toEqual([`storage.subpaths[0].prefix: "factory" must end with "/" (whole name components, e.g. "factory/")`]);
    expect(problemsOf([{ prefix: "Factory/", root: "/x" }])[0]).toStartWith(`storage.subpaths[0].prefix: "Factory/" is not a valid repository name prefix`);
    expect(problemsOf([{ prefix: "a//", root: "/x" }])[0]).toStartWith(`storage.subpaths[0].prefix: "a//" is not a valid repository name prefix`);
    expect(problemsOf([{ prefix: "a/blobs/", root: "/x" }])[0]).toContain(`reserved path component "blobs"`);
    expect(problemsOf([{ prefix: "a/", root: "/x", quota: 1 }])).toEqual(["storage.subpaths[0].quota: unknown key"]);
    expect(problemsOf([{ prefix: "a/", root: "/x", max_bytes: "lots" }])[0]).toStartWith("storage.subpaths[0].max_bytes: expected a size in bytes");
    expect(problemsOf([{ prefix: "a/", root: "/x", required: "no" }])).toEqual(["storage.subpaths[0].required: expected true or false"]);
    expect(problemsOf([{ prefix: "a/" }])).toEqual(["storage.subpaths[0].root: required"]);
    expect(validate({ storage: { subpaths: { prefix: "a/" } } }).problems).toEqual(["storage.subpaths: expected an array of tables ([[storage.subpaths]])"]);
  });

  const sp = (prefix: string, root: string): SubpathConfig => ({ prefix, root, required: true, dedupe: undefined, maxBytes: 0, minFree: undefined, gc: true, scrub: true });

  test("duplicate prefixes, a shared root and nested roots are refused; nested prefixes are allowed", () => {
    expect(subpathLayoutProblems("/srv/berth", [sp("factory/", "/mnt/a"), sp("factory/cams/", "/mnt/b")])).toEqual([]);
    expect(subpathLayoutProblems("/srv/berth", [sp("factory/", "/mnt/a"), sp("factory/", "/mnt/b")])).toEqual([`storage.subpaths[1].prefix: "factory/" is already the prefix of storage.subpaths[0]`]);
    expect(subpathLayoutProblems("/srv/berth", [sp("a/", "/srv/berth/")])).toEqual([`storage.subpaths[0].root: "/srv/berth/" is the same directory as storage.root; each root needs its own directory`]);
    expect(subpathLayoutProblems("/srv/berth", [sp("a/", "/mnt/a"), sp("b/", "/mnt/a")])).toEqual([`storage.subpaths[1].root: "/mnt/a" is the same directory as storage.subpaths[0].root; each root needs its own directory`]);
    expect(subpathLayoutProblems("/srv/berth", [sp("a/", "/srv/berth/ssd")])).toEqual([`storage.subpaths[0].root: "/srv/berth/ssd" lies inside storage.root ("/srv/berth"); roots must not nest`]);
    expect(subpathLayoutProblems("/srv/berth", [sp("a/", "/srv")])).toEqual([`storage.subpaths[0].root: "/srv" holds storage.root ("/srv/berth"); roots must not nest`]);
    expect(subpathLayoutProblems("/srv/berth", [sp("a/", "/mnt/a"), sp("b/", "/mnt/a/b")])).toEqual([`storage.subpaths[1].root: "/mnt/a/b" lies inside storage.subpaths[0].root ("/mnt/a"); roots must not nest`]);
    expect(subpathLayoutProblems("/srv/berth", [sp("a/", "/mnt/a/b"), sp("b/", "/mnt/a")])).toEqual([`storage.subpaths[0].root: "/mnt/a/b" lies inside storage.subpaths[1].root ("/mnt/a"); roots must not nest`]);
    expect(subpathLayoutProblems("/srv/berth", [sp("a/", "/srv/berthx")])).toEqual([]);
  });
});

test("berth verify's checks report nested roots, duplicate prefixes and a missing required root together", () => {
  const base = mkdtempSync(join(tmpdir(), "berth-verify-"));
  try {
    const { config, problems } = validate({
      storage: {
        root: join(base, "main"),
        subpaths: [
          { prefix: "a/", root: join(base, "main", "inner") },
          { prefix: "a/", root: join(base, "gone") },
          { prefix: "b/", root: join(base, "optional"), required: false },
        ],
      },
    });
    expect(problems).toEqual([]);
    expect(checkPaths(config)).toEqual([
      `storage.subpaths[1].prefix: "a/" is already the prefix of storage.subpaths[0]`,
      `storage.subpaths[0].root: "${join(base, "main", "inner")}" lies inside storage.root ("${join(base, "main")}"); roots must not nest`,
      `storage.subpaths[0].root: storage root for "a/": "${join(base, "main", "inner")}" does not exist (is its disk mounted?); berth does not create a subpath root`,
      `storage.subpaths[1].root: storage root for "a/": "${join(base, "gone")}" does not exist (is its disk mounted?); berth does not create a subpath root`,
    ]);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

describe("the composite over two roots", () => {
  test("each repository's blobs go to its root's pool; a mount within a root is a link (one stored copy)", async () => {
    using r = await twoRoots();
    const s = r.storage;
    const layer = enc.encode("a layer for the factory");
    const d = await put(s, "factory/app", layer);
    expect(exists(r.pool(1, d))).toBe(true);
    expect(exists(r.pool(0, d))).toBe(false);
    await s.indexes.ensure("factory/other");
    expect(await s.blobs.mount("factory/other", d, "factory/app")).toBe(true);
    expect(s.blobs.stat("factory/other", d)?.id).toBe(s.blobs.stat("factory/app", d)?.id!);
    expect(r.stores[1].meter.figures().poolBlobs).toBe(1);
    expect(r.stores[0].meter.figures().poolBlobs).toBe(0);
  });

  test("a mount across roots is a copy into the target root's pool, and further mounts there link to that copy", async () => {
    using r = await twoRoots();
    const s = r.storage;
    const layer = enc.encode("a base layer pushed to the main root first");
    const d = await put(s, "library/base", layer);
    expect(await s.blobs.canMount(d, "library/base")).toBe(true);
    await s.indexes.ensure("factory/app");
    expect(await s.blobs.mount("factory/app", d, "library/base")).toBe(true);
    expect(await s.blobs.read("factory/app", d)).toEqual(layer);
    expect(exists(r.pool(1, d))).toBe(true);
    // two stored copies, one per root: different files
    expect(statSync(r.pool(1, d)).ino).not.toBe(statSync(r.pool(0, d)).ino);
    await s.indexes.ensure("factory/second");
    expect(await s.blobs.mount("factory/second", d, "library/base")).toBe(true);
    expect(s.blobs.stat("factory/second", d)?.id).toBe(s.blobs.stat("factory/app", d)?.id!);
    expect(r.stores[1].meter.figures().poolBlobs).toBe(1);
    // and back the other way
    const other = await put(s, "factory/only", enc.encode("only on the factory disk"));
    await s.indexes.ensure("library/copy");
    expect(await s.blobs.mount("library/copy", other, "factory/only")).toBe(true);
    expect(exists(r.pool(0, other))).toBe(true);
    // a source that does not hold the blob gives nothing to mount
    const missing = digestOf(enc.encode("nobody"));
    expect(await s.blobs.mount("factory/app", missing, "library/base")).toBe(false);
  });

  test("a cross-root copy is admitted by the target root, and a refusal stores nothing there", async () => {
    const asked: [string, number][] = [];
    using r = await twoRoots(async (repo, bytes) => {
      asked.push([repo, bytes]);
      throw new StorageError("quota", `the quota of "factory/" is full`);
    });
    const s = r.storage;
    const layer = enc.encode("too big for the factory disk");
    const d = await put(s, "library/base", layer);
    await s.indexes.ensure("factory/app");
    await expect(s.blobs.mount("factory/app", d, "library/base")).rejects.toMatchObject({ fault: "quota" });
    expect(asked).toEqual([["factory/app", layer.byteLength]]);
    expect(exists(r.pool(1, d))).toBe(false);
    expect(s.blobs.stat("factory/app", d)).toBeUndefined();
  });

  test("the catalog merges the roots in order; a name a root holds under another root's prefix is left out and reported", async () => {
    using r = await twoRoots();
    await put(r.storage, "zeta", enc.encode("z"));
    await put(r.storage, "factory/b", enc.encode("b"));
    await put(r.storage, "alpha", enc.encode("a"));
    await put(r.storage, "factory/a", enc.encode("a"));
    // written straight into the main root before the prefix was configured
    await put(r.stores[0], "factory/stale", enc.encode("stale"));
    expect(await r.storage.repositories()).toEqual(["alpha", "factory/a", "factory/b", "zeta"]);
    expect(await r.storage.shadowed()).toEqual([{ prefix: "", repositories: ["factory/stale"] }]);
    expect([...r.storage.meter.figures().repositories.keys()].sort()).toEqual(["alpha", "factory/a", "factory/b", "zeta"]);
  });

  test("a root that is unavailable answers its repositories with 503 UNAVAILABLE naming the prefix; the others serve", async () => {
    using r = await twoRoots();
    const s = new CompositeStorage([{ prefix: "", storage: r.stores[0] }, { prefix: "factory/", storage: undefined }], 1 << 20);
    await put(s, "library/base", enc.encode("still served"));
    expect(await s.repositories()).toEqual(["library/base"]);
    let caught: unknown;
    try {
      s.blobs.stat("factory/app", digestOf(enc.encode("x")));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StorageError);
    expect((caught as StorageError).fault).toBe("unavailable");
    const oci = resourceError(caught);
    expect(oci).toBeInstanceOf(RegistryError);
    expect(oci!.status).toBe(503);
    expect(oci!.code).toBe("UNAVAILABLE");
    expect(oci!.detail).toContain(`"factory/"`);
    await expect(Promise.resolve().then(() => s.indexes.index("factory/app"))).rejects.toMatchObject({ fault: "unavailable" });
    await expect(s.uploads.start("factory/app", "sha256")).rejects.toMatchObject({ fault: "unavailable" });
    expect(await s.blobs.canMount(digestOf(enc.encode("x")), "factory/app")).toBe(false);
  });
});

describe("upload caps over several roots", () => {
  test("max_uploads and max_uploads_per_client count the sessions of every root together, concurrent starts included", async () => {
    using r = await twoRoots();
    const s = new CompositeStorage([{ prefix: "", storage: r.stores[0] }, { prefix: "factory/", storage: r.stores[1] }], 1 << 20, { maxSessions: 3, maxPerClient: 2 });
    const results = await Promise.allSettled([s.uploads.start("a", "sha256", "c1"), s.uploads.start("factory/a", "sha256", "c1"), s.uploads.start("factory/b", "sha256", "c1")]);
    expect(results.map((x) => x.status)).toEqual(["fulfilled", "fulfilled", "rejected"]);
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ fault: "too-many-uploads" });
    await s.uploads.start("factory/c", "sha256", "c2");
    await expect(s.uploads.start("b", "sha256", "c3")).rejects.toMatchObject({ fault: "too-many-uploads" });
    expect(s.uploads.count()).toBe(3);
    expect(r.stores[1].uploads.count()).toBe(2);
  });
});

describe("one lifecycle per root", () => {
  test("per-root quota, gc and scrub options; scheduled tasks named by prefix; hooks routed to the repository's root", async () => {
    using w = { base: mkdtempSync(join(tmpdir(), "berth-lc-")), [Symbol.dispose]() { rmSync(this.base, { recursive: true, force: true }); } };
    mkdirSync(join(w.base, "main"));
    mkdirSync(join(w.base, "ssd"));
    const { config } = validate({ storage: { root: join(w.base, "main") }, gc: { interval: 60 }, scrub: { interval: 120 }, quota: { max_bytes: 5000 } });
    const ssd = { prefix: "factory/", root: join(w.base, "ssd"), required: true, dedupe: undefined, maxBytes: 1000, minFree: { bytes: 0 }, gc: false, scrub: true };
    const opened = await openRoots(realDisk, config.storage.root, [ssd], { base: { maxBlobBytes: 0 }, manifestCacheBytes: 1 << 20, dedupe: true }, silentLogger);
    const db = openDatabase(":memory:");
    try {
      const options = lifecycleOptions(config);
      const marks = new RootMarks(opened.roots, opened.storage.router, db, options.gc.graceMs);
      const meta = new Meta(db);
      const registry = new Registry(opened.storage, meta, { maxManifestBytes: 1 << 20, hooks: marks.hooks }, silentLogger);
      const lcs = new RootLifecycles({ opened: opened.roots, router: opened.storage.router, marks, registry, meta, log: silentLogger, options });
      const scheduled: [string, number][] = [];
      lcs.start((ms, make) => void scheduled.push([make().name, ms]));
      expect(scheduled).toEqual([["gc", 60_000], ["scrub", 120_000], ["scrub factory/", 120_000]]);
      const quota = (i: number) => lcs.roots[i]!.lc.quota.figures();
      expect([quota(0).maxBytes, quota(1).maxBytes]).toEqual([5000, 1000]);
      await expect(lcs.admit(1, "factory/x", 2000)).rejects.toMatchObject({ fault: "quota" });
      await lcs.admit(0, "library/x", 2000);
      marks.hooks.touched?.("factory/x", "sha256:" + "a".repeat(64));
      expect([lcs.roots[0]!.lc.touches.size(), lcs.roots[1]!.lc.touches.size()]).toEqual([0, 1]);
      await lcs.close();
    } finally {
      db.close();
      opened.storage.uploads.stop();
      opened.release();
    }
  });
});

describe("opening the roots", () => {
  function work() {
    const base = mkdtempSync(join(tmpdir(), "berth-open-"));
    mkdirSync(join(base, "main"));
    return { base, main: join(base, "main"), [Symbol.dispose]: () => rmSync(base, { recursive: true, force: true }) };
  }
  const subpath = (root: string, required = true): SubpathConfig => ({ prefix: "factory/", root, required, dedupe: undefined, maxBytes: 0, minFree: undefined, gc: true, scrub: true });
  const options = { base: { maxBlobBytes: 0 }, manifestCacheBytes: 1 << 20, dedupe: true };

  test("a missing required root is a config error naming its key and directory; berth does not create it", async () => {
    using w = work();
    const missing = join(w.base, "ssd");
    let caught: unknown;
    try {
      await openRoots(realDisk, w.main, [subpath(missing)], options, silentLogger);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).message).toContain("storage.subpaths[0].root: 1 problem:");
    expect((caught as ConfigError).message).toContain(`storage root for "factory/": "${missing}" does not exist (is its disk mounted?); berth does not create a subpath root`);
    expect(exists(missing)).toBe(false);
  });

  test("a missing root that is not required leaves its prefix unavailable and the main root serving", async () => {
    using w = work();
    const lines: string[] = [];
    const log = { ...silentLogger, error: (msg: string, f?: Record<string, unknown>) => void lines.push(`${msg} ${JSON.stringify(f)}`) };
    const opened = await openRoots(realDisk, w.main, [subpath(join(w.base, "ssd"), false)], options, log);
    try {
      expect(opened.roots.map((r) => [r.prefix, r.store !== undefined])).toEqual([["", true], ["factory/", false]]);
      expect(lines.join("\n")).toContain(`storage root for "factory/" is unavailable`);
      await put(opened.storage, "library/x", enc.encode("x"));
      await expect(opened.storage.uploads.start("factory/x", "sha256")).rejects.toMatchObject({ fault: "unavailable" });
    } finally {
      opened.storage.uploads.stop();
      opened.release();
    }
  });

  test("the same directory under another name (a symlink) is refused", async () => {
    using w = work();
    const { symlinkSync } = await import("node:fs");
    symlinkSync(w.main, join(w.base, "alias"));
    await expect(openRoots(realDisk, w.main, [subpath(join(w.base, "alias"))], options, silentLogger)).rejects.toThrow(`is the same directory as storage.root`);
  });
});
