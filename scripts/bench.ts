/**
 * The project's reference benchmark: runs the same registry workloads against berth and
 * distribution (Debian's docker-registry) on loopback, alternating between
 * them round by round, and prints medians, ratios, peak RSS and targets.
 * For users, `berth bench` (daemon/client/bench.ts) benchmarks any registry (push, pull,
 * mixed; percentiles; --compare); this script stays for the figures in docs/BENCHMARKS.md.
 *
 * Normally started by `scripts/bench`, which launches both servers and passes
 * their addresses and PIDs through the environment:
 *
 *   BERTH_URL, BERTH_PID    berth base URL (e.g. http://127.0.0.1:5000) and PID
 *   DIST_URL, DIST_PID      distribution base URL and PID
 *   BENCH_ONLY              "berth" or "distribution" to benchmark just one
 *   BENCH_ROUNDS            rounds per workload (default 5)
 *   BENCH_SCALE             multiplies image/request counts (default 1)
 *   BENCH_MGET_CLIENT       "auto" (wrk if on PATH), "wrk" or "bun"
 *   BENCH_WRK_THREADS       wrk threads (default 2)
 *   BENCH_WORK              scratch directory (wrk script)
 *   BENCH_CLK_TCK           clock ticks per second for /proc/PID/stat (default 100)
 *   BENCH_JSON              if set, raw results are also written there as JSON
 *
 * A PID is optional; without it RSS and CPU figures are shown as "n/a".
 */

import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";

const MIB = 1024 * 1024;
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER = "application/vnd.oci.image.layer.v1.tar";
const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
/** Accept header sent with every manifest GET. */
const MANIFEST_ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ");
const RSS_SAMPLE_MS = 50;

/** Byte buffers backed by a plain ArrayBuffer (what fetch accepts as a body). */
type Bytes = Uint8Array<ArrayBuffer>;

/** Which server a target is. */
export type ServerName = "berth" | "distribution";

/** A registry under test. */
export interface Target {
  name: ServerName;
  base: string;
  pid: number | null;
}

/** Everything needed to push or pull one image, without its layer bytes. */
interface ImageSpec {
  tag: string;
  layerSize: number;
  layerSeed: number;
  layerDigest: string;
  config: Bytes;
  configDigest: string;
  manifest: Bytes;
  manifestDigest: string;
}

/** One timed run of one workload against one server. */
interface Measurement {
  seconds: number;
  ops: number;
  bytes: number;
  peakRssMiB: number | null;
  cpuSeconds: number | null;
}

/** Workload identifiers in report order. */
type WorkloadId = "push1m" | "pull1m" | "push64m" | "pull64m" | "mget";

interface Settings {
  rounds: number;
  scale: number;
  mgetClient: "wrk" | "bun";
  wrkThreads: number;
  work: string;
  clkTck: number;
  json: string | null;
}

