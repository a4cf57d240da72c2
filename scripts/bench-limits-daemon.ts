/**
 * What the rate limiter costs a real daemon: manifest GETs against two daemons, one with
 * [limits] rates set so high nothing is refused (every request still takes a token) and one
 * without limits, in ABBA order, same machine, same run. Prints requests/s of each round and
 * the median ratio (limits on / off). scripts/bench-ratelimit.ts measures the same in process.
 *
 *   bun scripts/bench-limits-daemon.ts   (BERTH_REQUESTS=N per round, default 20000; BERTH_ROUNDS=N, default 4)
 */
import { rmSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const MAIN = resolve(import.meta.dir, "../daemon/main.ts");
const REQUESTS = Number(process.env.BERTH_REQUESTS ?? 20_000);
const ROUNDS = Number(process.env.BERTH_ROUNDS ?? 4);
const CONCURRENCY = 32;

async function start(extra: string) {
  const work = mkdtempSync(join(tmpdir(), "berth-bench-limits-"));
  writeFileSync(join(work, "c.toml"), `[http]\naddress = "127.0.0.1"\nport = 0\n[storage]\nroot = "${join(work, "root")}"\n${extra}[log]\nlevel = "warn"\n`);
  const proc = Bun.spawn([process.execPath, MAIN, "serve", "--config", join(work, "c.toml")], { stderr: "pipe" });
  // level=warn hides the listening line; find the port from /proc instead
  let port = 0;
  for (let i = 0; i < 500 && !port; i++) {
    await Bun.sleep(10);
    const tcp = await Bun.file("/proc/net/tcp").text();
    const inodes = new Set<string>();
    try {
      for (const fd of require("node:fs").readdirSync(`/proc/${proc.pid}/fd`)) {
        const l = require("node:fs").readlinkSync(`/proc/${proc.pid}/fd/${fd}`) as string;
        const m = /socket:\[(\d+)\]/.exec(l);
        if (m) inodes.add(m[1]!);
      }
    } catch {}
    for (const line of tcp.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === "0A" && inodes.has(f[9]!)) port = parseInt(f[1]!.split(":")[1]!, 16);
    }
  }
  if (!port) throw new Error("daemon did not listen");
  const url = `http://127.0.0.1:${port}`;
  const config = new TextEncoder().encode("{}");
  const digest = `sha256:${new Bun.CryptoHasher("sha256").update(config).digest("hex")}`;
  await fetch(`${url}/v2/b/app/blobs/uploads/?digest=${digest}`, { method: "POST", body: config });
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest, size: 2 }, layers: [] });
  const put = await fetch(`${url}/v2/b/app/manifests/v1`, { method: "PUT", body: manifest, headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
  if (put.status !== 201) throw new Error(`push failed: ${put.status}`);
  return {
    url,
    async stop() {
      proc.kill("SIGKILL");
      await proc.exited;
      rmSync(work, { recursive: true, force: true });
    },
  };
}

async function hammer(url: string): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < REQUESTS) {
        const r = await fetch(`${url}/v2/b/app/manifests/v1`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
        await r.arrayBuffer();
      }
    }),
  );
  return REQUESTS / ((performance.now() - t0) / 1000);
}

const on = await start("[limits]\nreads_per_second = 1000000\nread_burst = 10000000\nwrites_per_second = 1000000\nwrite_burst = 10000000\n");
const off = await start("");
try {
  await hammer(on.url);
  await hammer(off.url); // warm-up
  const ratios: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const order = i % 2 === 0 ? [on, off] : [off, on];
    const rates = new Map<unknown, number>();
    for (const d of order) rates.set(d, await hammer(d.url));
    const ratio = rates.get(on)! / rates.get(off)!;
    ratios.push(ratio);
    console.log(`round ${i + 1}: limits on ${rates.get(on)!.toFixed(0)} req/s, off ${rates.get(off)!.toFixed(0)} req/s, ratio ${ratio.toFixed(3)}`);
  }
  ratios.sort((a, b) => a - b);
  console.log(`median ratio (on/off): ${((ratios[Math.floor((ratios.length - 1) / 2)]! + ratios[Math.floor(ratios.length / 2)]!) / 2).toFixed(3)}  (1.000 = free)`);
} finally {
  await on.stop();
  await off.stop();
}
