/**
 * Figures of the web UI (issue 12), for docs/BENCHMARKS.md; not a test.
 *
 *   bun scripts/bench-ui.ts [--binary PATH] [--runs N]
 *
 * 1. Bundle: the script, stylesheet and page, raw and gzipped (what a browser downloads).
 * 2. Idle RSS: a daemon with [ui] enabled and never visited, the same after one visit (the
 *    page and its two assets), and a daemon with [ui] enabled = false; each measured after
 *    the daemon has been idle for a few seconds. --binary measures a compiled berth
 *    (scripts/build), whose UI is embedded; a source run builds the UI on the first visit,
 *    which costs the bundler's memory and is not what an appliance pays.
 * 3. Time to first paint of a repository page (apps/web with 4 tags, a signature and an
 *    SBOM) in Debian's Chromium, cold cache each run: first contentful paint, and the time
 *    until the tags table is on screen (all its API calls done). Median of N runs.
 */
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { launchChromium } from "../test/helpers/browser";
import { startDaemon } from "../test/helpers/daemon";
import { fillStore } from "../test/ui/fill";
import { buildUi } from "../ui/build";

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const binary = opt("--binary");
const runs = Number(opt("--runs") ?? 5);
const command = binary ? [binary] : undefined;

const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
const rss = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const idle = () => Bun.sleep(3000);

// 1. bundle
const { js, css } = await buildUi();
const gz = (s: string) => gzipSync(s, { level: 9 }).length;
console.log(`bundle: script ${kib(js.length)} (${kib(gz(js))} gzipped), stylesheet ${kib(css.length)} (${kib(gz(css))} gzipped), total gzipped ${kib(gz(js) + gz(css))}`);

// 2. idle RSS
async function idleRss(ui: boolean, visit: boolean): Promise<number> {
  await using d = await startDaemon({ ...(command ? { command } : {}), extra: ui ? "" : "[ui]\nenabled = false\n" });
  await fetch(`${d.url}/v2/`);
  if (visit) {
    const html = await (await fetch(`${d.url}/`)).text();
    for (const m of html.matchAll(/(?:href|src)="(\/ui\/[^"]+)"/g)) await (await fetch(`${d.url}${m[1]}`, { headers: { "Accept-Encoding": "gzip" } })).arrayBuffer();
  }
  await idle();
  return rss(d.proc.pid);
}
const off = await idleRss(false, false);
const on = await idleRss(true, false);
const visited = await idleRss(true, true);
console.log(`idle RSS (${binary ? "compiled" : "source run"}): [ui] off ${mib(off)}, on and never visited ${mib(on)}, after one visit ${mib(visited)} (${visited >= on ? "+" : ""}${mib(visited - on)})`);

// 3. time to first paint
{
  await using d = await startDaemon({ ...(command ? { command } : {}) });
  await fillStore({ url: d.url, headers: {} });
  await fetch(`${d.url}/`); // the UI is loaded (and, in a source run, built) before timing
  await using browser = await launchChromium();
  const fcp: number[] = [];
  const tags: number[] = [];
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${d.url}/#/repo/apps/web`);
    await page.waitForSelector("#tags tbody tr");
    const t = await page.evaluate(() => ({ fcp: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? -1, now: performance.now() }));
    fcp.push(t.fcp);
    tags.push(t.now);
    await context.close();
  }
  console.log(`repository page in Chromium (median of ${runs}, cold cache): first contentful paint ${median(fcp).toFixed(0)} ms, tags table complete ${median(tags).toFixed(0)} ms`);
}
