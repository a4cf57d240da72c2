/**
 * Mutation score of the critical modules (issue 15): copies the tracked files of the
 * working tree to a scratch directory (node_modules linked, the working tree itself never
 * written), draws a seeded sample of single-line mutants per module (operators in
 * scripts/mutate/operators.ts), and for each mutant runs the test files that cover the
 * module with `bun test --bail` under a per-mutant timeout. A mutant is killed when a test
 * fails or the run times out, survived when every test passes; a mutant that no longer
 * parses is dropped before any test runs. Each module's tests are first run unmutated and
 * must pass. Prints killed/survived per module and each survivor (file:line, the change).
 *
 *   bun scripts/mutate.ts [--per-module 25] [--seed 15] [--timeout 60] [--module registry]
 *                         [--json out.json] [--list] [--at daemon/storage/blobs.ts:134]
 *
 * `--at file:line` (repeatable) runs every mutant of those lines instead of a sample (to
 * check that a new test kills a survivor). `--rerun previous.json` (a `--json` output) runs
 * the sample of that run again, re-testing only its survivors and keeping its kills: the
 * score of the same sample after new tests.
 *
 * A small harness of our own rather than StrykerJS: Stryker's TypeScript instrumenter and
 * its runners pull in ~100 MB of packages and Babel, and its command runner gives no
 * per-module test map (every mutant would run the whole suite: ~95 s each); here a mutant
 * costs the few seconds of the tests that cover its module, the sample is reproducible
 * from the seed, and the operators are the slips issue 15 asked about.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type Mutant, applyMutant, mutantsOf, sample, seeded } from "./mutate/operators";

/** Module -> the source files mutated and the test files that cover them. */
export const MODULES: Record<string, { files: string[]; tests: string[] }> = {
  storage: {
    files: ["daemon/storage/blobs.ts", "daemon/storage/layouts.ts", "daemon/storage/ingest.ts", "daemon/storage/walk.ts", "daemon/storage/maintenance.ts"],
    tests: ["test/storage/contract-local.test.ts", "test/storage/store.test.ts", "test/lifecycle/scrub.test.ts", "test/lifecycle/gc-pass.test.ts", "test/sync/quota-fetch.test.ts", "test/storage/upload-races.test.ts", "test/storage/powercut.test.ts", "test/lifecycle/gc-race.test.ts", "test/lifecycle/delete-race.test.ts", "test/http/v2-write.test.ts", "test/http/v2-read.test.ts", "test/storage/reconcile-edges.test.ts", "test/storage/reserve-writes.test.ts"],
  },
  registry: {
    files: ["daemon/registry/registry.ts"],
    tests: ["test/http/v2-write.test.ts", "test/http/v2-read.test.ts", "test/lifecycle/delete-race.test.ts", "test/lifecycle/gc-race.test.ts", "test/lifecycle/prune-race.test.ts", "test/lifecycle/retention.test.ts", "test/storage/store.test.ts", "test/storage/reconcile-edges.test.ts"],
  },
  gc: {
    files: ["daemon/lifecycle/gc.ts"],
    tests: ["test/lifecycle/gc.test.ts", "test/lifecycle/gc-pass.test.ts", "test/lifecycle/gc-race.test.ts", "test/lifecycle/delete-race.test.ts", "test/lifecycle/prune-race.test.ts", "test/lifecycle/quota.test.ts", "test/lifecycle/retention.test.ts", "test/lifecycle/gc-grace.test.ts", "test/lifecycle/sha512.test.ts", "test/storage/powercut.test.ts"],
  },
  "sync upstream": {
    files: ["daemon/sync/upstream.ts"],
    tests: ["test/sync/hostile.test.ts", "test/sync/negative.test.ts", "test/sync/pullthrough.test.ts", "test/sync/referrers.test.ts", "test/sync/pulls-bound.test.ts", "test/sync/upstream-referrers.test.ts", "test/sync/upstream-retry.test.ts", "test/sync/sha512-sync.test.ts"],
  },
  "sync blobfetch": {
    files: ["daemon/sync/blobfetch.ts"],
    tests: ["test/sync/blobfetch.test.ts", "test/sync/hostile.test.ts", "test/sync/pulls-bound.test.ts", "test/sync/pullthrough.test.ts", "test/sync/quota-fetch.test.ts", "test/sync/range-inflight.test.ts", "test/storage/powercut.test.ts"],
  },
  "/v2 handler": {
    files: ["daemon/http/v2.ts"],
    tests: ["test/http/v2-read.test.ts", "test/http/v2-write.test.ts", "test/http/v2-limits.test.ts", "test/http/v2-auth.test.ts", "test/http/target.test.ts", "test/http/v2-faultlog.test.ts", "test/http/v2-edges.test.ts", "test/sync/range-inflight.test.ts", "test/audit/audit.test.ts", "test/auth/plugins.test.ts"],
  },
};

