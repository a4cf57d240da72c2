/**
 * The power-cut harness shared by test/storage/powercut.test.ts and scripts/powercut.ts:
 * runs a workload (test/helpers/powercut-workloads.ts) on a {@link SimDisk} that loses power
 * after its Nth operation, restarts the engine (fresh Store, Meta, Registry; start-up
 * recovery) on what survived, and checks the invariants:
 *
 * - recovery finishes, leaves no upload session or temp file behind, and the restarted
 *   registry accepts a new push;
 * - every index.json parses; every blob file (repository or pool) hashes to its digest;
 * - every acknowledged push is intact (manifest by tag, byte-exact, and every blob it
 *   references), unless a later acknowledged delete removed it; an operation in flight at
 *   the cut may have happened or not, but nothing else;
 * - acknowledged blobs (uploads, mounts, fetches) are there byte-exact until a GC pass may
 *   take them; acknowledged deletes stay deleted.
 *
 * One case is one seed: the seed picks the cut point, the durability reading (strict: only
 * what was fsynced survives; adversarial: each unsynced change may survive or not) and
 * whether hard links work, so a failing case is replayed from its seed alone.
 */
import { createHash } from "node:crypto";
import { basename, dirname } from "node:path";
import { mock } from "bun:test";
import * as hash from "../../daemon/platform/hash";
import { TEMP_PREFIX } from "../../daemon/platform/disk";
import { parseIndexDoc } from "../../daemon/oci/layoutindex";
import type { Algorithm } from "../../daemon/oci/digest";
import { createLifecycleRegistry, type LifecycleRegistry } from "./lifecycle";
import { sha256 } from "./registry";
import { SimDisk } from "./simdisk";

/** The storage root on every simulated disk. */
export const ROOT = "/sim/root";

// blobs.mount verifies a blob of a dropped layout with hashFile, which reads through node:fs
// behind the Disk seam. Files under the simulated root are hashed from the simulator (its
// current view, as the page cache would serve them); every other path keeps the real function.
const realHashFile = hash.hashFile;
let activeDisk: SimDisk | undefined;
mock.module("../../daemon/platform/hash", () => ({
  ...hash,
  hashFile: async (algorithm: Algorithm, path: string) =>
    activeDisk && path.startsWith(`${ROOT}/`) ? createHash(algorithm).update(await activeDisk.readFile(path)).digest("hex") : realHashFile(algorithm, path),
}));

/** What a repo:tag is expected to be. */
export type Expect = { kind: "present"; manifest: string; blobs: string[] } | { kind: "absent" } | { kind: "any" };

/** What the workload was told: acknowledged states, and what was in flight at the cut. */
export interface Model {
  state: Map<string, Expect>;
  inFlight: Map<string, Expect>;
  /** Acknowledged blobs (path -> bytes), until a GC pass may collect them. */
  blobs: Map<string, string>;
  /** Blob paths whose deletion was acknowledged. */
  deleted: Set<string>;
  /** Repositories written by another tool without fsync: their own files are not berth's to keep. */
  foreign: Set<string>;
}

/** What a workload gets. */
export interface WorkContext {
  r: LifecycleRegistry;
  disk: SimDisk;
  model: Model;
  /** Runs `op`; once it returns, `changes` are acknowledged. */
  run(changes: [string, Expect][], op: () => Promise<void>): Promise<void>;
}

/** One workload: a sequence of operations on a fresh root. */
export interface Workload {
  name: string;
  /** Run on the disk before the cut is armed, and made durable (a layout dropped long ago). */
  prepare?(disk: SimDisk, model: Model): Promise<void>;
  run(w: WorkContext): Promise<void>;
}

/** The registry every case opens: GC of untagged manifests, retention keeping 1 in b/*. */
export function openRegistry(disk: SimDisk): Promise<LifecycleRegistry> {
  activeDisk = disk;
  return createLifecycleRegistry(
    {
      gc: { intervalMs: 0, graceMs: 0, untagged: true, orphanReferrers: true, emptyRepositories: true },
      retention: { intervalMs: 0, dryRun: false, policies: [{ repositories: ["b/*"], keepLast: 1, keepTags: [], keepWithinMs: 0, untaggedAfterMs: 0 }] },
    },
    { root: ROOT, disk, dbPath: ":memory:" },
  );
}