// ---------------------------------------------------------------- settings

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${raw}`);
  return value;
}

function pickMgetClient(): "wrk" | "bun" {
  const wanted = process.env.BENCH_MGET_CLIENT ?? "auto";
  if (wanted === "bun" || wanted === "wrk") return wanted;
  return Bun.which("wrk") ? "wrk" : "bun";
}

function readSettings(): Settings {
  return {
    rounds: Math.max(1, Math.round(envNumber("BENCH_ROUNDS", 5))),
    scale: envNumber("BENCH_SCALE", 1),
    mgetClient: pickMgetClient(),
    wrkThreads: Math.max(1, Math.round(envNumber("BENCH_WRK_THREADS", 2))),
    work: process.env.BENCH_WORK || tmpdir(),
    clkTck: envNumber("BENCH_CLK_TCK", 100),
    json: process.env.BENCH_JSON || null,
  };
}

function parsePid(raw: string | undefined): number | null {
  if (!raw) return null;
  const pid = Number(raw);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

function readTargets(): Target[] {
  const only = process.env.BENCH_ONLY ?? "";
  const targets: Target[] = [];
  const berth = process.env.BERTH_URL;
  const dist = process.env.DIST_URL;
  if (berth && only !== "distribution") {
    targets.push({ name: "berth", base: berth.replace(/\/+$/, ""), pid: parsePid(process.env.BERTH_PID) });
  }
  if (dist && only !== "berth") {
    targets.push({ name: "distribution", base: dist.replace(/\/+$/, ""), pid: parsePid(process.env.DIST_PID) });
  }
  if (targets.length === 0) throw new Error("no target: set BERTH_URL and/or DIST_URL");
  return targets;
}

/** Scales a count by BENCH_SCALE, never below one. */
function scaled(count: number, scale: number): number {
  return Math.max(1, Math.round(count * scale));
}

// ---------------------------------------------------------------- /proc

/** Reads a "VmXXX:   1234 kB" field from /proc/PID/status, in MiB. */
function readStatusMiB(pid: number, field: string): number | null {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    return match?.[1] ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** utime + stime of a process in seconds, from /proc/PID/stat. */
function readCpuSeconds(pid: number, clkTck: number): number | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // After "pid (comm) ", field 3 (state) is index 0; utime is field 14, stime 15.
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return (utime + stime) / clkTck;
  } catch {
    return null;
  }
}

/** Resets the kernel's peak-RSS counter (VmHWM) so it covers one workload. */
function resetPeakRss(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
  } catch {
    // Not permitted or unsupported: sampling alone still gives a peak.
  }
}

/** Samples a server's RSS every 50 ms while a workload runs. */
class RssSampler {
  private peak = 0;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly pid: number | null) {}

  /** Starts sampling (no-op without a PID). */
  start(): void {
    if (this.pid === null) return;
    const pid = this.pid;
    resetPeakRss(pid);
    this.sample(pid);
    this.timer = setInterval(() => this.sample(pid), RSS_SAMPLE_MS);
  }

  /** Stops the periodic sampling (idempotent). */
  pause(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Stops sampling and returns the peak in MiB, VmHWM included. */
  stop(): number | null {
    this.pause();
    if (this.pid === null) return null;
    this.sample(this.pid);
    const hwm = readStatusMiB(this.pid, "VmHWM") ?? 0;
    return Math.max(this.peak, hwm);
  }

  private sample(pid: number): void {
    const rss = readStatusMiB(pid, "VmRSS");
    if (rss !== null && rss > this.peak) this.peak = rss;
  }
}

// ---------------------------------------------------------------- data

/** Largest layer any workload pushes. */
const MAX_LAYER = 64 * MIB;
/** Random bytes every layer is cut from; never replaced, so specs stay reproducible. */
const pool: Uint8Array = new Uint8Array(randomBytes(MAX_LAYER));
/** Distinguishes this run's blobs from any earlier run's on the same server. */
const runNonce = randomBytes(8);
let nextSeed = 1;

/** Fills `out` with the layer for `seed`: a slice of the pool with a unique 16-byte stamp. */
function fillLayer(out: Uint8Array, seed: number): void {
  const span = pool.length - out.length;
  const offset = span > 0 ? (seed * 65_537 * 16) % span : 0;
  out.set(pool.subarray(offset, offset + out.length));
  out.set(runNonce, 0);
  new DataView(out.buffer, out.byteOffset, out.byteLength).setFloat64(8, seed);
}

function sha256(data: Uint8Array): string {
  return `sha256:${new Bun.CryptoHasher("sha256").update(data).digest("hex")}`;
}

function makeConfig(seed: number): Bytes {
  const config = {
    architecture: "amd64",
    os: "linux",
    created: "2024-01-01T00:00:00Z",
    config: { Env: [`BENCH_SEED=${runNonce.toString("hex")}-${seed}`] },
    rootfs: { type: "layers", diff_ids: [] as string[] },
  };
  return new TextEncoder().encode(JSON.stringify(config));
}

function makeManifest(configDigest: string, configSize: number, layerDigest: string, layerSize: number): Bytes {
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: configDigest, size: configSize },
    layers: [{ mediaType: OCI_LAYER, digest: layerDigest, size: layerSize }],
  };
  return new TextEncoder().encode(JSON.stringify(manifest));
}

/** Builds image specs (digests precomputed, layer bytes discarded) outside the timed window. */
function prepareImages(count: number, layerSize: number): ImageSpec[] {
  if (layerSize > pool.length) throw new Error(`layer size ${layerSize} exceeds ${pool.length}`);
  const scratch = new Uint8Array(layerSize);
  const specs: ImageSpec[] = [];
  for (let i = 0; i < count; i++) {
    const seed = nextSeed++;
    fillLayer(scratch, seed);
    const layerDigest = sha256(scratch);
    const config = makeConfig(seed);
    const configDigest = sha256(config);
    const manifest = makeManifest(configDigest, config.length, layerDigest, layerSize);
    specs.push({
      tag: `img-${i}`,
      layerSize,
      layerSeed: seed,
      layerDigest,
      config,
      configDigest,
      manifest,
      manifestDigest: sha256(manifest),
    });
  }
  return specs;
}

// ---------------------------------------------------------------- HTTP

async function failWith(res: Response, what: string): Promise<never> {
  const text = await res.text().catch(() => "");
  throw new Error(`${what}: HTTP ${res.status} ${text.slice(0, 300)}`);
}

async function expectStatus(res: Response, want: number, what: string): Promise<void> {
  if (res.status !== want) await failWith(res, what);
}

function locationOf(res: Response, base: string, what: string): string {
  const location = res.headers.get("location");
  if (!location) throw new Error(`${what}: no Location header`);
  return new URL(location, base).toString();
}

function withDigest(url: string, digest: string): string {
  return `${url}${url.includes("?") ? "&" : "?"}digest=${encodeURIComponent(digest)}`;
}

/** Uploads one blob with HEAD, POST, PATCH, PUT (skipped if HEAD finds it). */
async function pushBlob(target: Target, repo: string, digest: string, body: Bytes): Promise<void> {
  const blobUrl = `${target.base}/v2/${repo}/blobs/${digest}`;
  const head = await fetch(blobUrl, { method: "HEAD" });
  if (head.status === 200) return;
  await expectStatus(head, 404, `HEAD ${blobUrl}`);

  const post = await fetch(`${target.base}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  await expectStatus(post, 202, `POST upload ${repo}`);
  const patchUrl = locationOf(post, target.base, "POST upload");
  await post.arrayBuffer();

  const patch = await fetch(patchUrl, {
    method: "PATCH",
    headers: { "Content-Type": "application/octet-stream" },
    body,
  });
  await expectStatus(patch, 202, `PATCH ${patchUrl}`);
  const putUrl = withDigest(locationOf(patch, target.base, "PATCH"), digest);
  await patch.arrayBuffer();

  const put = await fetch(putUrl, { method: "PUT" });
  await expectStatus(put, 201, `PUT ${putUrl}`);
  await put.arrayBuffer();
}

