/**
 * What authentication costs on the hot path (issue 10): manifest GETs and 1 MiB blob pulls
 * against two berth daemons and Debian's docker-registry (CNCF distribution) in the same run,
 * one htpasswd file (`htpasswd -B`) for both registries that check it, the workloads
 * alternating round by round (ABAB: each odd round runs them in reverse order). Measured:
 *   open        berth without [auth], anonymous
 *   open+header berth without [auth], the same Basic header sent (ignored): what the header
 *               itself costs the client and the HTTP parser, to tell it from berth's checking
 *   anon        berth with [auth], anonymous (the policy lets anonymous callers pull)
 *   basic       berth with [auth], Basic credentials on every request (bcrypt once, then the cache)
 *   dist        distribution with htpasswd auth, Basic credentials on every request
 * Prints requests/s per round, the medians side by side with the ratios the issue sets
 * targets for (basic/anon >= 0.8 for manifests, >= 0.9 for 1 MiB pulls), each berth's peak
 * RSS (target <= 96 MiB), and a bound on the bcrypt verifications berth can have run: a
 * second user whose entry costs 2^14 rounds (about a second of CPU each) is sent Basic
 * credentials on every request of a short burst; finishing that burst in a few seconds
 * leaves room for only a handful of them, where per-request checking would need one each.
 *
 *   bun scripts/bench-auth.ts     (BERTH_REQUESTS=N manifest GETs per round, default 20000;
 *                                  BERTH_DIST_REQUESTS=N of them for distribution, which runs
 *                                  bcrypt on each request, default 2000; BERTH_BLOBS=N blob
 *                                  GETs per round, default 400; BERTH_ROUNDS, default 4)
 */
import { chmodSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { startDaemon, type Daemon } from "../test/helpers/daemon";
import { makeTemp, runOk, waitFor } from "../test/helpers/clients";

const REQUESTS = Number(process.env.BERTH_REQUESTS ?? 20_000);
const DIST_REQUESTS = Number(process.env.BERTH_DIST_REQUESTS ?? 2_000);
const BLOBS = Number(process.env.BERTH_BLOBS ?? 400);
const ROUNDS = Number(process.env.BERTH_ROUNDS ?? 4);
const SLOW_BURST = 2_000;
const CONCURRENCY = 32;
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const basic = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` });
const AUTH = basic("ci", "ci-password");
const SLOW_AUTH = basic("slow", "slow-password");

function sha256(data: Uint8Array | string): string {
  return `sha256:${new Bun.CryptoHasher("sha256").update(data).digest("hex")}`;
}

/** A registry under test: its base URL and the headers every request carries. */
interface Target {
  url: string;
  headers: Record<string, string>;
}

/** Uploads one blob the portable way (POST, then PUT with the digest): berth and distribution both take it. */
async function pushBlob(t: Target, blob: Uint8Array | string): Promise<void> {
  const start = await fetch(`${t.url}/v2/bench/app/blobs/uploads/`, { method: "POST", headers: t.headers });
  const location = start.headers.get("location");
  if (start.status !== 202 || !location) throw new Error(`start upload at ${t.url}: ${start.status}`);
  const put = new URL(location, t.url);
  put.searchParams.set("digest", sha256(blob));
  const res = await fetch(put, { method: "PUT", headers: { ...t.headers, "Content-Type": "application/octet-stream" }, body: blob });
  if (res.status !== 201) throw new Error(`finish upload at ${t.url}: ${res.status} ${await res.text()}`);
}

/** Pushes a 1 MiB layer, a config and a manifest tagged v1; returns the layer digest. */
async function seed(t: Target): Promise<string> {
  const layer = new Uint8Array(1024 * 1024).map((_, i) => (i * 7) & 255);
  const config = JSON.stringify({ architecture: "amd64", os: "linux" });
  for (const blob of [layer, config]) await pushBlob(t, blob);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(layer), size: layer.length }],
  });
  const res = await fetch(`${t.url}/v2/bench/app/manifests/v1`, { method: "PUT", headers: { ...t.headers, "Content-Type": OCI_MANIFEST }, body: manifest });
  if (res.status !== 201) throw new Error(`seed manifest at ${t.url}: ${res.status} ${await res.text()}`);
  return sha256(layer);
}

/** Requests per second of `total` GETs of `url` at {@link CONCURRENCY}; any status but 200 aborts. */
async function rate(url: string, total: number, headers: Record<string, string>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < total) {
        const res = await fetch(url, { headers: { ...headers, Accept: OCI_MANIFEST } });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
      }
    }),
  );
  return total / ((performance.now() - started) / 1000);
}

function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** A port free a moment ago (distribution, quiet below errors, does not log the one it chose). */
function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

/** Starts docker-registry with htpasswd auth from `htpasswd`, logging only errors, until /v2/ answers 401. */
async function startDistribution(dir: string, htpasswd: string): Promise<{ url: string; proc: Subprocess } & AsyncDisposable> {
  const port = freePort();
  const config = join(dir, "distribution.yml");
  writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: ${join(dir, "distribution-data")}\n` +
      `auth:\n  htpasswd:\n    realm: bench\n    path: ${htpasswd}\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: bench\n`,
  );
  const proc = Bun.spawn(["docker-registry", "serve", config], { stdin: "ignore", stdout: "ignore", stderr: "inherit" });
  const url = `http://127.0.0.1:${port}`;
  await waitFor("docker-registry to answer", async () => {
    if (proc.exitCode !== null) throw new Error(`docker-registry exited with ${proc.exitCode}`);
    return (await fetch(`${url}/v2/`).catch(() => undefined))?.status === 401;
  }, 15_000);
  return { url, proc, [Symbol.asyncDispose]: async () => (proc.kill("SIGKILL"), void (await proc.exited)) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const work = makeTemp("berth-bench-auth-");
  const htpasswd = join(work, "htpasswd");
  await runOk(["htpasswd", "-B", "-b", "-c", htpasswd, "ci", "ci-password"]);
  await runOk(["htpasswd", "-B", "-C", "14", "-b", htpasswd, "slow", "slow-password"]);
  chmodSync(htpasswd, 0o600);
  await using open = await startDaemon();
  await using locked = await startDaemon({
    extra: `[auth]\nhtpasswd = "${htpasswd}"\n[[access]]\nrepos = ["**"]\nanonymous = ["pull"]\nusers = { ci = ["pull", "push"], slow = ["pull"] }\n`,
  });
  await using dist = await startDistribution(work, htpasswd);
  const layerOpen = await seed({ url: open.url, headers: {} });
  const layerLocked = await seed({ url: locked.url, headers: AUTH });
  const layerDist = await seed({ url: dist.url, headers: AUTH });
  const manifest = (d: { url: string }) => `${d.url}/v2/bench/app/manifests/v1`;
  const blob = (d: { url: string }, layer: string) => `${d.url}/v2/bench/app/blobs/${layer}`;
  const workloads: [string, () => Promise<number>][] = [
    ["manifest open", () => rate(manifest(open), REQUESTS, {})],
    ["manifest open+header", () => rate(manifest(open), REQUESTS, AUTH)],
    ["manifest anon", () => rate(manifest(locked), REQUESTS, {})],
    ["manifest basic", () => rate(manifest(locked), REQUESTS, AUTH)],
    ["manifest dist", () => rate(manifest(dist), DIST_REQUESTS, AUTH)],
    ["blob open", () => rate(blob(open, layerOpen), BLOBS, {})],
    ["blob anon", () => rate(blob(locked, layerLocked), BLOBS, {})],
    ["blob basic", () => rate(blob(locked, layerLocked), BLOBS, AUTH)],
    ["blob dist", () => rate(blob(dist, layerDist), BLOBS, AUTH)],
  ];
  const results = new Map<string, number[]>(workloads.map(([name]) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? workloads : [...workloads].reverse();
    for (const [name, fn] of order) {
      const r = await fn();
      results.get(name)!.push(r);
      console.log(`round ${round + 1} ${name.padEnd(21)} ${r.toFixed(0)} req/s`);
    }
  }
  const m = (name: string) => median(results.get(name)!);
  const row = (kind: string, unit: (rps: number) => string) =>
    `${kind.padEnd(9)} ${["open", "open+header", "anon", "basic", "dist"].map((w) => (results.has(`${kind} ${w}`) ? unit(m(`${kind} ${w}`)) : "-").padStart(13)).join("")}`;
  console.log(`\nmedians of ${ROUNDS} rounds  ${["berth open", "open+header", "berth anon", "berth Basic", "dist Basic"].map((h) => h.padStart(13)).join("")}`);
  console.log(row("manifest", (r) => `${r.toFixed(0)}/s`));
  console.log(row("blob", (r) => `${r.toFixed(0)} MiB/s`));
  const ratio = (a: string, b: string) => (m(a) / m(b)).toFixed(2);
  console.log(`manifest: Basic/anon ${ratio("manifest basic", "manifest anon")}x (target >= 0.8), anon/open ${ratio("manifest anon", "manifest open")}x, ` +
    `Basic/open+header ${ratio("manifest basic", "manifest open+header")}x (berth's own checking), open+header/open ${ratio("manifest open+header", "manifest open")}x (the header alone), Basic/dist ${ratio("manifest basic", "manifest dist")}x`);
  console.log(`1 MiB pulls: Basic/anon ${ratio("blob basic", "blob anon")}x (target >= 0.9), anon/open ${ratio("blob anon", "blob open")}x, Basic/dist ${ratio("blob basic", "blob dist")}x`);
  console.log(`peak RSS: berth open ${mib(peakRss(open.proc.pid))}, berth with [auth] ${mib(peakRss(locked.proc.pid))} (target <= 96), distribution ${mib(peakRss(dist.proc.pid))}`);
  // The bcrypt bound: one 2^14-round verification takes ~1 s of CPU, and the machine has few cores.
  const t0 = performance.now();
  await fetch(manifest(locked), { headers: { ...SLOW_AUTH, Accept: OCI_MANIFEST } }).then((r) => r.arrayBuffer());
  const oneBcrypt = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  await rate(manifest(locked), SLOW_BURST, SLOW_AUTH);
  const burst = (performance.now() - t1) / 1000;
  const cores = navigator.hardwareConcurrency;
  console.log(`bcrypt on the hot path: the first request of user "slow" (cost 14) took ${oneBcrypt.toFixed(2)} s; ` +
    `${SLOW_BURST} more took ${burst.toFixed(2)} s, room for at most ${Math.floor((burst * cores) / oneBcrypt)} verifications on ${cores} cores`);
  rmSync(work, { recursive: true, force: true });
}

await main();
