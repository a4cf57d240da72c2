#!/usr/bin/env bun
/**
 * Memory and cost at scale (issue 13), a script and never a timed test. Two modes:
 *
 *   bun scripts/scale.ts traffic   berth and distribution (Debian's docker-registry) side by
 *                                  side in the same run: 500 repositories x 10 tags of tiny
 *                                  images plus 2,000 tags in one repository (concurrency 16),
 *                                  catalog, tags/list, HEAD across repositories vs GET within
 *                                  one, 64 MiB pushes (concurrency 8), RSS right after and
 *                                  60 s later, scrub (berth), restart on the same store: start-up
 *                                  to the first served request and idle RSS.
 *   bun scripts/scale.ts store [1000,10000,100000]
 *                                  berth alone on generated stores (OCI layouts written directly
 *                                  under the root, 10 manifests per repository, one config and one
 *                                  layer per repository): start-up, idle RSS, catalog, tags/list,
 *                                  HEAD, GC, retention, scrub (time, peak and after RSS).
 *
 * Environment: BERTH_SRC (a checkout whose daemon/main.ts is run; default this one),
 * SCALE_SMALL (repositories of the first workload, default 500), SCALE_BIG (64 MiB pushes,
 * default 16), SCALE_IDLE_S (seconds waited after the traffic, default 60), SCALE_DIR (store
 * mode: generate each store once under this directory and reuse it in later runs; GC and
 * retention remove nothing from a generated store, so it stays the same), SCALE_PASSES=1
 * (store mode: only GC, retention and scrub), SCALE_JIT (berth's `[memory] jit`: off,
 * baseline or optimizing; default: the configuration's default).
 * RSS is sampled from /proc/PID/status every 50 ms, with its anonymous part (RssAnon: the
 * heap, the allocator's pages, buffers) beside it: the rest is file-backed, mostly the
 * runtime's own executable text (Bun's is ~37 MiB resident at start, ~46 MiB once the
 * server's code paths have run), which is clean, shared with the page cache, and not
 * something a collection or the allocator can give back.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { OCI_MANIFEST, generate, manifestOf, sha } from "./genstore";

const MiB = 1024 * 1024;
const SRC = resolve(process.env.BERTH_SRC ?? resolve(import.meta.dir, ".."));
const MAIN = join(SRC, "daemon/main.ts");
const SMALL = Number(process.env.SCALE_SMALL ?? 500);
const BIG = Number(process.env.SCALE_BIG ?? 16);
const IDLE_S = Number(process.env.SCALE_IDLE_S ?? 60);
/** `[memory] jit` of the berth under measurement (default: the config's default). */
const JIT = process.env.SCALE_JIT;

/** A line of /proc/PID/status in MiB (0 when the process is gone). */
const statusMiB = (pid: number, field: string): number => {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
};
const rssMiB = (pid: number): number => statusMiB(pid, "VmRSS");
const anonMiB = (pid: number): number => statusMiB(pid, "RssAnon");
/** RSS with its anonymous part: "total (anon)". */
const rssAnon = (pid: number): string => `${f1(rssMiB(pid))} (${f1(anonMiB(pid))})`;
const f1 = (n: number) => n.toFixed(1);
/** A server's peaks: "total (anon)". */
const peaks = (s: { peak: number; peakAnon: number }) => `${f1(s.peak)} (${f1(s.peakAnon)})`;

