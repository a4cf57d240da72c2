/**
 * Power-loss proofs with the simulator in test/helpers/simdisk.ts: a workload of pushes,
 * deletes, garbage collection and retention runs on a simulated disk that loses power after
 * its Nth operation (N drawn at random over the whole workload); the engine is restarted
 * (fresh Store, Meta and Registry) on what was durable, and these invariants are checked:
 *
 * - recovery at start-up finishes, and the restarted registry accepts a new push;
 * - every index.json parses;
 * - every acknowledged push is intact (manifest by tag, every blob it references, bytes
 *   hashing to their digests), unless a later acknowledged delete removed it; an operation
 *   in flight at the cut may have happened or not, but nothing else;
 * - an acknowledged delete stays deleted;
 * - no blob file (repository or pool) holds bytes that do not match its digest.
 */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { parseIndexDoc } from "../../daemon/oci/layoutindex";
import { createLifecycleRegistry, type LifecycleRegistry } from "../helpers/lifecycle";
import { imageManifest, sha256 } from "../helpers/registry";
import { SimDisk } from "../helpers/simdisk";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";

const ROOT = "/sim/root";

type Expect = { kind: "present"; manifest: string; blobs: string[] } | { kind: "absent" };

/** What the workload was told: acknowledged states per repo:tag, and the keys in flight at the cut. */
interface Model {
  state: Map<string, Expect>;
  inFlight: Map<string, Expect>;
  /** Acknowledged blob uploads (repo, digest path, bytes), until a GC pass may collect them. */
  blobs?: Map<string, string>;
}

async function open(disk: SimDisk): Promise<LifecycleRegistry> {
  return createLifecycleRegistry(
    {
      gc: { intervalMs: 0, graceMs: 0, untagged: true, orphanReferrers: true, uploadIdleMs: 3_600_000, emptyRepositories: true },
      retention: { intervalMs: 0, dryRun: false, policies: [{ repositories: ["b/*"], keepLast: 1, keepTags: [], keepWithinMs: 0, untaggedAfterMs: 0 }] },
    },
    { root: ROOT, disk, dbPath: ":memory:" },
  );
}

async function ok(res: Promise<Response>, status: number): Promise<void> {
  const r = await res;
  if (r.status !== status) throw new Error(`status ${r.status}: ${await r.text()}`);
}

function image(seed: string, shared: string) {
  const config = JSON.stringify({ architecture: "arm64", os: "linux", seed });
  const layer = `layer of ${seed} `.repeat(30);
  return { config, layers: [layer, shared], manifest: imageManifest(config, [layer, shared]) };
}