/** Throws unless the response has `status`. */
export async function ok(res: Promise<Response>, status: number): Promise<void> {
  const r = await res;
  if (r.status !== status) throw new Error(`status ${r.status}: ${await r.text()}`);
}

/** A small PRNG (mulberry32): the same seed gives the same case. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function emptyModel(): Model {
  return { state: new Map(), inFlight: new Map(), blobs: new Map(), deleted: new Set(), foreign: new Set() };
}

async function execute(workload: Workload, disk: SimDisk, model: Model): Promise<void> {
  const r = await openRegistry(disk);
  try {
    const run = async (changes: [string, Expect][], op: () => Promise<void>) => {
      for (const [k, v] of changes) model.inFlight.set(k, v);
      await op();
      for (const [k, v] of changes) {
        model.state.set(k, v);
        model.inFlight.delete(k);
      }
    };
    await workload.run({ r, disk, model, run });
  } finally {
    await Promise.resolve(r[Symbol.asyncDispose]()).catch(() => {}); // a dead disk may refuse
  }
}

async function freshDisk(workload: Workload, model: Model, links: boolean): Promise<SimDisk> {
  const disk = new SimDisk();
  disk.links = links;
  await disk.mountPoint(ROOT);
  if (workload.prepare) {
    await workload.prepare(disk, model);
    // made durable: every file synced, every directory entry synced
    for (const path of disk.files(ROOT)) await (await disk.openAppend(path)).sync();
    const dirs = new Set<string>();
    for (const path of disk.files(ROOT)) for (let d = path.slice(0, path.lastIndexOf("/")); d.length > 1; d = d.slice(0, d.lastIndexOf("/"))) dirs.add(d);
    for (const d of dirs) await disk.syncDir(d);
    await disk.syncDir("/");
  }
  return disk;
}

/**
 * Runs the workload without a cut: its operation count, and `failure` if the invariants do
 * not hold even then (the power lost after the workload finished).
 */
export async function measure(workload: Workload, links = true): Promise<{ ops: number; failure?: string }> {
  const model = emptyModel();
  const disk = await freshDisk(workload, model, links);
  const base = disk.counts.ops;
  await execute(workload, disk, model);
  if (model.inFlight.size > 0) throw new Error(`${workload.name}: the workload did not finish without a cut`);
  const ops = disk.counts.ops - base;
  try {
    await check(disk.survivors(), model);
    return { ops };
  } catch (err) {
    return { ops, failure: (err as Error).message };
  }
}

/** The outcome of one case. */
export interface CaseResult {
  cutAt: number;
  /** Operations took random turns to complete (see SimDisk.jitter). */
  jitter: boolean;
  adversarial: boolean;
  links: boolean;
  checks: number;
  failure?: string;
  trace?: string[];
}

/**
 * One case: cut the power at an operation drawn from `seed` over `ops` (the workload's
 * count from {@link measure}), restart, check. Never throws: a broken invariant is `failure`.
 */
export async function runCase(workload: Workload, ops: number, seed: number, trace = false): Promise<CaseResult> {
  const random = prng(seed);
  const cutAt = 1 + Math.floor(random() * ops);
  const adversarial = random() < 0.5;
  const links = random() < 0.75;
  const jitter = random() < 0.5 ? prng(seed ^ 0x5eed) : undefined;
  const model = emptyModel();
  const disk = await freshDisk(workload, model, links);
  disk.cutAt = disk.counts.ops + cutAt;
  disk.jitter = jitter;
  if (trace) disk.trace = [];
  const result: CaseResult = { cutAt, jitter: jitter !== undefined, adversarial, links, checks: 0 };
  try {
    await execute(workload, disk, model);
  } catch (err) {
    disk.trace?.push(`workload stopped (dead=${disk.dead}): ${(err as Error).message}`);
    if (!disk.dead) result.failure = `the workload failed before the cut: ${(err as Error).message}`;
  }
  if (!result.failure) {
    try {
      result.checks = await check(disk.survivors(adversarial ? random : undefined), model);
    } catch (err) {
      result.failure = (err as Error).message;
    }
  }
  if (result.failure) result.trace = disk.trace;
  return result;
}