/** Pushes layer, config and manifest of one image; `scratch` holds the layer while it is sent. */
async function pushImage(target: Target, repo: string, spec: ImageSpec, scratch: Bytes): Promise<void> {
  const layer = scratch.subarray(0, spec.layerSize);
  fillLayer(layer, spec.layerSeed);
  await pushBlob(target, repo, spec.layerDigest, layer);
  await pushBlob(target, repo, spec.configDigest, spec.config);
  const url = `${target.base}/v2/${repo}/manifests/${spec.tag}`;
  const res = await fetch(url, { method: "PUT", headers: { "Content-Type": OCI_MANIFEST }, body: spec.manifest });
  await expectStatus(res, 201, `PUT ${url}`);
  await res.arrayBuffer();
}

/** Streams a blob, hashing as it goes, and checks digest and size. */
async function pullBlob(target: Target, repo: string, digest: string, size: number): Promise<void> {
  const url = `${target.base}/v2/${repo}/blobs/${digest}`;
  const res = await fetch(url);
  await expectStatus(res, 200, `GET ${url}`);
  if (!res.body) throw new Error(`GET ${url}: no body`);
  const hasher = new Bun.CryptoHasher("sha256");
  let length = 0;
  for await (const chunk of res.body) {
    hasher.update(chunk);
    length += chunk.length;
  }
  const got = `sha256:${hasher.digest("hex")}`;
  if (got !== digest || length !== size) {
    throw new Error(`GET ${url}: got ${got} (${length} bytes), want ${digest} (${size} bytes)`);
  }
}

