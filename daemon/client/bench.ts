/**
 * The benchmark engine of `berth bench`, for any OCI registry (berth, zot, distribution…)
 * over the distribution API only: push, pull and mixed workloads of images made of one
 * layer of `size` bytes and a small config, `count` operations with `concurrency` workers,
 * latency percentiles (p50/p90/p99/max) and throughput per operation.
 *
 * Memory stays bounded whatever the size: layer bytes come from a seeded generator in
 * 256 KiB chunks, hashed in one pass and streamed in a second; pulls hash the body as it
 * arrives and keep nothing. Every pulled layer is checked against its digest.
 */
import { createHasher, hashBytes } from "../platform/hash";
import { ClientError, EXIT, messageOfBody } from "./errors";
import type { RegistryClient } from "./http";
import { MANIFEST_ACCEPT } from "./registry";

const CHUNK = 256 * 1024;
/** Above this a layer is streamed; below it is sent as one buffer. */
const STREAM_ABOVE = 1024 * 1024;

/** What to run. */
export interface BenchOptions {
  workload: "push" | "pull" | "mixed";
  /** Measured operations (one operation = one whole image pushed or pulled). */
  count: number;
  /** Layer size in bytes. */
  size: number;
  concurrency: number;
  /** Images pushed before a pull or mixed run (not measured); pulls go round them. */
  images: number;
  /** Share of pushes in a mixed run (0..1). */
  pushRatio: number;
  repo: string;
  /** Seed of the layer bytes (a run's images differ from another run's with another seed). */
  seed: number;
}

/** Figures of one operation kind. */
export interface OpStats {
  op: "push" | "pull";
  count: number;
  errors: number;
  bytes: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  opsPerSecond: number;
  bytesPerSecond: number;
}

/** The result of one run against one registry. */
export interface BenchResult {
  registry: string;
  workload: BenchOptions["workload"];
  count: number;
  size: number;
  concurrency: number;
  seconds: number;
  ops: OpStats[];
  /** The first few error messages (all errors are counted in `ops`). */
  errors: string[];
}

/** Fills `out` with the bytes of layer `seed` from `offset` (a xorshift32 stream, deterministic per seed). */
function fill(out: Uint8Array, seed: number, offset: number): void {
  // each chunk restarts from a state derived from (seed, chunk index): chunks can be made in any order
  const words = new Uint32Array(out.buffer, out.byteOffset, out.length >>> 2);
  let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(offset / CHUNK + 1, 0xc2b2ae35)) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (let i = words.length * 4; i < out.length; i++) out[i] = i & 0xff;
}

/** The layer's bytes as a stream of chunks. */
function layerStream(seed: number, size: number): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= size) return controller.close();
      const chunk = new Uint8Array(Math.min(CHUNK, size - offset));
      fill(chunk, seed, offset);
      offset += chunk.length;
      controller.enqueue(chunk);
    },
  });
}

/** sha256 of the layer, generated chunk by chunk. */
function layerDigest(seed: number, size: number): string {
  const h = createHasher("sha256");
  const chunk = new Uint8Array(CHUNK);
  for (let offset = 0; offset < size; offset += CHUNK) {
    const part = chunk.subarray(0, Math.min(CHUNK, size - offset));
    fill(part, seed, offset);
    h.update(part);
  }
  return `sha256:${h.hex()}`;
}

const sha256 = (b: Uint8Array) => `sha256:${hashBytes("sha256", b)}`;

/** One image: layer seed and digest, config and manifest bytes. */
interface Image {
  tag: string;
  seed: number;
  layer: string;
  config: Uint8Array;
  manifest: Uint8Array;
}

function makeImage(o: BenchOptions, index: number): Image {
  const seed = (o.seed * 1_000_003 + index) >>> 0;
  const layer = layerDigest(seed, o.size);
  const config = new TextEncoder().encode(JSON.stringify({ architecture: "amd64", os: "linux", config: { Labels: { "org.berth.bench": `${o.seed}-${index}` } }, rootfs: { type: "layers", diff_ids: [layer] } }));
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer, size: o.size }],
  }));
  return { tag: `bench-${o.seed}-${index}`, seed, layer, config, manifest };
}

async function expect(res: Response, status: number, what: string): Promise<Response> {
  if (res.status === status || (status === 200 && res.ok)) return res;
  throw new ClientError(`${what}: ${res.status} ${messageOfBody(await res.text())}`, res.status === 401 || res.status === 403 ? EXIT.denied : EXIT.error, res.status);
}

/** Uploads one blob (POST, then a monolithic PUT with the digest). */
async function pushBlob(client: RegistryClient, o: BenchOptions, scope: string, digest: string, body: Uint8Array | { seed: number; size: number }): Promise<void> {
  const start = await expect(await client.request(`/v2/${o.repo}/blobs/uploads/`, { method: "POST", scope }), 202, "starting an upload");
  await start.body?.cancel();
  const location = new URL(start.headers.get("Location") ?? "", client.url);
  location.searchParams.set("digest", digest);
  const size = body instanceof Uint8Array ? body.length : body.size;
  const payload = body instanceof Uint8Array ? body : size > STREAM_ABOVE ? layerStream(body.seed, size) : (() => {
    const b = new Uint8Array(size);
    fill(b, body.seed, 0);
    return b;
  })();
  const res = await client.request(location.pathname + location.search, { method: "PUT", scope, body: payload, headers: { "Content-Type": "application/octet-stream", "Content-Length": String(size) } });
  await (await expect(res, 201, `uploading ${digest}`)).body?.cancel();
}

