/**
 * What request counting costs on the hottest path: manifest GETs against two daemons, one
 * with [metrics] enabled = true and one with false, in ABBA order, same machine, same run.
 * Prints requests/s of each round and the median ratio (counting on / off).
 *
 *   bun scripts/bench-metrics.ts      (BERTH_REQUESTS=N per round, default 40000; BERTH_ROUNDS=N, default 4)
 */
import { abba, startBenchDaemon } from "./abba-daemons";

const REQUESTS = Number(process.env.BERTH_REQUESTS ?? 40_000);
const ROUNDS = Number(process.env.BERTH_ROUNDS ?? 4);

const on = await startBenchDaemon("[metrics]\nenabled = true\n");
const off = await startBenchDaemon("[metrics]\nenabled = false\n");
try {
  const ratios = await abba(on, off, { label: "metrics", requests: REQUESTS, rounds: ROUNDS });
  console.log(`median ratio (on/off): ${ratios[Math.floor(ratios.length / 2)]!.toFixed(3)}  (1.000 = free; 0.97 = 3% slower)`);
} finally {
  await on.stop();
  await off.stop();
}

// Socketless: the added cost per request of the counting wrapper itself, against the time
// budget of one manifest GET at 25k req/s (40 us).
{
  const { createApp } = await import("../daemon/http/app");
  const { HttpMetrics } = await import("../daemon/metrics/http");
  const res = () => new Response("{}", { headers: { "Content-Length": "2" } });
  const base = { v2: async () => res(), ready: () => true, info: () => ({}) };
  const plain = createApp(base);
  const counted = createApp({ ...base, metrics: { http: new HttpMetrics(), render: async () => "" } });
  const req = new Request("http://127.0.0.1/v2/b/app/manifests/v1");
  const N = 300_000;
  const time = async (h: typeof plain) => {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await h(req);
    return ((performance.now() - t0) * 1000) / N;
  };
  const per: number[] = [];
  for (let i = 0; i < 6; i++) {
    const [a, b] = i % 2 === 0 ? [await time(counted), await time(plain)] : [await time(plain), await time(counted)].reverse();
    per.push(a! - b!);
  }
  per.sort((x, y) => x - y);
  const added = per[3]!;
  console.log(`socketless: counting adds ${added.toFixed(2)} us per request = ${((added / 40) * 100).toFixed(1)}% of a 40 us manifest GET (25k req/s)`);
}