interface Descriptor {
  digest: string;
  size: number;
}

function parseManifest(bytes: Uint8Array, what: string): { config: Descriptor; layers: Descriptor[] } {
  const parsed = JSON.parse(new TextDecoder().decode(bytes)) as { config?: Descriptor; layers?: Descriptor[] };
  if (!parsed.config || !Array.isArray(parsed.layers)) throw new Error(`${what}: not an image manifest`);
  return { config: parsed.config, layers: parsed.layers };
}

/** Pulls one image by tag the way a client does and verifies every byte. */
async function pullImage(target: Target, repo: string, spec: ImageSpec): Promise<number> {
  const url = `${target.base}/v2/${repo}/manifests/${spec.tag}`;
  const res = await fetch(url, { headers: { Accept: MANIFEST_ACCEPT } });
  await expectStatus(res, 200, `GET ${url}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (sha256(bytes) !== spec.manifestDigest) throw new Error(`GET ${url}: manifest bytes differ from pushed`);
  const manifest = parseManifest(bytes, url);
  let total = 0;
  for (const blob of [manifest.config, ...manifest.layers]) {
    await pullBlob(target, repo, blob.digest, blob.size);
    total += blob.size;
  }
  return total;
}

/** Runs `count` tasks with at most `concurrency` in flight; worker index is passed along. */
async function runPool(count: number, concurrency: number, task: (index: number, worker: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (id: number): Promise<void> => {
    while (next < count) {
      const index = next++;
      await task(index, id);
    }
  };
  const workers = Array.from({ length: Math.min(concurrency, count) }, (_, id) => worker(id));
  await Promise.all(workers);
}

/** Waits until GET /v2/ answers 200 or 401. */
async function waitReady(target: Target, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${target.base}/v2/`);
      await res.arrayBuffer();
      if (res.status === 200 || res.status === 401) return;
      last = `HTTP ${res.status}`;
    } catch (error) {
      last = String(error);
    }
    await Bun.sleep(100);
  }
  throw new Error(`${target.name} at ${target.base} not ready: ${last}`);
}

// ---------------------------------------------------------------- workloads

/**
 * Flushes every dirty page to disk. Called before each timed workload so that each server
 * starts from a quiescent disk: distribution does not fsync, so without this the kernel's
 * writeback of its last workload would run during (and be charged to) the next server's.
 */
function flushDisks(): void {
  Bun.spawnSync(["sync"]);
}

/** Times `body` while sampling the server's RSS and CPU. */
async function measure(target: Target, clkTck: number, body: () => Promise<{ ops: number; bytes: number }>): Promise<Measurement> {
  flushDisks();
  const sampler = new RssSampler(target.pid);
  const cpuBefore = target.pid === null ? null : readCpuSeconds(target.pid, clkTck);
  sampler.start();
  const started = performance.now();
  const result = await body().finally(() => sampler.pause());
  const seconds = (performance.now() - started) / 1000;
  const peakRssMiB = sampler.stop();
  const cpuAfter = target.pid === null ? null : readCpuSeconds(target.pid, clkTck);
  const cpuSeconds = cpuBefore !== null && cpuAfter !== null ? cpuAfter - cpuBefore : null;
  return { seconds, ops: result.ops, bytes: result.bytes, peakRssMiB, cpuSeconds };
}

/** Pushes all specs into `repo` with one scratch layer buffer per worker. */
async function pushAll(target: Target, repo: string, specs: ImageSpec[], concurrency: number): Promise<{ ops: number; bytes: number }> {
  const layerSize = specs[0]?.layerSize ?? 0;
  const scratch = Array.from({ length: Math.min(concurrency, specs.length) }, () => new Uint8Array(layerSize));
  let bytes = 0;
  await runPool(specs.length, concurrency, async (index, worker) => {
    const spec = specs[index]!;
    await pushImage(target, repo, spec, scratch[worker]!);
    bytes += spec.layerSize + spec.config.length;
  });
  return { ops: specs.length, bytes };
}

