/**
 * The storage lifecycle in the real daemon: an idle registry writes nothing (kernel I/O
 * accounting of the process and file mtimes, while GC passes and statistics flushes keep
 * running on their intervals), pull statistics reach meta.db in batches, the admin API, and
 * `berth gc` / `berth scrub` offline.
 */
import { describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { readProcIo } from "../../daemon/platform/procio";
import { startDaemon, tempDir, writeConfig } from "../helpers/daemon";
import { imageManifest, sha256 } from "../helpers/registry";
import { traceSyscalls } from "../helpers/strace-attach";
import { waitFor } from "../helpers/clients";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";

const MAIN = resolve(import.meta.dir, "../../daemon/main.ts");

function mtimes(dir: string, out = new Map<string, number>()): Map<string, number> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.set(p, statSync(p).mtimeMs);
    if (e.isDirectory()) mtimes(p, out);
  }
  return out;
}

async function push(base: string, repo: string, tag: string, seed: string) {
  const config = JSON.stringify({ architecture: "amd64", os: "linux", seed });
  const layer = `layer ${seed} `.repeat(5000);
  for (const b of [config, layer]) {
    const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${sha256(b)}`, { method: "POST", body: b });
    expect(res.status).toBe(201);
  }
  const manifest = imageManifest(config, [layer]);
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: "PUT", headers: { "Content-Type": OCI_MANIFEST }, body: manifest });
  expect(res.status).toBe(201);
  return { manifest, layer };
}

const storageStats = async (url: string) => (await (await fetch(`${url}/api/v1/storage`)).json()) as Record<string, any>;

describe("the daemon's storage lifecycle", () => {
  test("idle means zero writes, while GC passes and statistics flushes keep running", async () => {
    await using d = await startDaemon({ storage: "\n[gc]\ninterval = 1\n[stats]\nflush_interval = 1\n[scrub]\ninterval = 0\n[scheduler]\njitter_ms = 0" });
    const pid = d.proc.pid;
    const before = readProcIo(pid)!;
    await push(d.url, "app", "v1", "idle");
    for (let i = 0; i < 5; i++) expect((await fetch(`${d.url}/v2/app/manifests/v1`)).status).toBe(200);
    // Pull statistics reach meta.db in a batch (bounded wait for the flush).
    let stats = await storageStats(d.url);
    for (let i = 0; i < 100 && !(stats.usage.flushes >= 1 && stats.usage.dirty === 0 && stats.gcPasses >= 1); i++) {
      await Bun.sleep(50);
      stats = await storageStats(d.url);
    }
    expect(stats.usage.dirty).toBe(0);
    expect(stats.writes.berth.bytesWritten).toBeGreaterThan(50_000);
    const db = new Database(join(d.root, ".berth/meta.db"), { readonly: true });
    const row = db.query("SELECT pulls, pulled_at FROM usage WHERE repo = 'app' AND ref = 'v1'").get() as { pulls: number; pulled_at: number };
    db.close();
    expect(row.pulls).toBe(5);
    const traffic = readProcIo(pid)!;
    expect(traffic.write_bytes + traffic.wchar).toBeGreaterThan(before.write_bytes + before.wchar);

    // The idle window: no requests; GC (every 1 s) and the flusher (every 1 s) keep running.
    const gcBefore = stats.gcPasses as number;
    const io0 = readProcIo(pid)!;
    const files0 = mtimes(d.root);
    const logged0 = d.logs().length;
    // Every write-family call of every thread is traced. The runtime may wake its event
    // loop through an eventfd when the periodic passes run, and at "info" each finished
    // periodic task logs one line to the log stream (a socket here); a write to anything
    // else (a file, another socket, any other log line) is a write the idle daemon must not make.
    await using trace = await traceSyscalls(pid, ["write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg", "fsync", "fdatasync", "rename", "renameat", "renameat2", "unlink", "unlinkat"]);
    await Bun.sleep(3500); // observation window (several GC and flush intervals), not waiting for an event
    const calls = await trace.stop();
    const others = calls.filter((c) => c.fdPath !== "anon_inode:[eventfd]");
    expect(others.filter((c) => !(/^(write|sendto)$/.test(c.name) && c.fdPath?.startsWith("socket:"))).map((c) => c.line)).toEqual([]);
    const logBytes = others.reduce((n, c) => n + Number(/= (\d+)$/.exec(c.line)?.[1] ?? Number.NaN), 0);
    const logged = () => d.logs().slice(logged0);
    await waitFor("the traced log writes to reach the captured log", () => Buffer.byteLength(logged()) >= logBytes);
    expect(Buffer.byteLength(logged())).toBe(logBytes);
    const lines = logged().split("\n").filter((l) => l !== "");
    expect(lines.filter((l) => (JSON.parse(l) as { msg: string }).msg !== "task finished")).toEqual([]);
    expect(readProcIo(pid)!.write_bytes).toBe(io0.write_bytes);
    expect(mtimes(d.root)).toEqual(files0);
    expect((await storageStats(d.url)).gcPasses).toBeGreaterThan(gcBefore + 1);
  }, 30_000);

  test("with no traffic and no scheduled work due, not a single write system call", async () => {
    await using d = await startDaemon();
    await push(d.url, "app", "v1", "quiet");
    expect((await fetch(`${d.url}/v2/app/manifests/v1`)).status).toBe(200);
    await (await fetch(`${d.url}/api/v1/storage`)).json();
    const io0 = readProcIo(d.proc.pid)!;
    const files0 = mtimes(d.root);
    for (let i = 0; i < 8; i++) {
      await Bun.sleep(250); // observation window
      const io = readProcIo(d.proc.pid)!;
      expect({ write_bytes: io.write_bytes, syscw: io.syscw, wchar: io.wchar }).toEqual({ write_bytes: io0.write_bytes, syscw: io0.syscw, wchar: io0.wchar });
    }
    expect(mtimes(d.root)).toEqual(files0);
  }, 30_000);

  test("admin API: storage figures, GC (dry and real), scrub, quarantine", async () => {
    await using d = await startDaemon({ storage: "\n[gc]\ngrace = 0\ninterval = 0" });
    await push(d.url, "app", "v1", "admin");
    const orphan = "an orphan";
    expect((await fetch(`${d.url}/v2/app/blobs/uploads/?digest=${sha256(orphan)}`, { method: "POST", body: orphan })).status).toBe(201);
    const dry = (await (await fetch(`${d.url}/api/v1/storage/gc?dry_run=true`, { method: "POST" })).json()) as { blobs: { digest: string }[]; dryRun: boolean };
    expect(dry.dryRun).toBe(true);
    expect(dry.blobs.map((b) => b.digest)).toEqual([sha256(orphan)]);
    expect((await fetch(`${d.url}/v2/app/blobs/${sha256(orphan)}`, { method: "HEAD" })).status).toBe(200);
    const real = (await (await fetch(`${d.url}/api/v1/storage/gc`, { method: "POST" })).json()) as { blobs: unknown[]; bytesFreed: number };
    expect(real.blobs.length).toBe(1);
    expect(real.bytesFreed).toBe(orphan.length);
    expect((await fetch(`${d.url}/v2/app/blobs/${sha256(orphan)}`, { method: "HEAD" })).status).toBe(404);
    const scrub = (await (await fetch(`${d.url}/api/v1/storage/scrub`, { method: "POST" })).json()) as { blobsChecked: number; quarantined: unknown[] };
    expect(scrub.blobsChecked).toBe(3);
    expect(scrub.quarantined).toEqual([]);
    expect(await (await fetch(`${d.url}/api/v1/storage/quarantine`)).json()).toEqual({ quarantined: [] });
    const io0 = readProcIo(d.proc.pid)!;
    const stats = await storageStats(d.url);
    const io1 = readProcIo(d.proc.pid)!;
    expect(stats.scrub.runs).toBe(1);
    // The daemon's own kernel I/O accounting, read while it answered this request.
    const own = stats.writes.process as { wchar: number; syscw: number; write_bytes: number };
    expect(own.wchar).toBeGreaterThan(0);
    for (const key of ["wchar", "syscw", "write_bytes"] as const) {
      expect(own[key]).toBeGreaterThanOrEqual(io0[key]);
      expect(own[key]).toBeLessThanOrEqual(io1[key]);
    }
    expect(stats.writes.berth.fileSyncs).toBeGreaterThan(0);
  }, 30_000);

  test("berth gc --dry-run prints what it would remove and removes nothing; berth gc removes it; berth scrub checks", async () => {
    using dir = tempDir();
    const root = join(dir.path, "root");
    {
      await using d = await startDaemon({ root });
      await push(d.url, "app", "v1", "offline");
      expect((await fetch(`${d.url}/v2/app/blobs/uploads/?digest=${sha256("offline orphan")}`, { method: "POST", body: "offline orphan" })).status).toBe(201);
      expect(await d.stop()).toBe(0);
    }
    const config = writeConfig(dir.path, `[storage]\nroot = "${root}"\n[gc]\ngrace = 0\n`);
    const run = (...args: string[]) => Bun.spawnSync([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe" });
    const dry = run("gc", "--dry-run", "--config", config);
    expect(dry.exitCode).toBe(0);
    const dryOut = dry.stdout.toString();
    expect(dryOut).toContain(`would remove blob app@${sha256("offline orphan")} (14 bytes)`);
    expect(dryOut).toContain(`would remove pool entry ${sha256("offline orphan")}`);
    expect(statSync(join(root, "app/blobs/sha256", sha256("offline orphan").slice(7))).size).toBe(14);
    const real = run("gc", "--config", config);
    expect(real.exitCode).toBe(0);
    expect(real.stdout.toString()).toContain(`removed blob app@${sha256("offline orphan")}`);
    expect(() => statSync(join(root, "app/blobs/sha256", sha256("offline orphan").slice(7)))).toThrow();
    const scrub = run("scrub", "--config", config);
    expect(scrub.exitCode).toBe(0);
    expect(scrub.stdout.toString()).toContain("scrub: 3 blobs");
    expect(run("gc").exitCode).toBe(2);
  }, 30_000);
});
