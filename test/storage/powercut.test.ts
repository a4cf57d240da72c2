/**
 * Power-loss proofs with the simulator (test/helpers/simdisk.ts) through the harness in
 * test/helpers/powercut.ts: every workload (push, delete, GC, retention, sync fetches,
 * layout adoption) is cut at seeded random points, restarted on what survived and checked
 * (acknowledged work intact byte-exact, acknowledged deletes gone, no torn file, start-up
 * cleaned up). The suite keeps a small count; scripts/powercut.ts runs thousands.
 */
import { describe, expect, test } from "bun:test";
import { dirname } from "node:path";
import { measure, ok, openRegistry, ROOT, runCase } from "../helpers/powercut";
import type { LifecycleRegistry } from "../helpers/lifecycle";
import { sha256 } from "../helpers/registry";
import { WORKLOADS } from "../helpers/powercut-workloads";
import { SimDisk } from "../helpers/simdisk";

const CUTS = Number(process.env.POWERCUT_CUTS ?? 30);
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytes = (s: string) => new TextEncoder().encode(s);

describe("power cuts", () => {
  for (const workload of WORKLOADS) {
    test(`${workload.name}: ${CUTS} random cuts; acknowledged work survives, nothing torn is served`, async () => {
      // without a cut (the power lost after the end), with links and with copies
      for (const links of [true, false]) expect((await measure(workload, links)).failure).toBeUndefined();
      const { ops } = await measure(workload);
      let checks = 0;
      const failures: string[] = [];
      for (let seed = 1; seed <= CUTS; seed++) {
        const r = await runCase(workload, ops, seed);
        checks += r.checks;
        if (r.failure) failures.push(`seed ${seed}: ${r.failure}`);
      }
      expect(failures).toEqual([]);
      expect(checks).toBeGreaterThan(CUTS * 3);
    });
  }

  test("a layout copied in without fsync and mounted from at once: the acknowledged blob survives a power loss", async () => {
    // The regression case for blobs.mount linking a dropped layout's unsynced file into the
    // pool and the repository: after the power loss the blob was empty.
    const adoptFresh = WORKLOADS.find((w) => w.name === "adopt-fresh")!;
    expect((await measure(adoptFresh, true)).failure).toBeUndefined();
    const readOnly = WORKLOADS.find((w) => w.name === "adopt-ro")!; // files berth may not write are copied
    expect((await measure(readOnly, true)).failure).toBeUndefined();
  });
});

describe("the simulator", () => {
  test("keeps only synced data and synced directory entries", async () => {
    const d = new SimDisk();
    await d.mountPoint("/m");
    const f = await d.openAppend("/m/a");
    await f.write([bytes("synced")]);
    await f.sync();
    await f.write([bytes(" lost")]);
    await d.syncDir("/m");
    await d.link("/m/a", "/m/b"); // entry never synced
    await d.mkdirp("/m/dir/sub"); // neither
    const s = d.survivors();
    expect(text(await s.readFile("/m/a"))).toBe("synced");
    expect(s.stat("/m/b")).toBeUndefined();
    expect(s.stat("/m/dir")).toBeUndefined();
    d.cutAt = d.counts.ops + 1;
    await expect(d.unlink("/m/a")).rejects.toThrow("EIO");
    expect(d.dead).toBe(true);
  });

  test("copy() is durable only after its own fsync, and a cut inside it leaves no copy", async () => {
    const outcomes = new Set<string>();
    for (let step = 1; step <= 6; step++) {
      const d = new SimDisk();
      await d.mountPoint("/m");
      const f = await d.openAppend("/m/src");
      await f.write([bytes("payload")]);
      await f.sync();
      await d.syncDir("/m");
      d.cutAt = d.counts.ops + step;
      const copied = await d.copy("/m/src", "/m/dst").then(() => true, () => false);
      if (copied) {
        d.cutAt = undefined;
        d.dead = false;
      }
      await d.syncDir("/m").catch(() => {}); // an fsync of the directory after the copy, if the power lasts
      const s = d.survivors();
      const names = s.readdir("/m").filter((n) => n !== "src").sort();
      const dst = s.stat("/m/dst") ? text(await s.readFile("/m/dst")) : undefined;
      if (dst !== undefined) expect(dst).toBe("payload"); // never torn: linked only after the fsync
      outcomes.add(`${step}:${names.join(",")}`);
    }
    // steps: create temp, write, fsync, link, unlink temp; only a completed copy has dst
    expect([...outcomes]).toEqual(["1:", "2:", "3:", "4:", "5:", "6:dst"]);
  });

  test("adversarial survivors keep or lose each unsynced change, never a synced one", async () => {
    const kept = { entry: 0, lost: 0, tails: new Set<string>() };
    for (let seed = 1; seed <= 64; seed++) {
      const d = new SimDisk();
      await d.mountPoint("/m");
      const f = await d.openAppend("/m/a");
      await f.write([bytes("durable")]);
      await f.sync();
      await d.syncDir("/m");
      await f.write([bytes(" tail")]);
      await (await d.openAppend("/m/new")).write([bytes("x")]);
      let state = seed;
      const s = d.survivors(() => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31));
      const a = text(await s.readFile("/m/a"));
      expect(a.slice(0, 7)).toBe("durable");
      kept.tails.add(a === "durable" ? "synced" : a === "durable tail" ? "whole" : a.includes("\0") ? "zeros" : "short");
      if (s.stat("/m/new")) kept.entry++;
      else kept.lost++;
    }
    expect(kept.entry).toBeGreaterThan(0);
    expect(kept.lost).toBeGreaterThan(0);
    expect([...kept.tails].sort()).toEqual(["short", "synced", "whole", "zeros"]);
  });

  test("without links, cross-directory links fail with EXDEV; read-only files refuse writes and links", async () => {
    const d = new SimDisk();
    d.links = false;
    await d.mountPoint(`${ROOT}/x`);
    await d.mkdirp(`${ROOT}/y`);
    await (await d.openAppend(`${ROOT}/x/a`)).write([bytes("a")]);
    await expect(d.link(`${ROOT}/x/a`, `${ROOT}/y/a`)).rejects.toThrow("EXDEV");
    expect(await d.link(`${ROOT}/x/a`, `${ROOT}/x/b`)).toBe(true);
    d.readOnly.add(`${ROOT}/x/a`);
    await expect(d.openAppend(`${ROOT}/x/a`)).rejects.toThrow("EACCES");
    await expect(d.link(`${ROOT}/x/a`, `${ROOT}/x/c`)).rejects.toThrow("EPERM");
    expect(await d.copy(`${ROOT}/x/a`, `${ROOT}/y/a`)).toBe(true);
  });
});