/** A registry process under measurement. */
interface Server {
  name: string;
  url: string;
  pid: number;
  startMs: number;
  peak: number;
  /** Peak of the anonymous part of the resident set. */
  peakAnon: number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** Spawns and polls GET /v2/ until it answers: the time to the first served request. */
async function launch(name: string, cmd: string[], url: string, log: string): Promise<Server> {
  const t0 = performance.now();
  const proc = Bun.spawn(cmd, { stdout: "ignore", stderr: Bun.file(log) });
  for (let i = 0; ; i++) {
    if (i > 120_000) throw new Error(`${name} did not answer`);
    try {
      const r = await fetch(`${url}/v2/`);
      await r.arrayBuffer();
      if (r.status === 200) break;
    } catch {}
    if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode}; see ${log}`);
    await Bun.sleep(2);
  }
  const server: Server = { name, url, pid: proc.pid, startMs: performance.now() - t0, peak: 0, peakAnon: 0, stop: async () => { proc.kill("SIGKILL"); await proc.exited; } };
  return server;
}

async function startBerth(root: string, work: string, extra = ""): Promise<Server> {
  const port = await freePort();
  const cfg = join(work, "berth.toml");
  writeFileSync(cfg, `[http]\naddress = "127.0.0.1"\nport = ${port}\n[storage]\nroot = "${root}"\n${extra}[log]\nlevel = "warn"\n${JIT ? `[memory]\njit = "${JIT}"\n` : ""}`);
  return launch("berth", [process.execPath, MAIN, "serve", "--config", cfg], `http://127.0.0.1:${port}`, join(work, `berth-${port}.log`));
}

async function startDist(root: string, work: string): Promise<Server> {
  const port = await freePort();
  const cfg = join(work, "dist.yml");
  writeFileSync(cfg, `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: scale\n`);
  return launch("distribution", ["docker-registry", "serve", cfg], `http://127.0.0.1:${port}`, join(work, `dist-${port}.log`));
}

/** Samples the peak RSS (and its anonymous part) of `servers` while `fn` runs (each server's peaks are reset first). */
async function sampled<T>(servers: Server[], fn: () => Promise<T>): Promise<T> {
  const look = () => {
    for (const s of servers) {
      s.peak = Math.max(s.peak, rssMiB(s.pid));
      s.peakAnon = Math.max(s.peakAnon, anonMiB(s.pid));
    }
  };
  for (const s of servers) {
    s.peak = 0;
    s.peakAnon = 0;
  }
  look();
  const timer = setInterval(look, 50);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
    look();
  }
}

/** Runs `count` jobs at `concurrency`; returns the mean latency in ms and the wall time. */
async function pool(count: number, concurrency: number, job: (i: number) => Promise<void>): Promise<{ meanMs: number; wallMs: number }> {
  let next = 0;
  let total = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < count; i = next++) {
      const t = performance.now();
      await job(i);
      total += performance.now() - t;
    }
  }));
  return { meanMs: total / Math.max(1, count), wallMs: performance.now() - t0 };
}

