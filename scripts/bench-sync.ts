/**
 * Sync and scheduler benchmarks, each side by side with its reference in the same run:
 *
 * (a) foreground pull latency (p50/p99 of GETs of a cached 1 MiB blob) while the scheduler
 *     runs a heavy background task — a scheduled sync of a large image from the upstream,
 *     within the IO budget — versus with nothing in the background. Target: p99 within
 *     1.25x of idle.
 * (b) first pull of a 64 MiB image through berth from the upstream (cold cache: each round
 *     uses a fresh berth root) versus straight from the upstream, with time to first byte
 *     of the layer; the same first pull through distribution's own pull-through cache (a
 *     fresh `proxy` registry each round) as the reference; and a warm pull from berth versus
 *     from the upstream. Target: cold pull at most 1.25x the direct one. Each fresh berth
 *     first pulls a small image through (a daemon that has been running, not one whose code
 *     is still cold); distribution gets the same warm-up.
 *
 *     (b) runs on plain loopback, where the "link" to the upstream is a memory copy and the
 *     cost is CPU, and then, when run as root with iproute2, again for each rate in
 *     BENCH_LINKS over a shaped link: the script re-runs itself inside a network namespace
 *     it creates (own loopback, nothing leaves it; removed at the end) where an HTB class
 *     limits what the upstream sends to that rate, as a WAN link would. Clients reach berth
 *     (and the proxy) unshaped, as on a LAN.
 *
 * Usage: bun scripts/bench-sync.ts   (env BENCH_ROUNDS=5, BENCH_MIB=64, BENCH_BG_MIB=192,
 *        BENCH_LINKS="1gbit,100mbit" ("" for none), BENCH_PART="ab")
 * Needs docker-registry and skopeo (scripts/setup --test-peers). Everything runs on
 * 127.0.0.1 with port 0 and temp directories that are removed at the end.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { startDaemon } from "../test/helpers/daemon";
import { Skopeo, makeTemp, runOk, waitFor } from "../test/helpers/clients";
import { type UpstreamRegistry, buildLayout, startUpstream } from "../test/helpers/upstream";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const MIB = Number(process.env.BENCH_MIB ?? 64);
const BG_MIB = Number(process.env.BENCH_BG_MIB ?? 192);
const PART = process.env.BENCH_PART ?? "ab";
const LINKS = (process.env.BENCH_LINKS ?? "1gbit,100mbit").split(",").filter(Boolean);
/** Set when this process is the re-run inside a namespace with a shaped upstream link. */
const INNER_LINK = process.env.BENCH_INNER_LINK;
const ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;
const f = (n: number) => n.toFixed(1).padStart(8);

/** Pulls repo:tag (manifest, then every blob in full, largest first); returns total ms and ms to the first byte of the largest blob. */
async function pull(base: string, repo: string, tag: string): Promise<{ ms: number; ttfb: number }> {
  const t0 = performance.now();
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { headers: { Accept: ACCEPT } });
  if (res.status !== 200) throw new Error(`GET manifest ${repo}:${tag} from ${base}: ${res.status} ${await res.text()}`);
  const m = (await res.json()) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
  let ttfb = 0;
  const blobs = [m.config, ...m.layers].sort((a, b) => b.size - a.size);
  for (const [i, b] of blobs.entries()) {
    const res = await fetch(`${base}/v2/${repo}/blobs/${b.digest}`);
    if (res.status !== 200) throw new Error(`GET ${b.digest}: ${res.status}`);
    let got = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (got === 0 && i === 0) ttfb = performance.now() - t0;
      got += chunk.byteLength;
    }
    if (got !== b.size) throw new Error(`GET ${b.digest}: ${got} of ${b.size} bytes`);
  }
  return { ms: performance.now() - t0, ttfb };
}

