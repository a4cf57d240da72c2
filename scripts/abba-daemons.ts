/**
 * Two daemons compared on the hottest path, for the scripts that price one feature
 * (bench-metrics.ts: request counting; bench-limits-daemon.ts: the rate limiter): each daemon
 * is started from source with its own config and temp root and holds one tiny image; manifest
 * GETs are driven at a fixed concurrency, in ABBA order (same machine, same run), and the
 * requests/s of each round and the median ratio (on / off) are printed.
 */
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const MAIN = resolve(import.meta.dir, "../daemon/main.ts");
const CONCURRENCY = 32;

/** A running daemon of the comparison. */
export interface BenchDaemon {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts a daemon whose config has `extra` (TOML) after [storage]; pushes the image b/app:v1.
 * `command` runs another build (the program before its arguments; default: this source under Bun).
 */
export async function startBenchDaemon(extra: string, command: string[] = [process.execPath, MAIN]): Promise<BenchDaemon> {
  const work = mkdtempSync(join(tmpdir(), "berth-bench-abba-"));
  writeFileSync(join(work, "c.toml"), `[http]\naddress = "127.0.0.1"\nport = 0\n[storage]\nroot = "${join(work, "root")}"\n${extra}[log]\nlevel = "warn"\n`);
  const proc = Bun.spawn([...command, "serve", "--config", join(work, "c.toml")], { stderr: "pipe" });
  const port = await listeningPort(proc.pid);
  const url = `http://127.0.0.1:${port}`;
  const config = new TextEncoder().encode("{}");
  const digest = `sha256:${new Bun.CryptoHasher("sha256").update(config).digest("hex")}`;
  await fetch(`${url}/v2/b/app/blobs/uploads/?digest=${digest}`, { method: "POST", body: config });
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest, size: 2 }, layers: [] });
  const put = await fetch(`${url}/v2/b/app/manifests/v1`, { method: "PUT", body: manifest, headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
  if (put.status !== 201) throw new Error(`push failed: ${put.status}`);
  return {
    url,
    pid: proc.pid,
    async stop() {
      proc.kill("SIGKILL");
      await proc.exited;
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** The TCP port `pid` listens on (level = warn hides the listening line), read from /proc. */
async function listeningPort(pid: number): Promise<number> {
  for (let i = 0; i < 6000; i++) {
    await Bun.sleep(10);
    const tcp = await Bun.file("/proc/net/tcp").text();
    const inodes = new Set<string>();
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        const m = /socket:\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]!);
      }
    } catch {}
    for (const line of tcp.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === "0A" && inodes.has(f[9]!)) return parseInt(f[1]!.split(":")[1]!, 16);
    }
  }
  throw new Error("daemon did not listen");
}

/** Requests/s of `requests` manifest GETs of b/app:v1 at the fixed concurrency. */
export async function hammer(url: string, requests: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < requests) {
        const r = await fetch(`${url}/v2/b/app/manifests/v1`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
        await r.arrayBuffer();
      }
    }),
  );
  return requests / ((performance.now() - t0) / 1000);
}

/**
 * One warm-up each, then `rounds` rounds alternating which daemon goes first; prints each
 * round as "<label> on … off …" and returns the ratios (on / off), sorted.
 */
export async function abba(on: BenchDaemon, off: BenchDaemon, opts: { label: string; requests: number; rounds: number }): Promise<number[]> {
  await hammer(on.url, opts.requests);
  await hammer(off.url, opts.requests); // warm-up
  const ratios: number[] = [];
  for (let i = 0; i < opts.rounds; i++) {
    const order = i % 2 === 0 ? [on, off] : [off, on];
    const rates = new Map<BenchDaemon, number>();
    for (const d of order) rates.set(d, await hammer(d.url, opts.requests));
    const ratio = rates.get(on)! / rates.get(off)!;
    ratios.push(ratio);
    console.log(`round ${i + 1}: ${opts.label} on ${rates.get(on)!.toFixed(0)} req/s, off ${rates.get(off)!.toFixed(0)} req/s, ratio ${ratio.toFixed(3)}`);
  }
  return ratios.sort((a, b) => a - b);
}