/** Runs the workload; stops at the first failure (the cut). Returns the model. */
async function workload(r: LifecycleRegistry, model: Model): Promise<Model> {
  const run = async (changes: [string, Expect][], op: () => Promise<void>) => {
    for (const [k, v] of changes) model.inFlight.set(k, v);
    await op();
    for (const [k, v] of changes) {
      model.state.set(k, v);
      model.inFlight.delete(k);
    }
  };
  model.blobs ??= new Map();
  const pushBlob = async (repo: string, data: string, alg: "sha256" | "sha512" = "sha256") => {
    const hex = createHash(alg).update(data).digest("hex");
    await ok(r.call("POST", `/v2/${repo}/blobs/uploads/?digest=${alg}:${hex}`, { body: data }), 201);
    model.blobs!.set(`${ROOT}/${repo}/blobs/${alg}/${hex}`, data);
  };
  const push = async (repo: string, tag: string, img: ReturnType<typeof image>) => {
    const exp: Expect = { kind: "present", manifest: img.manifest, blobs: [img.config, ...img.layers] };
    await run([[`${repo}:${tag}`, exp]], async () => {
      for (const b of [img.config, ...img.layers]) await pushBlob(repo, b);
      await ok(r.call("PUT", `/v2/${repo}/manifests/${tag}`, { headers: { "Content-Type": OCI_MANIFEST }, body: img.manifest }), 201);
    });
  };
  const shared = "shared base layer ".repeat(40);
  const a1 = image("a1", shared);
  await push("a", "v1", a1);
  await push("a", "v2", image("a2", shared));
  // A sha512 blob in a second repository (its own blobs/sha512 directory).
  await run([], () => pushBlob("b/c", "sha512 payload ".repeat(10), "sha512"));
  // Push times an hour apart, so "keep the last 1" does not depend on the clock's resolution.
  const age = (tag: string, img: ReturnType<typeof image>, ms: number) => {
    for (const ref of [tag, sha256(img.manifest)]) {
      const e = r.lifecycle.usage.get("b/c", ref);
      if (e) e.pushedAt = Date.now() - ms;
    }
  };
  const b1 = image("b1", shared);
  await push("b/c", "v1", b1);
  age("v1", b1, 7_200_000);
  await run([["a:v1", { kind: "absent" }]], () => ok(r.call("DELETE", "/v2/a/manifests/v1"), 202));
  await run([], () => pushBlob("a", "an orphan blob"));
  await run([], async () => {
    model.blobs!.clear(); // from here on, unreferenced blobs may be collected
    await r.lifecycle.gc();
  });
  const b2 = image("b2", shared);
  await push("b/c", "v2", b2);
  age("v2", b2, 3_600_000);
  await run([["b/c:v1", { kind: "absent" }]], async () => {
    const report = await r.lifecycle.retention();
    if (!report.tags.some((t) => t.tag === "v1")) throw new Error("retention did not delete b/c:v1");
  });
  const a3 = image("a3", shared);
  const b3 = image("b3", "another shared layer");
  await Promise.all([push("a", "v3", a3), push("b/c", "v3", b3)]);
  const v2 = sha256(image("a2", shared).manifest);
  await run([["a:v2", { kind: "absent" }]], () => ok(r.call("DELETE", `/v2/a/manifests/${v2}`), 202));
  await run([], async () => {
    model.blobs!.clear();
    await r.lifecycle.gc();
  });
  await run([["b/c:v2", { kind: "absent" }]], async () => {
    // Retention skips what it cannot delete; only a reported deletion is acknowledged.
    const report = await r.lifecycle.retention();
    if (!report.tags.some((t) => t.tag === "v2")) throw new Error("retention did not delete b/c:v2");
  });
  return model;
}