/** Limits what the upstream on `port` sends to `rate` (tc syntax), inside this namespace. */
async function shapeUpstream(port: number, rate: string): Promise<void> {
  await runOk(["tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "99"]);
  await runOk(["tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", rate, "ceil", rate, "burst", "256k", "cburst", "256k"]);
  await runOk(["tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "u32", "match", "ip", "sport", String(port), "0xffff", "flowid", "1:10"]);
}

/** (b): cold and warm pulls of bench/img, through berth, through a distribution proxy and direct. */
async function coldAndWarm(upstream: UpstreamRegistry, link: string): Promise<void> {
  const direct: number[] = [], directTtfb: number[] = [], cold: number[] = [], coldTtfb: number[] = [];
  const proxy: number[] = [], proxyTtfb: number[] = [], warm: number[] = [], directWarm: number[] = [];
  await pull(upstream.url, "bench/img", "v1"); // page cache warm for every side
  for (let r = 0; r < ROUNDS; r++) {
    await using berth = await startDaemon({ extra: `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\nrepos = ["bench/*"]\n` });
    await using reference = await startUpstream({ proxy: upstream.url });
    for (const base of [berth.url, reference.url]) await pull(base, "bench/small", "v1");
    const sides = ["direct", "berth", "proxy"];
    for (let i = 0; i < r % sides.length; i++) sides.push(sides.shift()!); // rotate who goes first
    for (const side of sides) {
      if (side === "direct") {
        const d = await pull(upstream.url, "bench/img", "v1");
        direct.push(d.ms);
        directTtfb.push(d.ttfb);
      } else if (side === "berth") {
        const c = await pull(berth.url, "bench/img", "v1");
        cold.push(c.ms);
        coldTtfb.push(c.ttfb);
        await waitFor("the image to be stored", async () => ((await (await fetch(`${berth.url}/api/v1/sync`)).json()) as { fetches: unknown[] }).fetches.length === 0, 120_000);
      } else {
        const p = await pull(reference.url, "bench/img", "v1");
        proxy.push(p.ms);
        proxyTtfb.push(p.ttfb);
      }
    }
    warm.push((await pull(berth.url, "bench/img", "v1")).ms);
    directWarm.push((await pull(upstream.url, "bench/img", "v1")).ms);
  }
  const ratio = (xs: number[]) => `${f(median(xs) / median(direct))}x`;
  console.log(`\n(b) ${MIB} MiB image, upstream link: ${link}; ${ROUNDS} rounds, medians    total ms  first byte ms  vs direct`);
  console.log(`    straight from the upstream                        ${f(median(direct))} ${f(median(directTtfb))}`);
  console.log(`    first pull through berth                          ${f(median(cold))} ${f(median(coldTtfb))}  ${ratio(cold)}  (target <= 1.25x)`);
  console.log(`    first pull through distribution's proxy           ${f(median(proxy))} ${f(median(proxyTtfb))}  ${ratio(proxy)}`);
  console.log(`    warm pull from berth vs from the upstream         ${f(median(warm))} ${f(median(directWarm))}  ${f(median(warm) / median(directWarm))}x`);
}

/** Re-runs (b) inside a fresh network namespace for each shaped link rate. */
async function shapedLinks(): Promise<void> {
  if (process.getuid?.() !== 0 || !Bun.which("ip") || !Bun.which("tc")) {
    console.log(`\n(b) on shaped links skipped: needs root and iproute2 (ip, tc)`);
    return;
  }
  for (const link of LINKS) {
    const ns = `berth-bench-${process.pid}`;
    await runOk(["ip", "netns", "add", ns]);
    try {
      await runOk(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
      const child = Bun.spawn(["ip", "netns", "exec", ns, process.execPath, import.meta.path], {
        env: { ...process.env, BENCH_INNER_LINK: link, BENCH_PART: "b", BENCH_LINKS: "" },
        stdio: ["ignore", "inherit", "inherit"],
      });
      if ((await child.exited) !== 0) throw new Error(`the run over a ${link} link failed`);
    } finally {
      await runOk(["ip", "netns", "del", ns]);
    }
  }
}

async function main() {
  const work = makeTemp("berth-bench-sync-");
  const skopeo = new Skopeo();
  await using upstream = await startUpstream();
  try {
    buildLayout(join(work, "img"), "v1", ["linux/amd64"], [MIB << 20]);
    await skopeo.ok(["copy", "--dest-tls-verify=false", `oci:${join(work, "img")}:v1`, `docker://${upstream.host}/bench/img:v1`], { timeoutMs: 300_000 });

    // ---- (b) cold and warm pulls -------------------------------------------------
    if (PART.includes("b")) {
      if (INNER_LINK) await shapeUpstream(upstream.port, INNER_LINK);
      buildLayout(join(work, "small"), "v1", ["linux/amd64"], [1 << 20]);
      await skopeo.ok(["copy", "--dest-tls-verify=false", `oci:${join(work, "small")}:v1`, `docker://${upstream.host}/bench/small:v1`], { timeoutMs: 300_000 });
      await coldAndWarm(upstream, INNER_LINK ?? "loopback, unshaped");
    }
    if (INNER_LINK) return;
    if (PART.includes("b")) await shapedLinks();

    // ---- (a) foreground p99 with a heavy background sync -----------------------
    if (!PART.includes("a")) return;
    buildLayout(join(work, "bg"), "v1", ["linux/amd64"], [BG_MIB << 20]);
    buildLayout(join(work, "local"), "v1", ["linux/amd64"], [1 << 20]);
    await skopeo.ok(["copy", "--dest-tls-verify=false", `oci:${join(work, "bg")}:v1`, `docker://${upstream.host}/bench/bg:v1`], { timeoutMs: 300_000 });
    const idleAll: number[] = [], busyAll: number[] = [], controlAll: number[] = [];
    const curl = Bun.which("curl");
    const bgManifest = (await (await fetch(`${upstream.url}/v2/bench/bg/manifests/v1`, { headers: { Accept: ACCEPT } })).json()) as { layers: { digest: string }[] };
    const bgBlob = `${upstream.url}/v2/bench/bg/blobs/${bgManifest.layers[0]!.digest}`;
    for (let r = 0; r < Math.max(2, Math.ceil(ROUNDS / 2)); r++) {
      await using berth = await startDaemon({
        extra: `[scheduler]\njitter_ms = 0\nwrite_bytes_per_second = "48 MiB"\nwrite_ops_per_second = 2000\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\nrepos = ["bench/bg"]\non_demand = false\n`,
      });
      await skopeo.ok(["copy", "--dest-tls-verify=false", `oci:${join(work, "local")}:v1`, `docker://${berth.host}/local/small:v1`]);
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
        await sample(2000, idle);
        const b = await busy();
        idleAll.push(...idle);
        busyAll.push(...b);
      } else {
        const b = await busy();
        const idle: number[] = [];
        await sample(2000, idle);
        idleAll.push(...idle);
        busyAll.push(...b);
      }
      // control: the same bytes at the same rate from the upstream to curl, berth doing
      // nothing but serve the samples: what the machine itself adds to the tail
      if (curl) {
        const child = Bun.spawn([curl, "-s", "-o", "/dev/null", "--limit-rate", "48M", bgBlob], { stdio: ["ignore", "ignore", "ignore"] });
        for (let i = 0; i < 100_000 && child.exitCode === null; i++) await sample(10, controlAll);
        await child.exited;
      }
    }
    console.log(`\n(a) GET of a cached 1 MiB blob, ms (idle n=${idleAll.length}, with a ${BG_MIB} MiB background sync n=${busyAll.length})`);
    console.log(`                     p50      p99`);
    console.log(`    idle        ${f(pct(idleAll, 50))} ${f(pct(idleAll, 99))}`);
    console.log(`    background  ${f(pct(busyAll, 50))} ${f(pct(busyAll, 99))}`);
    console.log(`    ratio       ${f(pct(busyAll, 50) / pct(idleAll, 50))}x ${f(pct(busyAll, 99) / pct(idleAll, 99))}x  (target p99 <= 1.25x)`);
    if (controlAll.length > 0) {
      console.log(`    control     ${f(pct(controlAll, 50))} ${f(pct(controlAll, 99))}   the same transfer to curl, not through berth (n=${controlAll.length})`);
      console.log(`    ratio       ${f(pct(controlAll, 50) / pct(idleAll, 50))}x ${f(pct(controlAll, 99) / pct(idleAll, 99))}x  (what this machine adds with no berth work)`);
    }
  } finally {
    skopeo[Symbol.dispose]();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
