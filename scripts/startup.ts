#!/usr/bin/env bun
/**
 * Start-up at scale (issue 13), a script and never a timed test: the time from spawning
 * `berth serve` to the first served request (GET /v2/ answered 200), the first manifest GET
 * after that, the idle RSS 5 s later and, from the daemon's "berth listening" log line, its
 * own account of where the start-up time went. The store is generated once per size under
 * STARTUP_DIR (default /tmp/berth-startup) and reused: `bun scripts/scale.ts store` builds the
 * same shape (OCI layouts written straight into the root, 10 manifests per repository), but
 * removes it after each size.
 *
 *   bun scripts/startup.ts [1000,10000,100000] [runs=3]
 *
 * The first start on a fresh store indexes every layout (the derived index is empty); it is
 * reported apart, then `runs` restarts on the indexed store. Environment: BERTH_SRC (a
 * checkout whose daemon/main.ts is run; default this one), STARTUP_DIR,
 * STARTUP_TEMPS=1 (drops a temp file into every 100th repository's blob directory before each
 * start, as a killed process leaves them) and STARTUP_CHANGED=N (rewrites the index.json of
 * N repositories before each start, as a layout changed while berth was stopped).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { OCI_MANIFEST, generate, repoName } from "./genstore";

const SRC = resolve(process.env.BERTH_SRC ?? resolve(import.meta.dir, ".."));
const MAIN = join(SRC, "daemon/main.ts");
const DIR = process.env.STARTUP_DIR ?? "/tmp/berth-startup";
const TEMPS = process.env.STARTUP_TEMPS === "1";
const CHANGED = Number(process.env.STARTUP_CHANGED ?? 0);

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;



/** Rewrites `count` repositories' index.json (spread over the store): one more tag each. */
function change(root: string, repos: number, count: number, round: number): string[] {
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = repoName(Math.floor((i * repos) / count));
    const path = join(root, name, "index.json");
    const doc = JSON.parse(readFileSync(path, "utf8"));
    const first = doc.manifests[0];
    doc.manifests = doc.manifests.filter((m: any) => !String(m.annotations?.["org.opencontainers.image.ref.name"]).startsWith("x"));
    doc.manifests.push({ ...first, annotations: { "org.opencontainers.image.ref.name": `x${round}` } });
    writeFileSync(path, `${JSON.stringify(doc)}\n`);
    names.push(name);
  }
  return names;
}

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** One start: ms to the first 200 from /v2/, ms to the first manifest GET after it, RSS 5 s later, the daemon's own figures. */
async function start(root: string, work: string, probe: string, tag: string) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const cfg = join(work, "berth.toml");
  writeFileSync(cfg, `[http]\naddress = "127.0.0.1"\nport = ${port}\n[storage]\nroot = "${root}"\n[log]\nlevel = "info"\nformat = "json"\n`);
  const log = join(work, `berth-${port}.log`);
  const t0 = performance.now();
  const proc = Bun.spawn([process.execPath, MAIN, "serve", "--config", cfg], { stdout: "ignore", stderr: Bun.file(log) });
  try {
    for (let i = 0; ; i++) {
      if (i > 200_000 || proc.exitCode !== null) throw new Error(`berth did not answer; see ${log}`);
      const r = await fetch(`${url}/v2/`).catch(() => undefined);
      await r?.arrayBuffer();
      if (r?.status === 200) break;
      await Bun.sleep(2);
    }
    const up = performance.now() - t0;
    const g = await fetch(`${url}/v2/${probe}/manifests/${tag}`, { headers: { Accept: OCI_MANIFEST } });
    await g.arrayBuffer();
    const get = performance.now() - t0 - up;
    await Bun.sleep(5000); // a measurement pause: RSS of the idle daemon
    const rss = rssMiB(proc.pid);
    const lines = readFileSync(log, "utf8").split("\n");
    // since issue 13's deferral the sweep and the reconcile report on their own line, after listening
    const info = { ...JSON.parse(lines.find((l) => l.includes("start-up sweep finished")) ?? "{}"), ...JSON.parse(lines.find((l) => l.includes("berth listening")) ?? "{}") };
    return { up, get, getStatus: g.status, rss, info };
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

const sizes = (process.argv[2] ?? "1000,10000,100000").split(",").map(Number);
const runs = Number(process.argv[3] ?? 3);
console.log(`berth from ${SRC}, ${new Date().toISOString()}, load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`);
for (const size of sizes) {
  const work = join(DIR, String(size));
  const root = join(work, "root");
  const repos = Math.ceil(size / 10);
  if (!existsSync(join(root, "gen"))) {
    const t = performance.now();
    mkdirSync(root, { recursive: true });
    generate(root, size);
    console.log(`${size}: generated ${repos} repositories in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  for (let run = 0; run <= runs; run++) {
    if (TEMPS) for (let r = 0; r < repos; r += 100) writeFileSync(join(root, repoName(r), "blobs", "sha256", `.berth-tmp-99999-${run}`), "x");
    const changed = CHANGED > 0 ? change(root, repos, CHANGED, run) : [];
    const s = await start(root, work, changed[changed.length - 1] ?? repoName(repos - 1), changed.length > 0 ? `x${run}` : "t0");
    const { startMs, reindexed, tempFilesRemoved, ms } = s.info;
    console.log(`${size} run ${run}: first request ${s.up.toFixed(0)} ms, then GET ${s.getStatus} ${s.get.toFixed(0)} ms, idle ${s.rss.toFixed(1)} MiB; daemon: startMs ${startMs} reindexed ${reindexed} temps ${tempFilesRemoved}${ms !== undefined ? ` sweep after listening ${ms} ms` : ""}`);
  }
}
