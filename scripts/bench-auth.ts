/**
 * What authentication costs on the hot path (issue 10): manifest GETs and 1 MiB blob pulls
 * against two daemons in the same run, one without [auth] and one with htpasswd and a
 * policy that lets anonymous callers pull, alternating round by round (ABAB). Measured:
 *   open        berth without [auth], anonymous
 *   anon        berth with [auth], anonymous (the policy's cached per-repository answer)
 *   basic       berth with [auth], Basic credentials on every request (bcrypt once, then the cache)
 *   open+header berth without [auth], the same Basic header sent (ignored): what the header
 *               itself costs the client and the HTTP parser, to tell it from berth's checking
 * Prints requests/s per round, the median ratios against `open`, and each daemon's peak RSS.
 *
 *   bun scripts/bench-auth.ts     (BERTH_REQUESTS=N manifest GETs per round, default 20000;
 *                                  BERTH_BLOBS=N blob GETs per round, default 400; BERTH_ROUNDS, default 4)
 */
import { chmodSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startDaemon, type Daemon } from "../test/helpers/daemon";
import { makeTemp, runOk } from "../test/helpers/clients";

const REQUESTS = Number(process.env.BERTH_REQUESTS ?? 20_000);
const BLOBS = Number(process.env.BERTH_BLOBS ?? 400);
const ROUNDS = Number(process.env.BERTH_ROUNDS ?? 4);
const CONCURRENCY = 32;
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const AUTH = { Authorization: `Basic ${Buffer.from("ci:ci-password").toString("base64")}` };

function sha256(data: Uint8Array | string): string {
  return `sha256:${new Bun.CryptoHasher("sha256").update(data).digest("hex")}`;
}

/** Pushes a 1 MiB layer, a config and a manifest; returns the layer digest. */
async function seed(d: Daemon, headers: Record<string, string>): Promise<string> {
  const layer = new Uint8Array(1024 * 1024).map((_, i) => (i * 7) & 255);
  const config = JSON.stringify({ architecture: "amd64", os: "linux" });
  for (const blob of [layer, config]) {
    const res = await fetch(`${d.url}/v2/bench/app/blobs/uploads/?digest=${sha256(blob)}`, { method: "POST", headers, body: blob });
    if (res.status !== 201) throw new Error(`seed blob: ${res.status}`);
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(layer), size: layer.length }],
  });
  const res = await fetch(`${d.url}/v2/bench/app/manifests/v1`, { method: "PUT", headers: { ...headers, "Content-Type": OCI_MANIFEST }, body: manifest });
  if (res.status !== 201) throw new Error(`seed manifest: ${res.status}`);
  return sha256(layer);
}

/** Requests per second of `total` GETs of `url` at {@link CONCURRENCY}. */
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const work = makeTemp("berth-bench-auth-");
  const htpasswd = join(work, "htpasswd");
  await runOk(["htpasswd", "-B", "-b", "-c", htpasswd, "ci", "ci-password"]);
  chmodSync(htpasswd, 0o600);
  await using open = await startDaemon();
  await using locked = await startDaemon({
    extra: `[auth]\nhtpasswd = "${htpasswd}"\n[[access]]\nrepos = ["**"]\nanonymous = ["pull"]\nusers = { ci = ["pull", "push"] }\n`,
  });
  const layerOpen = await seed(open, {});
  const layerLocked = await seed(locked, AUTH);
  const results: Record<string, number[]> = { "manifest open": [], "manifest anon": [], "manifest basic": [], "manifest open+header": [], "blob open": [], "blob basic": [] };
  for (let round = 0; round < ROUNDS; round++) {
    const runs: [string, () => Promise<number>][] = [
      ["manifest open", () => rate(`${open.url}/v2/bench/app/manifests/v1`, REQUESTS, {})],
      ["manifest anon", () => rate(`${locked.url}/v2/bench/app/manifests/v1`, REQUESTS, {})],
      ["manifest basic", () => rate(`${locked.url}/v2/bench/app/manifests/v1`, REQUESTS, AUTH)],
      ["manifest open+header", () => rate(`${open.url}/v2/bench/app/manifests/v1`, REQUESTS, AUTH)],
      ["blob open", () => rate(`${open.url}/v2/bench/app/blobs/${layerOpen}`, BLOBS, {})],
      ["blob basic", () => rate(`${locked.url}/v2/bench/app/blobs/${layerLocked}`, BLOBS, AUTH)],
    ];
    if (round % 2 === 1) runs.reverse();
    for (const [name, fn] of runs) {
      const r = await fn();
      results[name]!.push(r);
      console.log(`round ${round + 1} ${name.padEnd(21)} ${r.toFixed(0)} req/s`);
    }
  }
  const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]));
  console.log(`\nmedians: ${Object.entries(m).map(([k, v]) => `${k} ${v!.toFixed(0)}`).join(", ")}`);
  console.log(`manifest anon/open  ${(m["manifest anon"]! / m["manifest open"]!).toFixed(2)}x`);
  console.log(`manifest basic/open ${(m["manifest basic"]! / m["manifest open"]!).toFixed(2)}x (target >= 0.8)`);
  console.log(`manifest basic/open+header ${(m["manifest basic"]! / m["manifest open+header"]!).toFixed(2)}x (berth's own cost of checking)`);
  console.log(`blob basic/open     ${(m["blob basic"]! / m["blob open"]!).toFixed(2)}x (target >= 0.9)`);
  console.log(`peak RSS: open ${(peakRss(open.proc.pid) / 2 ** 20).toFixed(1)} MiB, with [auth] ${(peakRss(locked.proc.pid) / 2 ** 20).toFixed(1)} MiB (target <= 96)`);
  rmSync(work, { recursive: true, force: true });
}

await main();
