/**
 * The Node.js build (armv7 tarball) beside the Bun build of the same source, in one run:
 * idle RSS after start-up, manifest GETs per second in ABBA rounds, and the throughput of
 * pulling one large blob. Both run natively on this machine (Node.js from PATH); the armhf
 * Node.js under qemu-arm-static is started too, for its idle RSS only (emulation makes its
 * speed meaningless, and its RSS includes the emulator's own).
 *
 *   bun scripts/bench-node.ts [--rounds N] [--requests N] [--blob-mib N]
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type BenchDaemon, abba, startBenchDaemon } from "./abba-daemons";

const args = process.argv.slice(2);
const opt = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const ROUNDS = opt("--rounds", 4);
const REQUESTS = opt("--requests", 4000);
const BLOB_MIB = opt("--blob-mib", 64);
const REPO = resolve(import.meta.dir, "..");

const work = mkdtempSync(join(tmpdir(), "berth-bench-node-"));
const build = spawnSync(process.execPath, [join(REPO, "scripts/build-node.ts"), "--out", work], { stdio: ["ignore", "ignore", "inherit"] });
if (build.status !== 0) throw new Error("scripts/build-node.ts failed");
spawnSync("tar", ["-xzf", join(work, "berth-linux-armv7.tar.gz"), "-C", work]);
const launcher = join(work, "berth/bin/berth");

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
const settle = () => new Promise((r) => setTimeout(r, 3000));

/** Pushes a blob of `mib` MiB to `d` and returns its digest. */
async function pushBlob(d: BenchDaemon, mib: number): Promise<string> {
  const bytes = new Uint8Array(mib << 20);
  for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (i * 2654435761) >>> 24;
  const digest = `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
  const res = await fetch(`${d.url}/v2/b/app/blobs/uploads/?digest=${digest}`, { method: "POST", body: bytes });
  if (res.status !== 201) throw new Error(`blob push failed: ${res.status}`);
  return digest;
}

/** MB/s of pulling the blob `rounds` times. */
async function pull(d: BenchDaemon, digest: string, rounds: number): Promise<number> {
  let bytes = 0;
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) {
    const res = await fetch(`${d.url}/v2/b/app/blobs/${digest}`);
    for await (const chunk of res.body!) bytes += chunk.byteLength;
  }
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

const bun = await startBenchDaemon("");
const node = await startBenchDaemon("", [launcher]);
try {
  await settle();
  console.log(`idle RSS after start: bun ${rssMiB(bun.pid).toFixed(1)} MiB, node ${rssMiB(node.pid).toFixed(1)} MiB`);
  const ratios = await abba(node, bun, { label: "manifest GET node vs bun:", requests: REQUESTS, rounds: ROUNDS });
  console.log(`manifest GETs, node / bun: median ${ratios[Math.floor(ratios.length / 2)]!.toFixed(3)} (${ratios.map((r) => r.toFixed(3)).join(", ")})`);
  const [db, dn] = [await pushBlob(bun, BLOB_MIB), await pushBlob(node, BLOB_MIB)];
  const rates: { bun: number[]; node: number[] } = { bun: [], node: [] };
  for (let i = 0; i < ROUNDS; i++) {
    for (const [name, d, digest] of (i % 2 ? [["node", node, dn], ["bun", bun, db]] : [["bun", bun, db], ["node", node, dn]]) as [keyof typeof rates, BenchDaemon, string][]) {
      rates[name].push(await pull(d, digest, 4));
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`${BLOB_MIB} MiB blob pull: bun ${med(rates.bun).toFixed(0)} MB/s, node ${med(rates.node).toFixed(0)} MB/s, node / bun ${(med(rates.node) / med(rates.bun)).toFixed(3)}`);
  await settle();
  console.log(`RSS after the load: bun ${rssMiB(bun.pid).toFixed(1)} MiB, node ${rssMiB(node.pid).toFixed(1)} MiB`);
} finally {
  await bun.stop();
  await node.stop();
}

const sysroot = spawnSync(join(REPO, "scripts/armhf-sysroot"), { encoding: "utf8" }).stdout.trim();
if (sysroot) {
  const arm = await startBenchDaemon("", ["qemu-arm-static", "-L", sysroot, join(sysroot, "usr/bin/node"), join(work, "berth/lib/berth.mjs")]);
  try {
    await settle();
    console.log(`armhf Node.js 18 under qemu-arm-static, idle RSS after start (emulator included): ${rssMiB(arm.pid).toFixed(1)} MiB`);
  } finally {
    await arm.stop();
  }
}
rmSync(work, { recursive: true, force: true });
