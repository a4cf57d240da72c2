/**
 * Sync and scheduler benchmarks, each side by side with its reference in the same run:
 *
 * (a) foreground pull latency (p50/p99 of GETs of a cached 1 MiB blob) while the scheduler
 *     runs a heavy background task — a scheduled sync of a large image from the upstream,
 *     within the IO budget — versus with nothing in the background. Target: p99 within
 *     1.25x of idle.
 * (b) first pull of a 64 MiB image through berth from the upstream (cold cache: each round
 *     uses a fresh berth root) versus straight from the upstream, with time to first byte
 *     of the layer; and a warm pull from berth versus from the upstream. Target: cold
 *     pull at most 1.25x the direct one.
 *
 * Usage: bun scripts/bench-sync.ts   (env BENCH_ROUNDS=5, BENCH_MIB=64, BENCH_BG_MIB=192)
 * Needs docker-registry and skopeo (scripts/setup --test-peers). Everything runs on
 * 127.0.0.1 with port 0 and temp directories that are removed at the end.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { startDaemon } from "../test/helpers/daemon";
import { Skopeo, makeTemp, waitFor } from "../test/helpers/clients";
import { buildLayout, startUpstream } from "../test/helpers/upstream";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const MIB = Number(process.env.BENCH_MIB ?? 64);
const BG_MIB = Number(process.env.BENCH_BG_MIB ?? 192);
const ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;
const f = (n: number) => n.toFixed(1).padStart(8);

/** Pulls repo:tag (manifest, then every blob in full); returns total ms and ms to the first byte of the largest blob. */
async function pull(base: string, repo: string, tag: string): Promise<{ ms: number; ttfb: number }> {
  const t0 = performance.now();
  const m = (await (await fetch(`${base}/v2/${repo}/manifests/${tag}`, { headers: { Accept: ACCEPT } })).json()) as { config: { digest: string }; layers: { digest: string; size: number }[] };
  let ttfb = 0;
  const blobs = [m.config, ...m.layers].sort((a, b) => ((b as { size?: number }).size ?? 0) - ((a as { size?: number }).size ?? 0));
  for (const [i, b] of blobs.entries()) {
    const t = performance.now();
    const res = await fetch(`${base}/v2/${repo}/blobs/${b.digest}`);
    if (res.status !== 200) throw new Error(`GET ${b.digest}: ${res.status}`);
    const reader = res.body!.getReader();
    let first = true;
    for (;;) {
      const { done } = await reader.read();
      if (first && i === 0) ttfb = performance.now() - t0;
      first = false;
      if (done) break;
    }
    void t;
  }
  return { ms: performance.now() - t0, ttfb };
}