describe("races held open at a chosen operation", () => {
  // A first push of a blob links it and is held in its directory fsync; meanwhile a second
  // request for the same blob is acknowledged; then the power goes. The blob must survive.
  const second: [string, (r: LifecycleRegistry) => Promise<Response>, "together" | "after"][] = [
    // Regression: the push whose link found the blob there (EEXIST) was acknowledged without fsyncing.
    ["a push of the same blob at the same moment", (r) => r.call("POST", `/v2/r/blobs/uploads/?digest=${sha256("raced")}`, { body: "raced" }), "together"],
    ["a push of the same blob that finds it linked", (r) => r.call("POST", `/v2/r/blobs/uploads/?digest=${sha256("raced")}`, { body: "raced" }), "after"],
    ["a mount of the blob into the same repository", (r) => r.call("POST", `/v2/r/blobs/uploads/?mount=${sha256("raced")}`), "after"],
  ];
  for (const [name, request, when] of second) {
    test(`${name}, acknowledged while the first push's fsync is under way, survives the cut`, async () => {
      const disk = new SimDisk();
      await disk.mountPoint(ROOT);
      const r = await openRegistry(disk);
      await ok(r.call("POST", `/v2/r/blobs/uploads/?digest=${sha256("first")}`, { body: "first" }), 201); // the repository exists
      const target = `${ROOT}/r/blobs/sha256/${sha256("raced").slice(7)}`;
      let release!: () => void;
      const held = new Promise<void>((res) => (release = res));
      let linked = false;
      let holding = false;
      disk.gate = (op, path) => {
        if (op === "link" && path === target) linked = true;
        else if (op === "syncDir" && path === dirname(target) && linked && !holding) {
          holding = true;
          return held; // the first push's directory fsync, still under way
        }
        return undefined;
      };
      const first = r.call("POST", `/v2/r/blobs/uploads/?digest=${sha256("raced")}`, { body: "raced" }).then((res) => res.status);
      if (when === "after") for (let i = 0; i < 10_000 && !holding; i++) await null;
      const status = await request(r).then((res) => res.status);
      expect(holding).toBe(true); // the second was answered while the first was held
      expect(status).toBe(201);
      disk.dead = true; // the power goes before the held fsync completes
      release();
      await first.catch(() => {});
      const after = disk.survivors();
      expect(after.stat(target)).toBeDefined();
      expect(text(await after.readFile(target))).toBe("raced");
      await Promise.resolve(r[Symbol.asyncDispose]()).catch(() => {});
    });
  }
});

describe("a GC pass is durable when it returns", () => {
  test("a pool entry and a repository's blob it unlinked stay gone after a power cut", async () => {
    const disk = new SimDisk();
    await disk.mountPoint(ROOT);
    const r = await openRegistry(disk);
    // two blobs no manifest references: the pass (grace 0) unlinks both names of each
    const garbage = [sha256("garbage one"), sha256("garbage two")].sort();
    await ok(r.call("POST", `/v2/app/blobs/uploads/?digest=${sha256("garbage one")}`, { body: "garbage one" }), 201);
    await ok(r.call("POST", `/v2/app/blobs/uploads/?digest=${sha256("garbage two")}`, { body: "garbage two" }), 201);
    const report = await r.lifecycle.gc();
    expect(report.blobs.map((b) => b.digest).sort()).toEqual(garbage);
    expect(report.pool.map((p) => p.digest).sort()).toEqual(garbage);
    const after = disk.survivors();
    for (const b of report.blobs) {
      const hex = b.digest.slice(7);
      expect(after.stat(`${ROOT}/.berth/pool/sha256/${hex}`)).toBeUndefined();
      expect(after.stat(`${ROOT}/app/blobs/sha256/${hex}`)).toBeUndefined();
    }
  });
});
