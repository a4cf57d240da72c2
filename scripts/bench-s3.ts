/**
 * Benchmark of berth's S3 backend beside berth's local backend and beside distribution's S3
 * driver (Debian's docker-registry, scripts/distribution-s3.ts), in one run on one Ceph
 * cluster (the test helper's, or BERTH_S3_ENDPOINT): for each registry, blob pushes (POST a
 * session, PUT the bytes with the digest) and pulls (GET, body read to the end) of 1 MiB and
 * 64 MiB of fresh random bytes (no dedupe hit), and manifest GETs by tag. Every registry gets
 * the same requests in the same order; the figures are medians (and p95 for manifest GETs)
 * of wall-clock time on this machine, which other work shares: compare within one run.
 * For berth, the daemon's peak RSS (and its growth over the RSS before the pushes) and the
 * peak bytes in its local root (meta.db aside) are sampled every 10 ms during the pushes.
 * `--before DIR` adds a berth on S3 run from another source tree (e.g. `git archive` of an
 * earlier commit, with node_modules linked in), for before/after figures in the same run.
 *
 *   bun scripts/bench-s3.ts [--rounds N] [--manifest-gets N] [--before DIR]
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { S3Client } from "../daemon/storage/s3/client";
import { dropBucket, s3Peer, s3StorageToml, writeS3Credentials, localBytes } from "../test/helpers/ceph";
import { makeTemp } from "../test/helpers/clients";
import { startDaemon } from "../test/helpers/daemon";
import { startDistributionS3 } from "./distribution-s3";

const MiB = 1024 * 1024;
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const ROUNDS = arg("--rounds", 5);
const MANIFEST_GETS = arg("--manifest-gets", 200);
const BEFORE = process.argv.includes("--before") ? process.argv[process.argv.indexOf("--before") + 1] : undefined;

/** The daemon's resident set, bytes. */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Samples a daemon's RSS and local bytes while pushes run. */
function sampler(pid: number, root: string) {
  const base = rssOf(pid);
  let rss = base;
  let disk = 0;
  const timer = setInterval(() => {
    rss = Math.max(rss, rssOf(pid));
    disk = Math.max(disk, localBytes(root));
  }, 10);
  return { stop: () => (clearInterval(timer), { base, rss, disk }) };
}
const sha = (b: Uint8Array | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))]!;

async function pushBlob(url: string, repo: string, bytes: Uint8Array): Promise<void> {
  const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  await start.body?.cancel();
  if (start.status !== 202) throw new Error(`POST upload answered ${start.status}`);
  const loc = new URL(start.headers.get("location")!, url);
  loc.searchParams.set("digest", sha(bytes));
  const put = await fetch(loc, { method: "PUT", body: bytes, headers: { "content-type": "application/octet-stream" } });
  await put.body?.cancel();
  if (put.status !== 201) throw new Error(`PUT upload answered ${put.status}`);
}

async function pullBlob(url: string, repo: string, digest: string, size: number): Promise<void> {
  const res = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
  if (res.status !== 200) throw new Error(`blob GET answered ${res.status}`);
  let n = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) n += chunk.byteLength;
  if (n !== size) throw new Error(`blob GET gave ${n} bytes, not ${size}`);
}

/** Runs the workload against one registry; answers its figures. */
async function measure(name: string, url: string, daemon?: { pid: number; root: string }): Promise<Record<string, string>> {
  const out: Record<string, string> = { registry: name };
  const repo = "bench/s3";
  const peaks = { rss: 0, growth: 0, disk: 0 };
  for (const size of [1 * MiB, 64 * MiB]) {
    const pushMs: number[] = [];
    const pullMs: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const bytes = randomBytes(size);
      const sample = size === 64 * MiB && daemon ? sampler(daemon.pid, daemon.root) : undefined;
      let t = performance.now();
      await pushBlob(url, repo, bytes);
      pushMs.push(performance.now() - t);
      const peak = sample?.stop();
      if (peak) {
        peaks.rss = Math.max(peaks.rss, peak.rss);
        peaks.growth = Math.max(peaks.growth, peak.rss - peak.base);
        peaks.disk = Math.max(peaks.disk, peak.disk);
      }
      t = performance.now();
      await pullBlob(url, repo, sha(bytes), size);
      pullMs.push(performance.now() - t);
    }
    const label = `${size / MiB} MiB`;
    out[`push ${label}`] = `${median(pushMs).toFixed(0)} ms (${(size / MiB / (median(pushMs) / 1000)).toFixed(0)} MiB/s)`;
    out[`pull ${label}`] = `${median(pullMs).toFixed(0)} ms (${(size / MiB / (median(pullMs) / 1000)).toFixed(0)} MiB/s)`;
  }
  if (daemon) {
    out["64 MiB push: peak RSS"] = `${(peaks.rss / MiB).toFixed(0)} MiB (+${(peaks.growth / MiB).toFixed(0)})`;
    out["64 MiB push: local bytes"] = `${(peaks.disk / MiB).toFixed(1)} MiB`;
  }
  const config = JSON.stringify({ architecture: "amd64", os: "linux" });
  await pushBlob(url, repo, new TextEncoder().encode(config));
  const layer = randomBytes(1024);
  await pushBlob(url, repo, layer);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha(layer), size: layer.length }],
  });
  const put = await fetch(`${url}/v2/${repo}/manifests/latest`, { method: "PUT", body: manifest, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
  if (put.status !== 201) throw new Error(`manifest PUT answered ${put.status}: ${await put.text()}`);
  const getMs: number[] = [];
  for (let i = 0; i < MANIFEST_GETS; i++) {
    const t = performance.now();
    const res = await fetch(`${url}/v2/${repo}/manifests/latest`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`manifest GET answered ${res.status}`);
    getMs.push(performance.now() - t);
  }
  out["manifest GET"] = `median ${median(getMs).toFixed(2)} ms, p95 ${p95(getMs).toFixed(2)} ms`;
  return out;
}

const peer = await s3Peer();
const work = makeTemp("berth-bench-s3-");
const creds = writeS3Credentials(work, peer);
const bucket = `berth-bench-${crypto.randomUUID().slice(0, 8)}`;
const s3 = new S3Client({ ...peer, bucket });
await s3.createBucket();
const results: Record<string, string>[] = [];
try {
  {
    await using local = await startDaemon();
    results.push(await measure("berth, local disk", local.url, { pid: local.proc.pid, root: local.root }));
  }
  {
    await using onS3 = await startDaemon({ storage: s3StorageToml(peer, bucket, "", creds) });
    results.push(await measure("berth, S3 (Ceph RGW)", onS3.url, { pid: onS3.proc.pid, root: onS3.root }));
  }
  if (BEFORE) {
    await using before = await startDaemon({ command: [process.execPath, join(BEFORE, "daemon/main.ts")], storage: s3StorageToml(peer, bucket, "before", creds) });
    results.push(await measure(`berth, S3, from ${BEFORE}`, before.url, { pid: before.proc.pid, root: before.root }));
  }
  {
    await using dist = await startDistributionS3(peer);
    try {
      results.push(await measure("distribution 2.8, S3 (Ceph RGW)", dist.url));
    } finally {
      await dropBucket(new S3Client({ ...peer, bucket: dist.bucket })).catch(() => {});
    }
  }
} finally {
  await dropBucket(s3).catch(() => {});
  rmSync(work, { recursive: true, force: true });
}
console.log(`rounds per size: ${ROUNDS}; manifest GETs: ${MANIFEST_GETS}`);
console.table(results);
process.exit(0);
