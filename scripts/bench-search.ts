/**
 * Search at scale (issue 12): fills a root with BERTH_IMAGES images (default 10,000: 500
 * repositories of 20 tags, each tag its own manifest and config, layers shared within a
 * repository) through the real /v2 handler, then starts the real daemon on it and measures,
 * over HTTP on loopback:
 *   - the first search (search/handler.ts imported, search's index built from meta and the
 *     manifest and config bytes),
 *   - GlobalSearch latency (p50/p95/max over BERTH_QUERIES queries per kind) for a name, every
 *     name, NAME:TAG, :TAG and a digest, with a UI-sized page (limit 10) and some fields,
 *   - the daemon's RSS idle before any search, after the first and after the run, and the
 *     idle RSS of a daemon with [search] enabled = false on the same root.
 *
 *   bun scripts/bench-search.ts     (BERTH_IMAGES, BERTH_TAGS per repository, BERTH_QUERIES)
 */
import { existsSync, readFileSync } from "node:fs";
import { createTestRegistry, imageManifest, pushBlob, sha256 } from "../test/helpers/registry";
import { startDaemon, tempDir } from "../test/helpers/daemon";

const IMAGES = Number(process.env.BERTH_IMAGES ?? 10_000);
const TAGS = Number(process.env.BERTH_TAGS ?? 20);
const QUERIES = Number(process.env.BERTH_QUERIES ?? 200);
const REPOS = Math.ceil(IMAGES / TAGS);
const WORDS = ["app", "base", "db", "proxy", "agent", "sensor", "gateway", "ml", "cache", "web"];