const { values } = parseArgs({
  options: {
    "per-module": { type: "string", default: "25" },
    seed: { type: "string", default: "15" },
    timeout: { type: "string", default: "60" },
    module: { type: "string", multiple: true },
    json: { type: "string" },
    list: { type: "boolean", default: false },
    at: { type: "string", multiple: true },
    rerun: { type: "string" },
  },
});
const perModule = Number(values["per-module"]);
const timeoutMs = Number(values.timeout) * 1000;
const repo = resolve(import.meta.dir, "..");
const transpiler = new Bun.Transpiler({ loader: "ts" });

/** True when `code` still parses (a mutant that does not is no test's business). */
function parses(code: string): boolean {
  try {
    transpiler.transformSync(code);
    return true;
  } catch {
    return false;
  }
}

/** A scratch copy of the tracked files (and untracked new ones), node_modules linked. */
function scratchCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), "berth-mutate-"));
  const listed = Bun.spawnSync(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: repo }).stdout.toString().split("\0").filter(Boolean);
  // node_modules is linked below (a symlinked node_modules is not matched by "node_modules/" in .gitignore)
  for (const f of listed.filter((f) => f !== "node_modules")) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    try {
      cpSync(join(repo, f), join(dir, f));
    } catch {
      // deleted in the working tree but still in the index
    }
  }
  try {
    symlinkSync(join(repo, "node_modules"), join(dir, "node_modules"));
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return dir;
}

/**
 * Runs `tests` in `dir`: "pass", "fail" (with the first failing test's name) or "timeout".
 * The run is its own process group, killed whole on timeout.
 */
async function runTests(dir: string, tests: string[]): Promise<{ outcome: "pass" | "fail" | "timeout"; by?: string }> {
  const proc = Bun.spawn(["setsid", "bun", "test", "--bail", ...tests], { cwd: dir, stdout: "pipe", stderr: "pipe", env: { ...process.env, BERTH_MUTANT: "1" } });
  const output = Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]).then((t) => t.join("\n"));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-proc.pid, "SIGKILL");
    } catch {
      proc.kill("SIGKILL");
    }
  }, timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  const text = await output;
  const by = /^\(fail\) (.*?)(?: \[[\d.]+m?s\])?$/m.exec(text)?.[1];
  return { outcome: timedOut ? "timeout" : code === 0 ? "pass" : "fail", by };
}

interface Outcome extends Mutant {
  file: string;
  result: "killed" | "survived" | "timeout";
  /** The first test that failed (killed mutants). */
  by?: string;
}

