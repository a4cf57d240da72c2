/**
 * Write amplification on flash: bytes the registry process makes the kernel write to disk
 * (/proc/<pid>/io write_bytes) per byte of content pushed, for 1 MiB and 64 MiB images,
 * berth beside distribution (Debian's docker-registry) in the same run, plus berth's own
 * accounting (GET /api/v1/storage) and its write system calls. Target: <= 1.1.
 *
 *   bun scripts/bench-writes.ts            (or scripts/bench-writes)
 *   BENCH_ROUNDS=3   images pushed per size (median of the per-image ratios is reported)
 *   BENCH_DIR=/tmp   where the scratch storage goes (must be a disk, not tmpfs)
 *   BENCH_VERBOSE=1  print every push's figures
 *   BERTH_STORAGE_EXTRA='hash_thread = false'   extra keys for berth's [storage] section
 *
 * Each image is a random layer, a config and a manifest; the layer goes up as a session
 * with one streamed PATCH and a closing PUT, as clients push large layers. Both servers run
 * on 127.0.0.1 with their storage on the same file system and are stopped by PID at the end.
 */
import { randomBytes, createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

const MIB = 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const work = mkdtempSync(join(process.env.BENCH_DIR ?? "/tmp", "berth-bench-writes-"));
const procs: Subprocess[] = [];

function writeBytes(pid: number): { write_bytes: number; syscw: number } {
  const text = readFileSync(`/proc/${pid}/io`, "utf8");
  const get = (k: string) => Number(new RegExp(`^${k}: (\\d+)$`, "m").exec(text)![1]);
  return { write_bytes: get("write_bytes"), syscw: get("syscw") };
}

const sha = (b: Uint8Array | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function waitHttp(url: string, proc: Subprocess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (proc.exitCode !== null) throw new Error(`${url}: server exited`);
    try {
      if ((await fetch(`${url}/v2/`)).status === 200) return;
    } catch {}
    await Bun.sleep(100);
  }
  throw new Error(`${url} did not answer within 30 s`);
}

async function startBerth(): Promise<{ url: string; pid: number }> {
  const dir = join(work, "berth");
  const config = join(work, "berth.toml");
  writeFileSync(config, `[http]\naddress = "127.0.0.1"\nport = 0\n[storage]\nroot = "${dir}"\n${process.env.BERTH_STORAGE_EXTRA ?? ""}\n[log]\nlevel = "info"\n`);
  const proc = Bun.spawn([process.execPath, resolve(import.meta.dir, "../daemon/main.ts"), "serve", "--config", config], { stderr: "pipe", stdout: "ignore" });
  procs.push(proc);
  let logs = "";
  const reader = (proc.stderr as ReadableStream<Uint8Array>).getReader();
  for (let i = 0; i < 1000; i++) {
    const { value, done } = await reader.read();
    if (done) break;
    logs += new TextDecoder().decode(value);
    const m = /"port":(\d+)/.exec(logs);
    if (m) {
      (async () => { for (;;) if ((await reader.read()).done) break; })();
      const url = `http://127.0.0.1:${m[1]}`;
      await waitHttp(url, proc);
      return { url, pid: proc.pid };
    }
  }
  throw new Error(`berth did not start:\n${logs}`);
}

async function startDistribution(): Promise<{ url: string; pid: number }> {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = server.port;
  server.stop(true);
  const dir = join(work, "distribution");
  const config = join(work, "distribution.yml");
  writeFileSync(config, `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:${port}\nhealth:\n  storagedriver:\n    enabled: false\n`);
  const proc = Bun.spawn(["docker-registry", "serve", config], { stderr: "ignore", stdout: "ignore" });
  procs.push(proc);
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(url, proc);
  return { url, pid: proc.pid };
}

/** Pushes one image; returns the content bytes pushed. */
async function pushImage(url: string, repo: string, tag: string, layerSize: number): Promise<number> {
  const layer = randomBytes(layerSize);
  const config = JSON.stringify({ architecture: "arm64", os: "linux", rootfs: { type: "layers", diff_ids: [sha(layer)] } });
  const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  if (start.status !== 202) throw new Error(`POST ${start.status}`);
  const loc = new URL(start.headers.get("location")!, url).toString();
  const chunk = 1 << 20;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (let o = 0; o < layer.length; o += chunk) c.enqueue(layer.subarray(o, o + chunk));
      c.close();
    },
  });
  const patch = await fetch(loc, { method: "PATCH", body, headers: { "Content-Type": "application/octet-stream" } });
  if (patch.status !== 202) throw new Error(`PATCH ${patch.status} ${await patch.text()}`);
  const put = new URL(patch.headers.get("location")!, url);
  put.searchParams.set("digest", sha(layer));
  if ((await fetch(put, { method: "PUT" })).status !== 201) throw new Error("PUT layer");
  if ((await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha(config)}`, { method: "POST", body: config })).status !== 201) {
    // distribution wants a session for monolithic uploads too
    const s = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    const u = new URL(s.headers.get("location")!, url);
    u.searchParams.set("digest", sha(config));
    if ((await fetch(u, { method: "PUT", body: config })).status !== 201) throw new Error("config");
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha(layer), size: layer.length }],
  });
  const m = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: manifest, headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
  if (m.status !== 201) throw new Error(`manifest ${m.status}`);
  return layer.length + config.length + manifest.length;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

try {
  const servers = { berth: await startBerth(), distribution: await startDistribution() };
  console.log(`write amplification: /proc/<pid>/io write_bytes per content byte pushed; ${ROUNDS} images per size; storage under ${work}`);
  console.log("size     server         median ratio  min     max     syscw/image  berth-accounted ratio");
  for (const size of [1 * MIB, 64 * MIB]) {
    for (const [name, s] of Object.entries(servers)) {
      const ratios: number[] = [];
      const calls: number[] = [];
      const own: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        // berth's own figures are read outside the measured window (the admin request is not a push).
        const ownBefore = name === "berth" ? ((await (await fetch(`${s.url}/api/v1/storage`)).json()) as any).writes.berth.bytesWritten : 0;
        Bun.spawnSync(["sync"]);
        const before = writeBytes(s.pid);
        const pushed = await pushImage(s.url, `bench/w${size}`, `r${i}`, size);
        const after = writeBytes(s.pid);
        ratios.push((after.write_bytes - before.write_bytes) / pushed);
        if (process.env.BENCH_VERBOSE) console.log(`  ${name} ${size} push ${i}: write_bytes +${after.write_bytes - before.write_bytes} for ${pushed} pushed`);
        calls.push(after.syscw - before.syscw);
        if (name === "berth") own.push((((await (await fetch(`${s.url}/api/v1/storage`)).json()) as any).writes.berth.bytesWritten - ownBefore) / pushed);
      }
      console.log(
        `${String(size / MIB).padStart(2)} MiB   ${name.padEnd(14)} ${median(ratios).toFixed(3).padStart(6)}        ${Math.min(...ratios).toFixed(3)}   ${Math.max(...ratios).toFixed(3)}   ${String(median(calls)).padStart(6)}       ${own.length ? median(own).toFixed(3) : "n/a"}`,
      );
    }
  }
  console.log("target: berth <= 1.1");
} finally {
  for (const p of procs) {
    p.kill("SIGTERM");
    await Promise.race([p.exited, Bun.sleep(5000)]);
    if (p.exitCode === null) p.kill("SIGKILL");
  }
  rmSync(work, { recursive: true, force: true });
}
