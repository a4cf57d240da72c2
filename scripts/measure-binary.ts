/**
 * Measures the single-file binaries: size of each, and for the native x64 binary the time
 * from spawn to the first served request (/livez answered) and the idle RSS after start-up and
 * one request. The same figures for `bun daemon/main.ts` (from source) are printed beside them
 * as the reference, from the same run. Medians of RUNS starts (default 7; BERTH_RUNS=N).
 *
 *   bun scripts/measure-binary.ts [DIST]      (DIST defaults to dist/, built by scripts/build)
 */
import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dir, "..");
const dist = resolve(process.argv[2] ?? join(repo, "dist"));
const runs = Number(process.env.BERTH_RUNS ?? 7);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

async function startOnce(cmd: string[]): Promise<{ startMs: number; idleRss: number }> {
  const work = mkdtempSync(join(tmpdir(), "berth-measure-"));
  const config = join(work, "c.toml");
  writeFileSync(config, `[http]\naddress = "127.0.0.1"\nport = 0\n[storage]\nroot = "${join(work, "root")}"\n[log]\nlevel = "info"\n`);
  const t0 = performance.now();
  const proc = Bun.spawn([...cmd, "serve", "--config", config], { stderr: "pipe", stdout: "ignore" });
  try {
    let logs = "";
    let port = 0;
    const reader = (proc.stderr as ReadableStream<Uint8Array>).getReader();
    while (!port) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`exited before listening: ${logs}`);
      logs += new TextDecoder().decode(value);
      const m = /"msg":"berth listening".*?"port":(\d+)/.exec(logs);
      if (m) port = Number(m[1]);
    }
    for (let i = 0; i < 1000; i++) {
      const ok = await fetch(`http://127.0.0.1:${port}/livez`).then((r) => r.ok, () => false);
      if (ok) break;
    }
    const startMs = performance.now() - t0;
    await fetch(`http://127.0.0.1:${port}/v2/`);
    await Bun.sleep(2000); // idle: let start-up garbage be collected
    const idleRss = rssOf(proc.pid);
    return { startMs, idleRss };
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
    rmSync(work, { recursive: true, force: true });
  }
}

console.log("binary sizes:");
for (const t of ["linux-x64", "linux-arm64", "linux-arm64-musl"]) {
  try {
    console.log(`  berth-${t.padEnd(17)} ${mib(statSync(join(dist, `berth-${t}`)).size)}`);
  } catch {
    console.log(`  berth-${t.padEnd(17)} (not built)`);
  }
}
const variants: [string, string[]][] = [
  ["binary (x64)", [join(dist, "berth-linux-x64")]],
  ["bun daemon/main.ts (reference)", [process.execPath, join(repo, "daemon/main.ts")]],
];
const results = new Map<string, { start: number[]; rss: number[] }>(variants.map(([n]) => [n, { start: [], rss: [] }]));
for (let i = 0; i < runs; i++) {
  for (const [name, cmd] of i % 2 === 0 ? variants : [...variants].reverse()) {
    const r = await startOnce(cmd);
    results.get(name)!.start.push(r.startMs);
    results.get(name)!.rss.push(r.idleRss);
  }
}
const ref = results.get(variants[1]![0])!;
console.log(`\nstart-up to first served request and idle RSS (median of ${runs}, alternating order):`);
for (const [name, r] of results) {
  console.log(
    `  ${name.padEnd(32)} start ${median(r.start).toFixed(0).padStart(5)} ms (x${(median(r.start) / median(ref.start)).toFixed(2)})   idle RSS ${mib(median(r.rss))} (x${(median(r.rss) / median(ref.rss)).toFixed(2)})`,
  );
}