const chosen = values.module ?? Object.keys(MODULES);
const dir = scratchCopy();
const results: Record<string, Outcome[]> = {};
const started = performance.now();
try {
  for (const name of chosen) {
    const mod = MODULES[name];
    if (!mod) throw new Error(`unknown module "${name}" (known: ${Object.keys(MODULES).join(", ")})`);
    const tests = mod.tests.filter((t) => Bun.file(join(dir, t)).size > 0);
    const pool = mod.files.flatMap((file) => {
      const source = readFileSync(join(dir, file), "utf8");
      return mutantsOf(source).filter((m) => parses(applyMutant(source, m))).map((m) => ({ ...m, file, source }));
    });
    const random = seeded(Number(values.seed) + [...name].reduce((a, c) => a + c.charCodeAt(0), 0));
    const at = values.at;
    const previous = values.rerun ? (JSON.parse(readFileSync(values.rerun, "utf8")) as Record<string, Outcome[]>)[name] : undefined;
    const same = (o: Outcome, m: Mutant & { file: string }) => o.file === m.file && o.line === m.line && o.operator === m.operator && o.after === m.after;
    let picked = at ? pool.filter((m) => at.includes(`${m.file}:${m.line}`)) : sample(pool, perModule, random);
    if (previous) {
      results[name] = previous.filter((o) => o.result !== "survived");
      picked = pool.filter((m) => previous.some((o) => o.result === "survived" && same(o, m)));
      const lost = previous.filter((o) => o.result === "survived" && !pool.some((m) => same(o, m)));
      for (const o of lost) console.error(`${name} ${o.file}:${o.line} ${o.operator}: the source changed; mutant not found again`);
    }
    if (picked.length === 0 && !previous) continue;
    if (values.list) {
      for (const m of picked) console.log(`${name}\t${m.file}:${m.line}\t${m.operator}\t${m.after.trim()}`);
      continue;
    }
    const baseline = await runTests(dir, tests);
    if (baseline.outcome !== "pass") throw new Error(`the tests of ${name} fail without any mutant (${baseline.by ?? baseline.outcome}): ${tests.join(" ")}`);
    results[name] ??= [];
    for (const m of picked) {
      writeFileSync(join(dir, m.file), applyMutant(m.source, m));
      const r = await runTests(dir, tests);
      writeFileSync(join(dir, m.file), m.source);
      const result = r.outcome === "pass" ? "survived" : r.outcome === "timeout" ? "timeout" : "killed";
      results[name]!.push({ file: m.file, line: m.line, operator: m.operator, before: m.before, after: m.after, result, by: r.by });
      console.error(`${name} ${m.file}:${m.line} ${m.operator}: ${result}${r.by ? ` by "${r.by}"` : ""}`);
    }
    const out = results[name]!;
    const killed = out.filter((o) => o.result !== "survived").length;
    console.error(`${name}: ${killed}/${out.length} killed (of ${pool.length} candidate mutants)`);
    // written after each module, so an interrupted run keeps what it measured
    if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (!values.list) {
  console.log(`\nmutation score (seed ${values.seed}, ${perModule} per module, ${Math.round((performance.now() - started) / 1000)} s)`);
  console.log("module            killed  survived  timeouts  score");
  let allKilled = 0;
  let all = 0;
  for (const [name, out] of Object.entries(results)) {
    const killed = out.filter((o) => o.result === "killed").length;
    const timeouts = out.filter((o) => o.result === "timeout").length;
    const survived = out.length - killed - timeouts;
    allKilled += killed + timeouts;
    all += out.length;
    console.log(`${name.padEnd(17)} ${String(killed).padStart(6)}  ${String(survived).padStart(8)}  ${String(timeouts).padStart(8)}  ${((100 * (killed + timeouts)) / Math.max(1, out.length)).toFixed(0)}%`);
  }
  console.log(`${"all".padEnd(17)} ${String(allKilled).padStart(6)}  ${String(all - allKilled).padStart(8)}            ${((100 * allKilled) / Math.max(1, all)).toFixed(0)}%`);
  const survivors = Object.values(results).flat().filter((o) => o.result === "survived");
  if (survivors.length > 0) console.log("\nsurvivors:");
  for (const s of survivors) console.log(`  ${s.file}:${s.line} ${s.operator}\n    - ${s.before.trim()}\n    + ${s.after.trim()}`);
  if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
}
