/**
 * Power cuts at scale: runs the power-cut harness (test/helpers/powercut.ts) over every
 * workload (push, delete, GC, retention, sync fetches, layout adoption) for `--cuts N` cases
 * in all, spread evenly over the workloads, each case seeded from `--seed S` (case i of a
 * workload gets seed S + i; the seed also picks the durability reading, links or copies, and
 * random latency). Prints per workload the cuts, invariant checks and failures,
 * and for every failure its seed and how to replay it; exits 1 on any failure.
 *
 *   bun scripts/powercut.ts --cuts 2000 --seed 1
 *   bun scripts/powercut.ts --workload sync --replay 1234 --trace    # one case, with its trace
 */
import { measure, runCase } from "../test/helpers/powercut";
import { WORKLOADS } from "../test/helpers/powercut-workloads";

function arg(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at < 0 ? undefined : process.argv[at + 1];
}

function int(name: string, fallback: number): number {
  const text = arg(name);
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) {
    console.error(`--${name} must be a whole number, not "${text}"`);
    process.exit(2);
  }
  return Number(text);
}

const cuts = int("cuts", 1000);
const seed = int("seed", 1);
const only = arg("workload");
const replay = arg("replay") === undefined ? undefined : int("replay", 0);
const trace = process.argv.includes("--trace");
const workloads = WORKLOADS.filter((w) => only === undefined || w.name === only);
if (workloads.length === 0) {
  console.error(`no workload "${only}"; there are ${WORKLOADS.map((w) => w.name).join(", ")}`);
  process.exit(2);
}

const started = performance.now();
let failed = 0;
let total = { cuts: 0, checks: 0, strict: 0, adversarial: 0, copies: 0, jitter: 0 };
console.log("workload      ops  cuts  strict  advers.  no-links  jitter  checks  failures");
for (const [n, workload] of workloads.entries()) {
  const row = { cuts: 0, checks: 0, strict: 0, adversarial: 0, copies: 0, jitter: 0, failures: [] as string[] };
  let ops = 0;
  for (const links of [true, false]) {
    const m = await measure(workload, links);
    ops = Math.max(ops, m.ops);
    if (m.failure) row.failures.push(`  ${workload.name} with no cut (power lost after the end, ${links ? "links" : "no links"}): ${m.failure}`);
  }
  const count = replay !== undefined ? 1 : Math.floor(cuts / workloads.length) + (n < cuts % workloads.length ? 1 : 0);
  for (let i = 0; i < count; i++) {
    const caseSeed = replay ?? seed + i;
    const r = await runCase(workload, ops, caseSeed, trace);
    row.cuts++;
    row.checks += r.checks;
    if (r.adversarial) row.adversarial++;
    else row.strict++;
    if (!r.links) row.copies++;
    if (r.jitter) row.jitter++;
    if (r.failure) {
      row.failures.push(`  ${workload.name} seed ${caseSeed} (cut at op ${r.cutAt}/${ops}, ${r.adversarial ? "adversarial" : "strict"}, ${r.links ? "links" : "no links"}${r.jitter ? ", jitter" : ""}): ${r.failure}\n    replay: bun scripts/powercut.ts --workload ${workload.name} --replay ${caseSeed} --trace`);
      if (trace) console.log(r.trace?.slice(-80).join("\n"));
    }
  }
  console.log(`${workload.name.padEnd(12)} ${String(ops).padStart(4)} ${String(row.cuts).padStart(5)} ${String(row.strict).padStart(7)} ${String(row.adversarial).padStart(8)} ${String(row.copies).padStart(9)} ${String(row.jitter).padStart(7)} ${String(row.checks).padStart(7)} ${String(row.failures.length).padStart(9)}`);
  for (const f of row.failures) console.log(f);
  failed += row.failures.length;
  total = { cuts: total.cuts + row.cuts, checks: total.checks + row.checks, strict: total.strict + row.strict, adversarial: total.adversarial + row.adversarial, copies: total.copies + row.copies, jitter: total.jitter + row.jitter };
}
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`${"total".padEnd(12)}      ${String(total.cuts).padStart(5)} ${String(total.strict).padStart(7)} ${String(total.adversarial).padStart(8)} ${String(total.copies).padStart(9)} ${String(total.jitter).padStart(7)} ${String(total.checks).padStart(7)} ${String(failed).padStart(9)}`);
console.log(`${replay !== undefined ? `replayed seed ${replay}` : `seeds ${seed} to ${seed + Math.ceil(cuts / workloads.length) - 1} per workload`}, ${seconds} s`);
process.exit(failed > 0 ? 1 : 0);