/** Checks every invariant on a restarted registry; returns how many checks were made. */
async function checkInvariants(disk: SimDisk, r: LifecycleRegistry, model: Model): Promise<number> {
  let checks = 0;
  const text = async (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  for (const path of disk.files(ROOT)) {
    if (path.endsWith("/index.json")) {
      parseIndexDoc(await text(await disk.readFile(path)));
      checks++;
    }
    const m = /\/(?:blobs|pool)\/(sha256|sha512)\/([0-9a-f]+)$/.exec(path);
    if (m) {
      const actual = createHash(m[1]!).update(await disk.readFile(path)).digest("hex");
      if (actual !== m[2]) throw new Error(`${path} holds bytes that hash to ${actual}`);
      checks++;
    }
  }
  const keys = new Set([...model.state.keys(), ...model.inFlight.keys()]);
  for (const key of keys) {
    const [repo, tag] = key.split(":") as [string, string];
    const res = await r.call("GET", `/v2/${repo}/manifests/${tag}`);
    const got = res.status === 200 ? await res.text() : undefined;
    const allowed = [model.state.get(key), model.inFlight.get(key)].filter((e): e is Expect => e !== undefined);
    if (!model.state.has(key)) allowed.push({ kind: "absent" }); // in flight and never acknowledged before
    const match = allowed.find((e) => (e.kind === "absent" ? got === undefined : got === e.manifest));
    if (!match && process.env.POWERCUT_DEBUG) {
      const idx = await text(await disk.readFile(`${ROOT}/${repo}/index.json`)).catch(() => "none");
      console.error(key, res.status, idx, disk.files(`${ROOT}/${repo}`).join("\n"));
    }
    if (!match) throw new Error(`${key}: got ${got === undefined ? `status ${res.status}` : "other bytes"}, expected one of ${allowed.map((e) => e.kind).join("/")}`);
    checks++;
    if (match.kind === "present") {
      for (const b of match.blobs) {
        const path = `${ROOT}/${repo}/blobs/sha256/${sha256(b).slice(7)}`;
        if ((await text(await disk.readFile(path))) !== b) throw new Error(`${key}: blob ${sha256(b)} is damaged`);
        checks++;
      }
    }
  }
  for (const [path, data] of model.blobs ?? []) {
    const got = disk.stat(path) ? await text(await disk.readFile(path)) : undefined;
    if (got !== data) throw new Error(`acknowledged blob ${path.slice(ROOT.length)} is ${got === undefined ? "missing" : "damaged"}`);
    checks++;
  }
  // The restarted registry works.
  await ok(r.call("POST", `/v2/after/blobs/uploads/?digest=${sha256("after the cut")}`, { body: "after the cut" }), 201);
  checks++;
  return checks;
}

describe("power cuts", () => {
  test("at random points over push, delete, GC and retention: acknowledged work survives, nothing torn is served", async () => {
    // A run without a cut counts the operations and validates the workload itself.
    const clean = new SimDisk();
    await clean.mountPoint(ROOT);
    const base = clean.counts.ops;
    const r0 = await open(clean);
    const full = await workload(r0, { state: new Map(), inFlight: new Map() });
    await r0[Symbol.asyncDispose]();
    const total = clean.counts.ops - base;
    expect(full.inFlight.size).toBe(0);
    const survivorsOfClean = clean.survivors();
    const rClean = await open(survivorsOfClean);
    await checkInvariants(survivorsOfClean, rClean, full);
    await rClean[Symbol.asyncDispose]();

    let seed = 20240611;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const CUTS = Number(process.env.POWERCUT_CUTS ?? 300);
    let invariants = 0;
    const failures: string[] = [];
    for (let i = 0; i < CUTS; i++) {
      const cutAt = process.env.POWERCUT_AT ? base + Number(process.env.POWERCUT_AT) : base + 1 + Math.floor(random() * total);
      const disk = new SimDisk();
      await disk.mountPoint(ROOT);
      disk.cutAt = cutAt;
      if (process.env.POWERCUT_DEBUG) disk.trace = [];
      const model: Model = { state: new Map(), inFlight: new Map() };
      const r = await open(disk).catch(() => undefined);
      if (r) {
        await workload(r, model).catch((err) => {
          if (process.env.POWERCUT_DEBUG) disk.trace?.push(`workload stopped (dead=${disk.dead}): ${(err as Error).message}`);
        });
        try {
          await r[Symbol.asyncDispose]();
        } catch {
          // the disk is dead; closing may fail
        }
      }
      const after = disk.survivors();
      try {
        const restarted = await open(after); // recovery must finish
        invariants += 1 + (await checkInvariants(after, restarted, model));
        await restarted[Symbol.asyncDispose]();
      } catch (err) {
        failures.push(`cut at op ${cutAt - base}/${total}: ${(err as Error).message}`);
        if (disk.trace) console.error(disk.trace.filter((l) => !l.includes("uploads/")).slice(-60).join("\n"));
      }
    }
    console.log(`power cuts: ${CUTS} cuts over ${total} operations, ${invariants} invariant checks, ${failures.length} failures`);
    expect(failures).toEqual([]);
    expect(invariants).toBeGreaterThan(CUTS * 5);
  }, 120_000);
});

describe("the simulator", () => {
  test("keeps only synced data and synced directory entries", async () => {
    const d = new SimDisk();
    await d.mountPoint("/m");
    const f = await d.openAppend("/m/a");
    await f.write([new TextEncoder().encode("synced")]);
    await f.sync();
    await f.write([new TextEncoder().encode(" lost")]);
    await d.syncDir("/m");
    await d.link("/m/a", "/m/b"); // entry never synced
    await d.mkdirp("/m/dir/sub"); // neither
    const s = d.survivors();
    expect(new TextDecoder().decode(await s.readFile("/m/a"))).toBe("synced");
    expect(s.stat("/m/b")).toBeUndefined();
    expect(s.stat("/m/dir")).toBeUndefined();
    d.cutAt = d.counts.ops + 1;
    await expect(d.unlink("/m/a")).rejects.toThrow("EIO");
    expect(d.dead).toBe(true);
  });
});