/** Pulls all specs from `repo`, verifying each blob. */
async function pullAll(target: Target, repo: string, specs: ImageSpec[], concurrency: number): Promise<{ ops: number; bytes: number }> {
  let bytes = 0;
  await runPool(specs.length, concurrency, async (index) => {
    const pulled = await pullImage(target, repo, specs[index]!);
    bytes += pulled;
  });
  return { ops: specs.length, bytes };
}

/** Manifest GETs with Bun's fetch: `count` requests over `concurrency` connections. */
async function manifestGetBun(url: string, count: number, concurrency: number): Promise<{ ops: number; bytes: number }> {
  let bytes = 0;
  await runPool(count, concurrency, async () => {
    const res = await fetch(url, { headers: { Accept: MANIFEST_ACCEPT } });
    if (res.status !== 200) await failWith(res, `GET ${url}`);
    bytes += (await res.arrayBuffer()).byteLength;
  });
  return { ops: count, bytes };
}

const WRK_STOP = "@@WRK-THREAD-DONE";
const WRK_SUMMARY = "@@WRK ";

/**
 * wrk script: each thread stops after `perThread` responses and prints a
 * marker, so the driver can interrupt wrk (whose main thread otherwise
 * sleeps for the whole -d duration); done() prints the summary as JSON.
 */
function wrkScript(perThread: number): string {
  return `
local limit = ${perThread}
local seen = 0
function response(status, headers, body)
  seen = seen + 1
  if seen == limit then
    io.write("${WRK_STOP}\\n")
    io.flush()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\n${WRK_SUMMARY}{"requests":%d,"duration_us":%d,"bytes":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout))
end
`;
}

interface WrkSummary {
  requests: number;
  duration_us: number;
  bytes: number;
  status: number;
  connect: number;
  read: number;
  write: number;
  timeout: number;
}

/** Reads wrk's stdout; once every thread has printed its stop marker, interrupts wrk so it reports. */
async function collectWrkOutput(proc: Bun.Subprocess<"ignore", "pipe", "pipe">, threads: number): Promise<string> {
  let out = "";
  let interrupter: ReturnType<typeof setInterval> | null = null;
  const decoder = new TextDecoder();
  for await (const chunk of proc.stdout) {
    out += decoder.decode(chunk, { stream: true });
    if (interrupter === null && out.split(WRK_STOP).length - 1 >= threads) {
      proc.kill("SIGINT");
      // A signal can land on a worker thread that is just exiting; repeat until wrk is done.
      interrupter = setInterval(() => proc.kill("SIGINT"), 200);
    }
  }
  if (interrupter !== null) clearInterval(interrupter);
  return out;
}

