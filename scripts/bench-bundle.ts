/**
 * Air-gap bundle throughput beside skopeo, in the same run on the same image: one image with
 * a BENCH_MIB MiB random layer (default 128) in a berth, then
 *   export: `berth bundle export` vs `skopeo copy docker://… oci-archive:…`
 *   import: `berth bundle import` vs `skopeo copy oci-archive:… docker://…` into a fresh berth
 * each BENCH_ROUNDS times (default 3), reporting the median MB/s and the peak RSS of the
 * client process (GNU time's %M), and the daemon's peak RSS (VmHWM) after the
 * imports. Usage: bun scripts/bench-bundle.ts   (env BENCH_MIB, BENCH_ROUNDS)
 * Needs skopeo (scripts/setup --test-peers). Everything on 127.0.0.1, port 0, temp dirs.
 */
import { readFileSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { startDaemon } from "../test/helpers/daemon";
import { Skopeo, makeTemp } from "../test/helpers/clients";
import { pushImage } from "../test/bundle/helpers";

const MIB = Number(process.env.BENCH_MIB ?? 128);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const MAIN = resolve(import.meta.dir, "../daemon/main.ts");

const work = makeTemp("berth-bench-bundle-");
const skopeo = new Skopeo();

/** Runs a command; wall seconds and the child's peak RSS in MiB. */
async function timed(cmd: string[]): Promise<{ seconds: number; rssMiB: number }> {
  const t = performance.now();
  // GNU time prints the child's peak RSS (KiB) as the last line of stderr
  const proc = Bun.spawn(["/usr/bin/time", "-f", "%M", ...cmd], { stdout: "ignore", stderr: "pipe", env: { ...process.env, XDG_CONFIG_HOME: work } });
  const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} failed: ${err}`);
  const seconds = (performance.now() - t) / 1000;
  return { seconds, rssMiB: Number(err.trim().split("\n").at(-1)) / 1024 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const vmHwm = (pid: number) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;

try {
  await using source = await startDaemon();
  await pushImage(source.url, "bench/img", "v1", MIB << 20);
  const rows: [string, number, number, number][] = [];
  const report = (name: string, runs: { seconds: number; rssMiB: number }[], bytes: number) => rows.push([name, bytes / 1e6 / median(runs.map((r) => r.seconds)), median(runs.map((r) => r.seconds)), Math.max(...runs.map((r) => r.rssMiB))]);

  const berthFile = join(work, "berth.tar");
  const skopeoFile = join(work, "skopeo.tar");
  const exp: { seconds: number; rssMiB: number }[] = [];
  const sexp: { seconds: number; rssMiB: number }[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    rmSync(berthFile, { force: true });
    rmSync(skopeoFile, { force: true });
    exp.push(await timed([process.execPath, MAIN, "bundle", "export", "-o", berthFile, "bench/img:v1", "--registry", source.url]));
    sexp.push(await timed(["skopeo", "--policy", join(skopeo.dir, "policy.json"), "copy", "-q", "--src-tls-verify=false", `docker://${source.host}/bench/img:v1`, `oci-archive:${skopeoFile}:bench/img:v1`]));
  }
  report("export  berth bundle export", exp, statSync(berthFile).size);
  report("export  skopeo → oci-archive", sexp, statSync(skopeoFile).size);

  const imp: { seconds: number; rssMiB: number }[] = [];
  const simp: { seconds: number; rssMiB: number }[] = [];
  let daemonPeak = 0;
  let skopeoDaemonPeak = 0;
  for (let i = 0; i < ROUNDS; i++) {
    {
      await using target = await startDaemon();
      imp.push(await timed([process.execPath, MAIN, "bundle", "import", berthFile, "--registry", target.url]));
      daemonPeak = Math.max(daemonPeak, vmHwm(target.proc.pid));
    }
    {
      await using target = await startDaemon();
      simp.push(await timed(["skopeo", "--policy", join(skopeo.dir, "policy.json"), "copy", "-q", "--dest-tls-verify=false", `oci-archive:${skopeoFile}:bench/img:v1`, `docker://${target.host}/bench/img:v1`]));
      skopeoDaemonPeak = Math.max(skopeoDaemonPeak, vmHwm(target.proc.pid));
    }
  }
  report("import  berth bundle import", imp, statSync(berthFile).size);
  report("import  skopeo ← oci-archive", simp, statSync(skopeoFile).size);

  console.log(`bundle of one image with a ${MIB} MiB layer, ${ROUNDS} rounds, medians (client peak RSS: the CLI process)`);
  console.log(`${"".padEnd(32)}${"MB/s".padStart(8)}${"seconds".padStart(10)}${"peak RSS MiB".padStart(14)}`);
  for (const [name, mbs, s, rss] of rows) console.log(`${name.padEnd(32)}${mbs.toFixed(0).padStart(8)}${s.toFixed(2).padStart(10)}${rss.toFixed(0).padStart(14)}`);
  console.log(`receiving daemon peak RSS (VmHWM): ${daemonPeak.toFixed(0)} MiB with berth bundle import, ${skopeoDaemonPeak.toFixed(0)} MiB with skopeo`);
} finally {
  skopeo[Symbol.dispose]();
  rmSync(work, { recursive: true, force: true });
}