using dir = tempDir("berth-bench-search-");
// BERTH_ROOT: fill that root once and reuse it on later runs (the fill takes a minute or more)
const root = process.env.BERTH_ROOT ?? `${dir.path}/root`;
const firstLayer = sha256("shared base layer of 0");
if (!existsSync(`${root}/.berth/meta.db`)) {
  const t0 = performance.now();
  await using r = await createTestRegistry({ root });
  for (let i = 0; i < REPOS; i++) {
    const repo = `fleet${i % 7}/${WORDS[i % WORDS.length]}-${i}`;
    const layers = [`shared base layer of ${i % 20}`, `repo layer of ${i}`];
    for (const l of layers) await pushBlob(r, repo, l);
    for (let t = 0; t < TAGS && i * TAGS + t < IMAGES; t++) {
      const config = JSON.stringify({
        architecture: t % 2 ? "arm64" : "amd64", os: "linux", created: new Date(Date.UTC(2024, 0, 1) + (i * TAGS + t) * 60_000).toISOString(),
        config: { Labels: { "org.opencontainers.image.vendor": `vendor ${i % 13}` } },
        history: layers.map((l) => ({ created_by: `RUN build ${l}` })),
      });
      await pushBlob(r, repo, config);
      const manifest = imageManifest(config, layers);
      const res = await r.call("PUT", `/v2/${repo}/manifests/v${t}.${i}`, { headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" }, body: manifest });
      if (res.status !== 201) throw new Error(`push ${repo}: ${res.status} ${await res.text()}`);
    }
  }
  console.log(`filled ${IMAGES} images in ${REPOS} repositories through /v2 in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

const rss = (pid: number) => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024);

async function settle(url: string): Promise<void> {
  for (let i = 0; i < 3; i++) await fetch(`${url}/v2/`).then((r) => r.arrayBuffer());
  Bun.gc(true);
  await Bun.sleep(1000); // a measurement pause, not a wait for a condition: RSS after the daemon is idle
}

async function query(url: string, q: string): Promise<{ ms: number; body: any }> {
  const t0 = performance.now();
  let res = await fetch(`${url}/v2/_zot/ext/search`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query: q }) });
  // 503 + Retry-After: the index is still being built past the query's deadline; the build goes on
  for (let i = 0; res.status === 503 && i < 600; i++) {
    await res.arrayBuffer();
    await Bun.sleep(1000); // the server's Retry-After, in a script
    res = await fetch(`${url}/v2/_zot/ext/search`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query: q }) });
  }
  const body = (await res.json()) as any;
  const ms = performance.now() - t0;
  if (res.status !== 200 || body.errors) throw new Error(`${res.status} ${JSON.stringify(body).slice(0, 300)}`);
  return { ms, body };
}

const FIELDS = "Page { TotalCount ItemCount } Repos { Name LastUpdated Size Platforms { Os Arch } NewestImage { Tag Digest LastUpdated Vendor IsSigned } } Images { RepoName Tag Digest LastUpdated Size Manifests { Platform { Os Arch } } }";
const KINDS: [string, string][] = [
  ["name (\"gateway\")", `{ GlobalSearch(query: "gateway", requestedPage: {limit: 10, offset: 0, sortBy: RELEVANCE}) { ${FIELDS} } }`],
  ["every name", `{ GlobalSearch(query: "", requestedPage: {limit: 10, sortBy: UPDATE_TIME}) { ${FIELDS} } }`],
  ["NAME:TAG", `{ GlobalSearch(query: "fleet3/ml-17:v1", requestedPage: {limit: 10}) { ${FIELDS} } }`],
  [":TAG (every tag containing)", `{ GlobalSearch(query: ":v1", requestedPage: {limit: 10, sortBy: UPDATE_TIME}) { ${FIELDS} } }`],
  ["digest (a layer shared by 1/20 of images)", `{ GlobalSearch(query: "${firstLayer}", requestedPage: {limit: 10}) { ${FIELDS} } }`],
];

{
  await using off = await startDaemon({ root, extra: "[search]\nenabled = false\n" });
  await settle(off.url);
  const idleOff = rss(off.proc.pid);
  await off.stop();

  await using d = await startDaemon({ root, ...(process.env.BERTH_SEARCH_EXTRA ? { extra: process.env.BERTH_SEARCH_EXTRA.replaceAll("\\n", "\n") } : {}) });
  await settle(d.url);
  const idleOn = rss(d.proc.pid);
  // peak RSS from here on (the first search and every query), sampled every 50 ms
  let peak = idleOn;
  const sampler = setInterval(() => (peak = Math.max(peak, rss(d.proc.pid))), 50);
  const first = await query(d.url, `{ GlobalSearch(query: "app", requestedPage: {limit: 10}) { Page { TotalCount } } }`);
  const second = await query(d.url, `{ GlobalSearch(query: "app", requestedPage: {limit: 10}) { Page { TotalCount } } }`);
  await settle(d.url);
  const afterFirst = rss(d.proc.pid);
  console.log(`first search (module import + index of ${IMAGES} images): ${first.ms.toFixed(0)} ms; the same query again: ${second.ms.toFixed(1)} ms`);
  console.log(`\nGlobalSearch over HTTP, ${QUERIES} queries each, page of 10:`);
  for (const [label, q] of KINDS) {
    const times: number[] = [];
    let total = 0;
    for (let i = 0; i < QUERIES; i++) {
      const { ms, body } = await query(d.url, q);
      times.push(ms);
      total = body.data.GlobalSearch.Page.TotalCount;
    }
    times.sort((a, b) => a - b);
    const p = (x: number) => times[Math.min(times.length - 1, Math.floor(x * times.length))]!.toFixed(2);
    console.log(`  ${label.padEnd(44)} matches ${String(total).padStart(6)}  p50 ${p(0.5)} ms  p95 ${p(0.95)} ms  max ${p(1)} ms`);
  }
  clearInterval(sampler);
  peak = Math.max(peak, rss(d.proc.pid));
  await settle(d.url);
  console.log(`\nRSS (MiB): [search] off, idle ${idleOff}; on, idle before any search ${idleOn}; after the first search ${afterFirst}; peak over the searches ${peak}; after the run ${rss(d.proc.pid)}`);
}

// The same queries in process, through the socketless /v2 handler: the search work alone,
// without the loopback HTTP round trip and the client's own scheduling.
{
  await using r = await createTestRegistry({ root, search: {} });
  const ask = async (q: string) => {
    const res = await r.handle(new Request("http://bench/v2/_zot/ext/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query: q }) }));
    if (res.status !== 200) throw new Error(await res.text());
    return res.json();
  };
  const t0 = performance.now();
  await ask(KINDS[0]![1]);
  console.log(`\nin process: first search (index already in meta.db: loaded, not rebuilt) ${(performance.now() - t0).toFixed(0)} ms`);
  for (const [label, q] of KINDS) {
    const times: number[] = [];
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < QUERIES; i++) {
      const t = performance.now();
      await ask(q);
      times.push(performance.now() - t);
    }
    const cpu = process.cpuUsage(cpu0);
    times.sort((a, b) => a - b);
    const p = (x: number) => times[Math.min(times.length - 1, Math.floor(x * times.length))]!.toFixed(2);
    // CPU time per query is what the search costs; wall time adds whatever else the cores run
    console.log(`  ${label.padEnd(44)} p50 ${p(0.5)} ms  p95 ${p(0.95)} ms  CPU ${((cpu.user + cpu.system) / 1000 / QUERIES).toFixed(2)} ms/query`);
  }
}
