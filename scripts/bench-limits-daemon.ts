/**
 * What the rate limiter costs a real daemon: manifest GETs against two daemons, one with
 * [limits] rates set so high nothing is refused (every request still takes a token) and one
 * without limits, in ABBA order, same machine, same run. Prints requests/s of each round and
 * the median ratio (limits on / off). scripts/bench-ratelimit.ts measures the same in process.
 *
 *   bun scripts/bench-limits-daemon.ts   (BERTH_REQUESTS=N per round, default 20000; BERTH_ROUNDS=N, default 4)
 */
import { abba, startBenchDaemon } from "./abba-daemons";

const REQUESTS = Number(process.env.BERTH_REQUESTS ?? 20_000);
const ROUNDS = Number(process.env.BERTH_ROUNDS ?? 4);

const on = await startBenchDaemon("[limits]\nreads_per_second = 1000000\nread_burst = 10000000\nwrites_per_second = 1000000\nwrite_burst = 10000000\n");
const off = await startBenchDaemon("");
try {
  const ratios = await abba(on, off, { label: "limits", requests: REQUESTS, rounds: ROUNDS });
  console.log(`median ratio (on/off): ${((ratios[Math.floor((ratios.length - 1) / 2)]! + ratios[Math.floor(ratios.length / 2)]!) / 2).toFixed(3)}  (1.000 = free)`);
} finally {
  await on.stop();
  await off.stop();
}