/** Manifest GETs with wrk, each thread stopping after its share of `count` responses. */
async function manifestGetWrk(url: string, count: number, concurrency: number, settings: Settings): Promise<{ ops: number; bytes: number; seconds: number }> {
  const threads = Math.min(settings.wrkThreads, concurrency);
  const script = join(settings.work, `mget-${process.pid}.lua`);
  await Bun.write(script, wrkScript(Math.ceil(count / threads)));
  const args = ["wrk", `-t${threads}`, `-c${concurrency}`, "-d600s", "--timeout", "10s", "-H", `Accept: ${MANIFEST_ACCEPT}`, "-s", script, url];
  const proc = Bun.spawn(args, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([collectWrkOutput(proc, threads), new Response(proc.stderr).text(), proc.exited]);
  const line = out.split("\n").find((l) => l.startsWith(WRK_SUMMARY));
  if (code !== 0 || !line) throw new Error(`wrk failed (exit ${code}): ${err}${out}`);
  const summary = JSON.parse(line.slice(WRK_SUMMARY.length)) as WrkSummary;
  const errors = summary.status + summary.connect + summary.read + summary.write + summary.timeout;
  if (errors > 0) throw new Error(`wrk: ${errors} errors against ${url}: ${line}`);
  return { ops: summary.requests, bytes: summary.bytes, seconds: summary.duration_us / 1e6 };
}

/** Per-server state carried from the push workloads to the pulls of the same round. */
interface RoundState {
  repo1m: string;
  specs1m: ImageSpec[];
  repo64m: string;
  specs64m: ImageSpec[];
}

/** Workload definitions: label, how to run one measurement, unit of throughput. */
interface Workload {
  id: WorkloadId;
  label: string;
  run: (target: Target, state: RoundState, settings: Settings) => Promise<Measurement>;
}

function counts(settings: Settings): { n1m: number; n64m: number; nGet: number } {
  return { n1m: scaled(200, settings.scale), n64m: scaled(8, settings.scale), nGet: scaled(20_000, settings.scale) };
}

function buildWorkloads(settings: Settings): Workload[] {
  const { n1m, n64m, nGet } = counts(settings);
  return [
    {
      id: "push1m",
      label: `push 1 MiB x ${n1m} (c8)`,
      run: (t, s) => measure(t, settings.clkTck, () => pushAll(t, s.repo1m, s.specs1m, 8)),
    },
    {
      id: "pull1m",
      label: `pull 1 MiB x ${n1m} (c8)`,
      run: (t, s) => measure(t, settings.clkTck, () => pullAll(t, s.repo1m, s.specs1m, 8)),
    },
    {
      id: "push64m",
      label: `push 64 MiB x ${n64m} (c2)`,
      run: (t, s) => measure(t, settings.clkTck, () => pushAll(t, s.repo64m, s.specs64m, 2)),
    },
    {
      id: "pull64m",
      label: `pull 64 MiB x ${n64m} (c2)`,
      run: (t, s) => measure(t, settings.clkTck, () => pullAll(t, s.repo64m, s.specs64m, 2)),
    },
    {
      id: "mget",
      label: `manifest GET x ${nGet} (c32)`,
      run: (t, s) => runManifestGet(t, s, nGet, settings),
    },
  ];
}

async function runManifestGet(target: Target, state: RoundState, count: number, settings: Settings): Promise<Measurement> {
  const tag = state.specs1m[0]?.tag ?? "img-0";
  const url = `${target.base}/v2/${state.repo1m}/manifests/${tag}`;
  if (settings.mgetClient === "bun") {
    return measure(target, settings.clkTck, () => manifestGetBun(url, count, 32));
  }
  let wrkSeconds = 0;
  const m = await measure(target, settings.clkTck, async () => {
    const r = await manifestGetWrk(url, count, 32, settings);
    wrkSeconds = r.seconds;
    return r;
  });
  // wrk's own clock excludes its start-up; the CPU window still covers the whole run.
  return { ...m, seconds: wrkSeconds };
}

// ---------------------------------------------------------------- driver

const runId = `${Date.now().toString(36)}${runNonce.toString("hex").slice(0, 4)}`;

function freshState(round: number, settings: Settings): RoundState {
  const { n1m, n64m } = counts(settings);
  return {
    repo1m: `bench-${runId}/r${round}-small`,
    specs1m: prepareImages(n1m, MIB),
    repo64m: `bench-${runId}/r${round}-large`,
    specs64m: prepareImages(n64m, MAX_LAYER),
  };
}

/** Pushes and pulls a few images and GETs a manifest, untimed, so first-use costs stay out of round 1. */
async function warmUp(target: Target): Promise<void> {
  const specs = prepareImages(8, MIB);
  const repo = `bench-${runId}/warmup`;
  await pushAll(target, repo, specs, 8);
  await pullAll(target, repo, specs, 8);
  await manifestGetBun(`${target.base}/v2/${repo}/manifests/${specs[0]!.tag}`, 200, 32);
}

type Results = Record<ServerName, Partial<Record<WorkloadId, Measurement[]>>>;

function describe(m: Measurement, id: WorkloadId): string {
  const rss = m.peakRssMiB === null ? "n/a" : `${m.peakRssMiB.toFixed(1)} MiB`;
  const rate = id === "mget" ? `${(m.ops / m.seconds).toFixed(0)} req/s` : `${(m.ops / m.seconds).toFixed(1)} img/s, ${(m.bytes / MIB / m.seconds).toFixed(1)} MiB/s`;
  return `${m.seconds.toFixed(2)} s, ${rate}, peak RSS ${rss}`;
}

async function runAll(targets: Target[], settings: Settings): Promise<Results> {
  const results: Results = { berth: {}, distribution: {} };
  const workloads = buildWorkloads(settings);
  for (const target of targets) {
    await waitReady(target);
    await warmUp(target);
  }
  for (let round = 1; round <= settings.rounds; round++) {
    const states = new Map(targets.map((t) => [t.name, freshState(round, settings)] as const));
    // ABBA order: the server that goes first alternates between rounds, so a drift of the
    // machine (disk, page cache, noisy neighbours) does not favour either one.
    const order = round % 2 === 1 ? targets : [...targets].reverse();
    for (const workload of workloads) {
      for (const target of order) {
        const m = await workload.run(target, states.get(target.name)!, settings);
        (results[target.name][workload.id] ??= []).push(m);
        console.error(`round ${round}/${settings.rounds}  ${target.name.padEnd(12)} ${workload.label.padEnd(28)} ${describe(m, workload.id)}`);
      }
    }
  }
  return results;
}

// ---------------------------------------------------------------- report

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Summary {
  opsPerSec: number;
  mibPerSec: number;
  cpuPerOpUs: number | null;
  peakRssMiB: number | null;
}

function summarize(ms: Measurement[] | undefined): Summary | null {
  if (!ms || ms.length === 0) return null;
  const cpu = ms.map((m) => (m.cpuSeconds === null ? null : (m.cpuSeconds / m.ops) * 1e6));
  const rss = ms.map((m) => m.peakRssMiB);
  return {
    opsPerSec: median(ms.map((m) => m.ops / m.seconds)),
    mibPerSec: median(ms.map((m) => m.bytes / MIB / m.seconds)),
    cpuPerOpUs: cpu.every((c) => c !== null) ? median(cpu as number[]) : null,
    peakRssMiB: rss.every((r) => r !== null) ? Math.max(...(rss as number[])) : null,
  };
}

/** A target ratio: "min" means ratio must be at least `value`, "max" at most. */
interface Goal {
  kind: "min" | "max";
  value: number;
}

const GOALS: Partial<Record<WorkloadId, Goal>> = {
  push1m: { kind: "min", value: 2 },
  pull1m: { kind: "min", value: 2 },
  push64m: { kind: "min", value: 1.5 },
  mget: { kind: "min", value: 5 },
};
const CPU_GOAL: Goal = { kind: "max", value: 0.2 };
const RSS_LIMIT_MIB = 96;

function meets(goal: Goal, ratio: number): boolean {
  return goal.kind === "min" ? ratio >= goal.value : ratio <= goal.value;
}

function goalText(goal: Goal | undefined, ratio: number | null, passOverride?: boolean): string {
  if (!goal) return "-";
  const want = `${goal.kind === "min" ? ">=" : "<="}${goal.value}x`;
  if (ratio === null) return `${want} n/a`;
  const pass = meets(goal, ratio) || passOverride === true;
  return `${want} ${pass ? "PASS" : "FAIL"}${pass && !meets(goal, ratio) ? " (via CPU)" : ""}`;
}

function rssText(s: Summary | null): string {
  return s?.peakRssMiB == null ? "n/a" : `${s.peakRssMiB.toFixed(1)} MiB`;
}

function rateText(s: Summary | null, id: WorkloadId): string {
  if (!s) return "n/a";
  if (id === "mget") return `${s.opsPerSec.toFixed(0)} req/s`;
  return `${s.opsPerSec.toFixed(1)} img/s ${s.mibPerSec.toFixed(1)} MiB/s`;
}

type Row = [string, string, string, string, string, string, string];

function ratioOf(a: number | undefined | null, b: number | undefined | null): number | null {
  return a != null && b != null && b > 0 ? a / b : null;
}

/**
 * The median over rounds of berth's throughput divided by distribution's in the same round.
 * Pairing measurements taken minutes apart cancels the drift of a shared machine, which a
 * ratio of the two medians does not.
 */
function pairedRatio(b: Measurement[] | undefined, d: Measurement[] | undefined): number | null {
  if (!b || !d || b.length === 0 || b.length !== d.length) return null;
  return median(b.map((m, i) => m.ops / m.seconds / (d[i]!.ops / d[i]!.seconds)));
}

function workloadRows(workloads: Workload[], results: Results): Row[] {
  const rows: Row[] = [];
  for (const w of workloads) {
    const b = summarize(results.berth[w.id]);
    const d = summarize(results.distribution[w.id]);
    const ratio = pairedRatio(results.berth[w.id], results.distribution[w.id]) ?? ratioOf(b?.opsPerSec, d?.opsPerSec);
    const ofMedians = ratioOf(b?.opsPerSec, d?.opsPerSec);
    const cpuRatio = ratioOf(b?.cpuPerOpUs, d?.cpuPerOpUs);
    const viaCpu = w.id === "mget" && cpuRatio !== null && meets(CPU_GOAL, cpuRatio);
    const ratioCell = ratio === null ? "n/a" : `${ratio.toFixed(2)}x (${ofMedians?.toFixed(2) ?? "n/a"}x)`;
    rows.push([w.label, rateText(b, w.id), rateText(d, w.id), ratioCell, goalText(GOALS[w.id], ratio, viaCpu), rssText(b), rssText(d)]);
    if (w.id === "mget") rows.push(cpuRow(b, d, cpuRatio));
  }
  return rows;
}

function cpuRow(b: Summary | null, d: Summary | null, cpuRatio: number | null): Row {
  const cell = (s: Summary | null): string => (s?.cpuPerOpUs == null ? "n/a" : `${s.cpuPerOpUs.toFixed(1)} us CPU/req`);
  const ratioCell = cpuRatio === null ? "n/a" : `${cpuRatio.toFixed(2)}x`;
  return ["  server CPU per manifest GET", cell(b), cell(d), ratioCell, goalText(CPU_GOAL, cpuRatio), "", ""];
}

function rssRow(workloads: Workload[], results: Results): Row {
  const peaks = workloads.map((w) => summarize(results.berth[w.id])?.peakRssMiB ?? null);
  const known = peaks.filter((p): p is number => p !== null);
  if (known.length === 0) return ["berth peak RSS, all workloads", "n/a", "", "", `<${RSS_LIMIT_MIB} MiB n/a`, "", ""];
  const peak = Math.max(...known);
  const verdict = peak < RSS_LIMIT_MIB ? "PASS" : "FAIL";
  return ["berth peak RSS, all workloads", `${peak.toFixed(1)} MiB`, "", "", `<${RSS_LIMIT_MIB} MiB ${verdict}`, "", ""];
}

function formatTable(rows: Row[]): string {
  const header: Row = ["workload", "berth", "distribution", "ratio b/d", "target", "berth peak RSS", "dist peak RSS"];
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: Row): string => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  const rule = `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

function printReport(targets: Target[], results: Results, settings: Settings): void {
  const workloads = buildWorkloads(settings);
  const rows = [...workloadRows(workloads, results), rssRow(workloads, results)];
  console.log("");
  console.log(`berth vs distribution: median of ${settings.rounds} round(s), scale ${settings.scale}, manifest GET client ${settings.mgetClient}`);
  for (const t of targets) console.log(`  ${t.name}: ${t.base} (pid ${t.pid ?? "unknown"})`);
  console.log("  ratio = median over rounds of berth/distribution throughput in the same round (in brackets: ratio of the two medians);");
  console.log("  rounds alternate which server goes first; disks are flushed (sync) before every timed workload;");
  console.log("  CPU row: berth CPU / distribution CPU per request; peak RSS = max over rounds");
  console.log(formatTable(rows));
}

async function main(): Promise<void> {
  const settings = readSettings();
  const targets = readTargets();
  console.error(`bench: ${targets.map((t) => `${t.name}=${t.base}`).join(" ")} rounds=${settings.rounds} scale=${settings.scale} mget=${settings.mgetClient}`);
  const results = await runAll(targets, settings);
  printReport(targets, results, settings);
  if (settings.json) await Bun.write(settings.json, JSON.stringify({ settings, targets, results }, null, 2));
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error(`bench: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