async function main() {
  const work = makeTemp("berth-bench-sync-");
  const skopeo = new Skopeo();
  await using upstream = await startUpstream();
  try {
    buildLayout(join(work, "img"), "v1", ["linux/amd64"], [MIB << 20]);
    buildLayout(join(work, "bg"), "v1", ["linux/amd64"], [BG_MIB << 20]);
    buildLayout(join(work, "small"), "v1", ["linux/amd64"], [1 << 20]);
    await skopeo.ok(["copy", "--dest-tls-verify=false", `oci:${join(work, "img")}:v1`, `docker://${upstream.host}/bench/img:v1`], { timeoutMs: 300_000 });
    await skopeo.ok(["copy", "--dest-tls-verify=false", `oci:${join(work, "bg")}:v1`, `docker://${upstream.host}/bench/bg:v1`], { timeoutMs: 300_000 });

    // ---- (b) cold and warm pulls -------------------------------------------------
    const direct: number[] = [], directTtfb: number[] = [], cold: number[] = [], coldTtfb: number[] = [], warm: number[] = [], directWarm: number[] = [];
    await pull(upstream.url, "bench/img", "v1"); // page cache warm for both sides
    for (let r = 0; r < ROUNDS; r++) {
      await using berth = await startDaemon({ extra: `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\nrepos = ["bench/img"]\n` });
      const order = r % 2 === 0 ? ["direct", "berth"] : ["berth", "direct"];
      for (const side of order) {
        if (side === "direct") {
          const d = await pull(upstream.url, "bench/img", "v1");
          direct.push(d.ms);
          directTtfb.push(d.ttfb);
        } else {
          const c = await pull(berth.url, "bench/img", "v1");
          cold.push(c.ms);
          coldTtfb.push(c.ttfb);
        }
      }
      await waitFor("the image to be stored", async () => ((await (await fetch(`${berth.url}/api/v1/sync`)).json()) as { fetches: unknown[] }).fetches.length === 0, 60_000);
      const w = await pull(berth.url, "bench/img", "v1");
      warm.push(w.ms);
      directWarm.push((await pull(upstream.url, "bench/img", "v1")).ms);
    }
    console.log(`\n(b) ${MIB} MiB image, ${ROUNDS} rounds, medians in ms       berth   upstream    ratio`);
    console.log(`    first pull through berth vs direct     ${f(median(cold))} ${f(median(direct))} ${f(median(cold) / median(direct))}x  (target <= 1.25x)`);
    console.log(`    time to first layer byte               ${f(median(coldTtfb))} ${f(median(directTtfb))}`);
    console.log(`    warm pull from berth vs upstream       ${f(median(warm))} ${f(median(directWarm))} ${f(median(warm) / median(directWarm))}x`);

    // ---- (a) foreground p99 with a heavy background sync -----------------------
    const idleAll: number[] = [], busyAll: number[] = [];
    for (let r = 0; r < Math.max(2, Math.ceil(ROUNDS / 2)); r++) {
      await using berth = await startDaemon({
        extra: `[scheduler]\njitter_ms = 0\nwrite_bytes_per_second = "48 MiB"\nwrite_ops_per_second = 2000\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\nrepos = ["bench/bg"]\non_demand = false\n`,
      });
      await skopeo.ok(["copy", "--dest-tls-verify=false", `oci:${join(work, "small")}:v1`, `docker://${berth.host}/local/small:v1`]);
      const m = (await (await fetch(`${berth.url}/v2/local/small/manifests/v1`, { headers: { Accept: ACCEPT } })).json()) as { layers: { digest: string }[] };
      const blobUrl = `${berth.url}/v2/local/small/blobs/${m.layers[0]!.digest}`;
      const sample = async (n: number, out: number[]) => {
        for (let i = 0; i < n; i++) {
          const t = performance.now();
          await (await fetch(blobUrl)).arrayBuffer();
          out.push(performance.now() - t);
        }
      };
      await sample(50, []); // warm-up
      const busy = async () => {
        await fetch(`${berth.url}/api/v1/sync/up/run`, { method: "POST" });
        await waitFor("the background fetch to start", async () => ((await (await fetch(`${berth.url}/api/v1/sync`)).json()) as { fetches: unknown[] }).fetches.length > 0, 30_000, 5);
        const got: number[] = [];
        for (let i = 0; i < 100_000; i++) {
          await sample(10, got);
          if (((await (await fetch(`${berth.url}/api/v1/sync`)).json()) as { fetches: unknown[] }).fetches.length === 0) break;
        }
        return got;
      };
      if (r % 2 === 0) {
        const idle: number[] = [];
        await sample(400, idle);
        const b = await busy();
        idleAll.push(...idle);
        busyAll.push(...b);
      } else {
        const b = await busy();
        const idle: number[] = [];
        await sample(400, idle);
        idleAll.push(...idle);
        busyAll.push(...b);
      }
    }
    console.log(`\n(a) GET of a cached 1 MiB blob, ms (idle n=${idleAll.length}, with a ${BG_MIB} MiB background sync n=${busyAll.length})`);
    console.log(`                     p50      p99`);
    console.log(`    idle        ${f(pct(idleAll, 50))} ${f(pct(idleAll, 99))}`);
    console.log(`    background  ${f(pct(busyAll, 50))} ${f(pct(busyAll, 99))}`);
    console.log(`    ratio       ${f(pct(busyAll, 50) / pct(idleAll, 50))}x ${f(pct(busyAll, 99) / pct(idleAll, 99))}x  (target p99 <= 1.25x)`);
  } finally {
    skopeo[Symbol.dispose]();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