async function pushImage(client: RegistryClient, o: BenchOptions, scope: string, img: Image): Promise<number> {
  await pushBlob(client, o, scope, img.layer, { seed: img.seed, size: o.size });
  await pushBlob(client, o, scope, sha256(img.config), img.config);
  const res = await client.request(`/v2/${o.repo}/manifests/${img.tag}`, { method: "PUT", scope, body: img.manifest, headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
  await (await expect(res, 201, `pushing manifest ${img.tag}`)).body?.cancel();
  return o.size + img.config.length + img.manifest.length;
}

/** Reads a body to its end through a hasher; returns its size and digest. */
async function drain(res: Response): Promise<{ size: number; digest: string }> {
  const h = createHasher("sha256");
  let size = 0;
  for await (const chunk of res.body as ReadableStream<Uint8Array>) {
    h.update(chunk);
    size += chunk.length;
  }
  return { size, digest: `sha256:${h.hex()}` };
}

async function pullImage(client: RegistryClient, o: BenchOptions, scope: string, img: Image): Promise<number> {
  const m = await expect(await client.request(`/v2/${o.repo}/manifests/${img.tag}`, { scope, headers: { Accept: MANIFEST_ACCEPT } }), 200, `pulling manifest ${img.tag}`);
  const doc = JSON.parse(await m.text()) as { config: { digest: string }; layers: { digest: string }[] };
  let bytes = 0;
  for (const d of [doc.config.digest, ...doc.layers.map((l) => l.digest)]) {
    const got = await drain(await expect(await client.request(`/v2/${o.repo}/blobs/${d}`, { scope }), 200, `pulling blob ${d}`));
    if (got.digest !== d) throw new ClientError(`blob ${d} came back with digest ${got.digest}`, EXIT.error);
    bytes += got.size;
  }
  return bytes + img.manifest.length;
}

/** p-th percentile (nearest rank) of sorted values. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const round = (n: number) => Math.round(n * 100) / 100;

/**
 * Runs one benchmark against `client`'s registry. `onOp` hears the measured operations done
 * and bytes moved so far (for a progress bar). Failed operations are counted, not thrown;
 * a refused login or an unreachable registry fails the run at once.
 */
export async function runBench(client: RegistryClient, o: BenchOptions, onOp?: (done: number, bytes: number) => void): Promise<BenchResult> {
  const scope = `repository:${o.repo}:pull,push`;
  await client.authorize(scope);
  const errors: string[] = [];
  const samples: Record<"push" | "pull", { ms: number[]; errors: number; bytes: number }> = { push: { ms: [], errors: 0, bytes: 0 }, pull: { ms: [], errors: 0, bytes: 0 } };
  let next = 0;
  // pull and mixed runs read images pushed first (not measured)
  const seeded: Image[] = [];
  if (o.workload !== "push") {
    for (let i = 0; i < o.images; i++) {
      const img = makeImage(o, i);
      await pushImage(client, o, scope, img);
      seeded.push(img);
    }
  }
  let pushed = seeded.length;
  let done = 0;
  let moved = 0;
  // mixed: a deterministic sequence of pushes and pulls with the asked share of pushes
  const isPush = (i: number) => o.workload === "push" || (o.workload === "mixed" && Math.floor((i + 1) * o.pushRatio) > Math.floor(i * o.pushRatio));
  const started = performance.now();
  const worker = async () => {
    while (next < o.count) {
      const i = next++;
      const op = isPush(i) ? "push" : "pull";
      const t = performance.now();
      try {
        const bytes = op === "push" ? await pushImage(client, o, scope, makeImage(o, pushed++)) : await pullImage(client, o, scope, seeded[i % seeded.length]!);
        samples[op].ms.push(performance.now() - t);
        samples[op].bytes += bytes;
        moved += bytes;
      } catch (err) {
        if (err instanceof ClientError && (err.exit === EXIT.unreachable || err.exit === EXIT.denied)) throw err;
        samples[op].errors++;
        if (errors.length < 10) errors.push((err as Error).message);
      }
      onOp?.(++done, moved);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, o.count)) }, worker));
  const seconds = (performance.now() - started) / 1000;
  const ops: OpStats[] = [];
  for (const op of ["push", "pull"] as const) {
    const s = samples[op];
    if (s.ms.length + s.errors === 0) continue;
    const sorted = [...s.ms].sort((a, b) => a - b);
    const mean = sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : 0;
    ops.push({
      op,
      count: s.ms.length,
      errors: s.errors,
      bytes: s.bytes,
      latencyMs: { p50: round(percentile(sorted, 50)), p90: round(percentile(sorted, 90)), p99: round(percentile(sorted, 99)), max: round(sorted.at(-1) ?? 0), mean: round(mean) },
      opsPerSecond: round(s.ms.length / seconds),
      bytesPerSecond: Math.round(s.bytes / seconds),
    });
  }
  return { registry: client.url, workload: o.workload, count: o.count, size: o.size, concurrency: o.concurrency, seconds: round(seconds), ops, errors };
}