/** Restarts on `disk` and checks every invariant; returns the number of checks made. */
async function check(disk: SimDisk, model: Model): Promise<number> {
  let checks = 0;
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  const r = await openRegistry(disk); // recovery must finish
  try {
    checks++;
    // What start-up promises to clean: upload sessions, and temp files in the pool and in
    // layouts. (A cut while a repository is being created can leave a temp file in a
    // directory that never got its index.json; that is no layout, and is not cleaned.)
    const inLayout = (dir: string) => {
      const repo = basename(dirname(dir)) === "blobs" ? dirname(dirname(dir)) : dir;
      return dir.startsWith(`${ROOT}/.berth/pool/`) || disk.stat(`${repo}/index.json`)?.isFile === true;
    };
    const leftovers = disk.files(`${ROOT}/.berth/uploads`).concat(disk.files(ROOT).filter((p) => basename(p).startsWith(TEMP_PREFIX) && inLayout(dirname(p))));
    if (leftovers.length > 0) throw new Error(`start-up left ${leftovers.join(", ")}`);
    checks++;
    for (const path of disk.files(ROOT)) {
      if ([...model.foreign].some((repo) => path.startsWith(`${ROOT}/${repo}/`))) continue;
      if (path.endsWith("/index.json")) {
        parseIndexDoc(text(await disk.readFile(path)));
        checks++;
      }
      const m = /\/(?:blobs|pool)\/(sha256|sha512)\/([0-9a-f]+)$/.exec(path);
      if (m) {
        const actual = createHash(m[1]!).update(await disk.readFile(path)).digest("hex");
        if (actual !== m[2]) throw new Error(`${path} holds bytes that hash to ${actual}`);
        checks++;
      }
    }
    for (const key of new Set([...model.state.keys(), ...model.inFlight.keys()])) {
      const [repo, tag] = key.split(":") as [string, string];
      const res = await r.call("GET", `/v2/${repo}/manifests/${tag}`);
      const got = res.status === 200 ? await res.text() : undefined;
      const allowed = [model.state.get(key), model.inFlight.get(key)].filter((e): e is Expect => e !== undefined);
      if (!model.state.has(key)) allowed.push({ kind: "absent" }); // in flight, never acknowledged before
      const match = allowed.find((e) => (e.kind === "any" ? true : e.kind === "absent" ? got === undefined : got === e.manifest));
      if (!match) throw new Error(`${key}: got ${got === undefined ? `status ${res.status}` : "other bytes"}, expected ${allowed.map((e) => e.kind).join(" or ")}`);
      checks++;
      if (match.kind === "present") {
        for (const b of match.blobs) {
          const path = `${ROOT}/${repo}/blobs/sha256/${sha256(b).slice(7)}`;
          if (!disk.stat(path) || text(await disk.readFile(path)) !== b) throw new Error(`${key}: blob ${sha256(b)} is ${disk.stat(path) ? "damaged" : "missing"}`);
          checks++;
        }
      }
    }
    for (const [path, data] of model.blobs) {
      const got = disk.stat(path) ? text(await disk.readFile(path)) : undefined;
      if (got !== data) throw new Error(`acknowledged blob ${path.slice(ROOT.length)} is ${got === undefined ? "missing" : "damaged"}`);
      // and served: the repository it is in survived as a layout
      const m = /^\/(.+)\/blobs\/(sha256|sha512)\/([0-9a-f]+)$/.exec(path.slice(ROOT.length))!;
      const head = await r.call("HEAD", `/v2/${m[1]}/blobs/${m[2]}:${m[3]}`);
      if (head.status !== 200) throw new Error(`acknowledged blob ${path.slice(ROOT.length)} is not served (HEAD: ${head.status})`);
      checks += 2;
    }
    for (const path of model.deleted) {
      if (disk.stat(path)) throw new Error(`deleted blob ${path.slice(ROOT.length)} is back`);
      checks++;
    }
    await ok(r.call("POST", `/v2/after/blobs/uploads/?digest=${sha256("after the cut")}`, { body: "after the cut" }), 201);
    checks++;
  } finally {
    await Promise.resolve(r[Symbol.asyncDispose]()).catch(() => {});
  }
  return checks;
}