async function ok(res: Response, want: number[], what: string): Promise<Response> {
  if (!want.includes(res.status)) throw new Error(`${what}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
  return res;
}

async function pushBlob(url: string, repo: string, body: Uint8Array, digest = sha(body)): Promise<string> {
  const post = await ok(await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" }), [202], `POST upload ${repo}`);
  await post.arrayBuffer();
  const loc = new URL(post.headers.get("location")!, url);
  loc.searchParams.set("digest", digest);
  await (await ok(await fetch(loc, { method: "PUT", body, headers: { "Content-Type": "application/octet-stream" } }), [201], `PUT blob ${repo}`)).arrayBuffer();
  return digest;
}


async function pushManifest(url: string, repo: string, tag: string, body: string): Promise<void> {
  const r = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: "PUT", body, headers: { "Content-Type": OCI_MANIFEST } });
  await (await ok(r, [201], `PUT manifest ${repo}:${tag}`)).arrayBuffer();
}

/** A tiny image's blobs in `repo`; returns the descriptors for manifests. */
async function tinyBlobs(url: string, repo: string) {
  const config = new TextEncoder().encode(JSON.stringify({ architecture: "arm64", os: "linux", repo }));
  const layer = new TextEncoder().encode(`layer of ${repo}`);
  return { config: { digest: await pushBlob(url, repo, config), size: config.length }, layer: { digest: await pushBlob(url, repo, layer), size: layer.length } };
}

/** All pages of a paginated list (catalog or tags) following the Link header. */
async function allPages(url: string, path: string): Promise<number> {
  let next: string | undefined = `${path}${path.includes("?") ? "&" : "?"}n=1000`;
  let count = 0;
  while (next) {
    const r = await ok(await fetch(new URL(next, url)), [200], `GET ${next}`);
    const body = (await r.json()) as { repositories?: string[]; tags?: string[] };
    count += (body.repositories ?? body.tags ?? []).length;
    const link = r.headers.get("link");
    next = link ? /<([^>]+)>/.exec(link)?.[1] : undefined;
  }
  return count;
}

type Row = [string, ...string[]];
const rows: Row[] = [];
function row(...cells: Row) {
  rows.push(cells);
  console.log(cells.join(" | "));
}

async function traffic(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "berth-scale-"));
  mkdirSync(join(work, "b"));
  mkdirSync(join(work, "d"));
  const servers = [await startBerth(join(work, "b", "root"), join(work, "b")), await startDist(join(work, "d", "root"), join(work, "d"))];
  row("figure", ...servers.map((s) => s.name));
  row("start-up to first request, empty store (ms)", ...servers.map((s) => f1(s.startMs)));
  await Bun.sleep(2000);
  row("idle RSS (anon), empty store (MiB)", ...servers.map((s) => rssAnon(s.pid)));
  const wall: string[] = [];
  await sampled(servers, () => Promise.all(servers.map(async (s) => {
    const t = performance.now();
    await pool(SMALL, 16, async (i) => {
      const repo = `scale/r${i}`;
      const d = await tinyBlobs(s.url, repo);
      for (let t = 0; t < 10; t++) await pushManifest(s.url, repo, `t${t}`, manifestOf(d.config, d.layer, `${repo}:${t}`));
    });
    const d = await tinyBlobs(s.url, "scale/many");
    await pool(2000, 16, (t) => pushManifest(s.url, "scale/many", `v${t}`, manifestOf(d.config, d.layer, `many:${t}`)));
    wall[servers.indexOf(s)] = f1((performance.now() - t) / 1000);
  })));
  row(`push ${SMALL}x10 + 2000 tags, c16: wall (s)`, ...wall);
  row("  peak RSS (anon) (MiB)", ...servers.map(peaks));
  const reads: Record<string, string[]> = { catalog: [], tags: [], head: [], get: [] };
  await sampled(servers, async () => {
    for (const s of servers) {
      let t = performance.now();
      const repos = await allPages(s.url, "/v2/_catalog");
      reads.catalog!.push(`${f1(performance.now() - t)} ms (${repos})`);
      const tl = await pool(SMALL + 1, 16, async (i) => { await allPages(s.url, i === SMALL ? "/v2/scale/many/tags/list" : `/v2/scale/r${i}/tags/list`); });
      reads.tags!.push(`${f1(tl.meanMs)} ms/req`);
      const head = await pool(4000, 16, async (i) => {
        const r = await fetch(`${s.url}/v2/scale/r${i % SMALL}/manifests/t${(i * 7) % 10}`, { method: "HEAD", headers: { Accept: OCI_MANIFEST } });
        await (await ok(r, [200], "HEAD")).arrayBuffer();
      });
      const get = await pool(4000, 16, async (i) => {
        const r = await fetch(`${s.url}/v2/scale/many/manifests/v${i % 2000}`, { headers: { Accept: OCI_MANIFEST } });
        await (await ok(r, [200], "GET")).arrayBuffer();
      });
      reads.head!.push(`${f1(head.meanMs)} ms/req, ${f1(4000 / (head.wallMs / 1000))}/s`);
      reads.get!.push(`${f1(get.meanMs)} ms/req, ${f1(4000 / (get.wallMs / 1000))}/s`);
      void t;
    }
  });
  row("catalog, all pages", ...reads.catalog!);
  row("tags/list of every repository, c16", ...reads.tags!);
  row(`HEAD manifests across ${SMALL} repositories, c16`, ...reads.head!);
  row("GET manifests within one repository, c16", ...reads.get!);
  row("  peak RSS (anon) during reads (MiB)", ...servers.map(peaks));
  const big = new Uint8Array(64 * MiB);
  for (let i = 0; i < big.length; i += 4096) big[i] = (i * 2654435761) >>> 24;
  const bigWall: string[] = [];
  await sampled(servers, () => Promise.all(servers.map(async (s, si) => {
    const t = performance.now();
    await pool(BIG, 8, async (i) => {
      const body = new Uint8Array(big);
      new DataView(body.buffer).setUint32(0, i + 1);
      const layer = { digest: await pushBlob(s.url, "scale/big", body), size: body.length };
      const config = new TextEncoder().encode(`{"big":${i}}`);
      await pushManifest(s.url, "scale/big", `b${i}`, manifestOf({ digest: await pushBlob(s.url, "scale/big", config), size: config.length }, layer, `big${i}`));
    });
    bigWall[si] = `${f1((BIG * 64) / ((performance.now() - t) / 1000))} MiB/s`;
  })));
  row(`push ${BIG} x 64 MiB, c8`, ...bigWall);
  row("  peak RSS (anon) (MiB)", ...servers.map(peaks));
  row("RSS (anon) right after (MiB)", ...servers.map((s) => rssAnon(s.pid)));
  const under: (number | undefined)[] = servers.map(() => undefined);
  const t0 = performance.now();
  for (let i = 0; i < IDLE_S * 10; i++) {
    servers.forEach((s, k) => { if (under[k] === undefined && rssMiB(s.pid) <= 64) under[k] = (performance.now() - t0) / 1000; });
    await Bun.sleep(100);
  }
  row(`RSS (anon) ${IDLE_S} s later (MiB)`, ...servers.map((s) => rssAnon(s.pid)));
  row("  seconds until RSS <= 64 MiB", ...under.map((u) => (u === undefined ? `> ${IDLE_S}` : f1(u))));
  const scrub = await sampled([servers[0]!], async () => {
    const t = performance.now();
    await (await ok(await fetch(`${servers[0]!.url}/api/v1/storage/scrub`, { method: "POST" }), [200], "scrub")).arrayBuffer();
    return performance.now() - t;
  });
  row("scrub (berth): s / peak RSS (anon) / RSS (anon) 60 s later", `${f1(scrub / 1000)} s / ${peaks(servers[0]!)} MiB / ${await (async () => { await Bun.sleep(IDLE_S * 1000); return rssAnon(servers[0]!.pid); })()} MiB`, "n/a");
  for (const s of servers) await s.stop();
  const again = [await startBerth(join(work, "b", "root"), join(work, "b")), await startDist(join(work, "d", "root"), join(work, "d"))];
  row("restart on that store: start-up to first request (ms)", ...again.map((s) => f1(s.startMs)));
  await Bun.sleep(5000);
  row("  idle RSS (anon) 5 s after start (MiB)", ...again.map((s) => rssAnon(s.pid)));
  for (const s of again) await s.stop();
  rmSync(work, { recursive: true, force: true });
}


async function store(sizes: number[]): Promise<void> {
  row("manifests", "repos", "gen s", "first start ms", "restart ms", "idle MiB", "catalog ms/peak", "tags ms/peak", "HEAD x2000 ms/peak", "GC ms/peak", "retention ms/peak", "scrub ms/peak", "idle after MiB");
  for (const size of sizes) {
    const keep = process.env.SCALE_DIR;
    const work = keep ? join(resolve(keep), String(size)) : mkdtempSync(join(tmpdir(), "berth-scale-store-"));
    const root = join(work, "root");
    let t = performance.now();
    const reused = keep !== undefined && existsSync(join(work, "generated"));
    if (!reused) {
      rmSync(root, { recursive: true, force: true });
      generate(root, size);
      if (keep) writeFileSync(join(work, "generated"), `${size}\n`);
    }
    const gen = reused ? 0 : (performance.now() - t) / 1000;
    const repos = Math.ceil(size / 10);
    const names = Array.from({ length: repos }, (_, r) => `gen/g${Math.floor(r / 100)}/r${r}`);
    const policy = `[retention]\ninterval = 0\n[[retention.policy]]\nrepositories = ["gen/**"]\nkeep_last = 100\n`;
    let s = await startBerth(root, work, policy);
    const first = s.startMs;
    await s.stop();
    s = await startBerth(root, work, policy);
    const restart = s.startMs;
    await Bun.sleep(5000);
    const idle = rssMiB(s.pid);
    const timed = async (fn: () => Promise<unknown>) => {
      const tt = performance.now();
      await sampled([s], fn);
      return `${f1(performance.now() - tt)}/${f1(s.peak)}`;
    };
    const admin = (what: string) => async () => { await (await ok(await fetch(`${s.url}/api/v1/storage/${what}`, { method: "POST" }), [200], what)).arrayBuffer(); };
    const passesOnly = process.env.SCALE_PASSES === "1";
    const cat = passesOnly ? "-" : await timed(() => allPages(s.url, "/v2/_catalog"));
    const tags = passesOnly ? "-" : await timed(() => pool(repos, 16, async (i) => { await allPages(s.url, `/v2/${names[i]}/tags/list`); }));
    const head = passesOnly ? "-" : await timed(() => pool(2000, 16, async (i) => {
      const r = await fetch(`${s.url}/v2/${names[(i * 7919) % repos]}/manifests/t${i % 10}`, { method: "HEAD", headers: { Accept: OCI_MANIFEST } });
      await (await ok(r, [200], "HEAD")).arrayBuffer();
    }));
    const gc = await timed(admin("gc"));
    const ret = await timed(admin("retention"));
    const scrub = await timed(admin("scrub"));
    await Bun.sleep(IDLE_S * 1000);
    row(String(size), String(repos), f1(gen), f1(first), f1(restart), f1(idle), cat, tags, head, gc, ret, scrub, f1(rssMiB(s.pid)));
    await s.stop();
    if (!keep) rmSync(work, { recursive: true, force: true });
    void t;
    t = 0;
  }
}

const mode = process.argv[2] ?? "traffic";
console.log(`berth from ${SRC}, ${new Date().toISOString()}`);
if (mode === "traffic") await traffic();
else if (mode === "store") await store((process.argv[3] ?? "1000,10000,100000").split(",").map(Number));
else throw new Error(`Unknown mode "${mode}": use traffic or store`);
