/**
 * `berth bench`: a benchmark client for any OCI registry (client/bench.ts), one registry or
 * two side by side (`--compare`), with a table for people and `--json` for scripts. The
 * progress line (operations, bytes, ETA) is drawn on a terminal only.
 */
import { COMMON, connect, parseArgs, type Parsed } from "../client/args";
import { runBench, type BenchOptions, type BenchResult } from "../client/bench";
import { ClientError, EXIT } from "../client/errors";
import { bytes, parseSize, printable, printJson, ProgressBar, table } from "../client/output";

function intOf(a: Parsed, flag: string, fallback: number, min: number, max: number): number {
  const v = a.values.get(flag);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new ClientError(`${flag} "${v}" must be a whole number from ${min} to ${max}`, EXIT.usage);
  return n;
}

/** Reads the workload options; throws usage errors. */
function options(a: Parsed): BenchOptions {
  const workload = a.values.get("--workload") ?? "push";
  if (workload !== "push" && workload !== "pull" && workload !== "mixed") throw new ClientError(`--workload "${workload}" is not push, pull or mixed`, EXIT.usage);
  const sizeText = a.values.get("--size") ?? "1MiB";
  const size = parseSize(sizeText);
  if (size === undefined || size < 1 || size > 64 * 1024 ** 3) throw new ClientError(`--size "${sizeText}" is not a size from 1 B to 64 GiB (e.g. 4KiB, 10MiB)`, EXIT.usage);
  const ratioText = a.values.get("--push-ratio") ?? "0.2";
  const pushRatio = Number(ratioText);
  if (!(pushRatio >= 0 && pushRatio <= 1)) throw new ClientError(`--push-ratio "${ratioText}" must be from 0 to 1`, EXIT.usage);
  const repo = a.values.get("--repo") ?? "berth-bench";
  if (!/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/.test(repo)) throw new ClientError(`--repo "${repo}" is not a repository name`, EXIT.usage);
  const count = intOf(a, "--count", 20, 1, 1_000_000);
  return {
    workload,
    count,
    size,
    concurrency: intOf(a, "--concurrency", 4, 1, 256),
    images: intOf(a, "--images", Math.min(count, 8), 1, 10_000),
    pushRatio,
    repo,
    seed: intOf(a, "--seed", Date.now() % 1_000_000_007, 0, 2 ** 32 - 1),
  };
}

function rowsOf(r: BenchResult): string[][] {
  return r.ops.map((s) => [s.op, String(s.count), String(s.errors), String(s.latencyMs.p50), String(s.latencyMs.p90), String(s.latencyMs.p99), String(s.latencyMs.max), String(s.opsPerSecond), `${bytes(s.bytesPerSecond)}/s`]);
}

const HEAD = ["OP", "OK", "ERRORS", "P50 MS", "P90 MS", "P99 MS", "MAX MS", "OPS/S", "THROUGHPUT"];

/** Side by side: one row per op and figure, the two registries and the ratio B/A. */
function comparison(a: BenchResult, b: BenchResult): string {
  const rows: string[][] = [];
  for (const sa of a.ops) {
    const sb = b.ops.find((x) => x.op === sa.op);
    const figs: [string, number, number | undefined][] = [
      ["p50 ms", sa.latencyMs.p50, sb?.latencyMs.p50],
      ["p90 ms", sa.latencyMs.p90, sb?.latencyMs.p90],
      ["p99 ms", sa.latencyMs.p99, sb?.latencyMs.p99],
      ["max ms", sa.latencyMs.max, sb?.latencyMs.max],
      ["ops/s", sa.opsPerSecond, sb?.opsPerSecond],
      ["MiB/s", Math.round((sa.bytesPerSecond / 1048576) * 100) / 100, sb && Math.round((sb.bytesPerSecond / 1048576) * 100) / 100],
      ["errors", sa.errors, sb?.errors],
    ];
    for (const [name, x, y] of figs) rows.push([sa.op, name, String(x), y === undefined ? "-" : String(y), y !== undefined && x > 0 ? (y / x).toFixed(2) : "-"]);
  }
  return table(["OP", "FIGURE", a.registry, b.registry, "B/A"], rows);
}

/** `berth bench [URL|ALIAS] [--compare URL|ALIAS] …`. */
export async function benchCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, COMMON, { value: ["--compare", "--workload", "--count", "--size", "--concurrency", "--images", "--push-ratio", "--repo", "--seed"] });
  if (a.positional.length > 1) throw new ClientError(`unexpected argument "${a.positional[1]}"`, EXIT.usage);
  if (a.positional.length === 1 && a.values.has("--registry")) throw new ClientError("give the registry once: as an argument or with --registry", EXIT.usage);
  const o = options(a);
  const targets = [connect(a, a.positional[0] ?? a.values.get("--registry")).client];
  const compare = a.values.get("--compare");
  if (compare !== undefined) targets.push(connect(a, compare).client);
  const results: BenchResult[] = [];
  for (const client of targets) {
    const bar = new ProgressBar(`bench ${client.url}`);
    try {
      results.push(await runBench(client, o, (done, moved) => bar.update({ done, total: o.count, bytes: moved, totalBytes: null })));
    } finally {
      bar.finish();
    }
  }
  if (a.flags.has("--json")) printJson({ options: { ...o }, results });
  else {
    console.log(`${o.workload}: ${o.count} images of ${bytes(o.size)}, concurrency ${o.concurrency}${o.workload === "mixed" ? `, ${Math.round(o.pushRatio * 100)}% pushes` : ""}`);
    for (const r of results) console.log(`\n${r.registry} (${r.seconds} s)\n${table(HEAD, rowsOf(r))}${r.errors.length ? `\nfirst errors:\n  ${r.errors.map(printable).join("\n  ")}` : ""}`);
    if (results.length === 2) console.log(`\n${comparison(results[0]!, results[1]!)}`);
  }
  return results.some((r) => r.ops.some((s) => s.errors > 0)) ? EXIT.error : EXIT.ok;
}
