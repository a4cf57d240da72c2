/**
 * GC-vs-push stress (issue 9, item 1): starts the real daemon on port 0 over a temp root
 * with `[gc] grace = 0` (the harshest setting: anything not yet referenced may go at once),
 * has N clients push images and indexes over HTTP for the given time while garbage
 * collection passes run through the admin API with short random gaps, then checks every
 * image acknowledged with 201: its manifest by tag and every blob it needs by GET, with
 * the right digest. Prints pushes acknowledged, broken images (must be 0), pushes refused
 * with MANIFEST_BLOB_UNKNOWN (allowed: their blobs were collected before the manifest
 * came), GC passes and what they collected. Exits 1 if anything is broken or any other
 * error was seen.
 *
 *   bun scripts/stress-gc.ts [--duration 60] [--clients 8] [--grace 0] [--untagged]
 *                            [--gc-gap-ms 20] [--think-ms 0] [--layer-bytes 4096]
 *
 * The test suite runs the same driver (test/helpers/gcstress.ts) for three seconds.
 */
import { parseArgs } from "node:util";
import { startDaemon } from "../test/helpers/daemon";
import { runGcStress } from "../test/helpers/gcstress";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "60" },
    clients: { type: "string", default: "8" },
    grace: { type: "string", default: "0" },
    untagged: { type: "boolean", default: false },
    "gc-gap-ms": { type: "string", default: "20" },
    "think-ms": { type: "string", default: "0" },
    "layer-bytes": { type: "string", default: "4096" },
  },
});
const number = (name: keyof typeof values) => {
  const n = Number(values[name]);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`--${name}: "${values[name]}" is not a non-negative number`);
    process.exit(2);
  }
  return n;
};
const durationS = number("duration");
const clients = Math.max(1, Math.floor(number("clients")));
const grace = number("grace");

await using d = await startDaemon({
  storage: `\n[gc]\ninterval = 0\ngrace = ${grace}\nuntagged = ${values.untagged}\n[scrub]\ninterval = 0`,
});
console.log(`berth on ${d.url}, root ${d.root}: ${clients} clients for ${durationS} s, grace ${grace} s, untagged ${values.untagged}`);
const started = performance.now();
const r = await runGcStress({
  url: d.url,
  clients,
  durationMs: durationS * 1000,
  gcGapMs: number("gc-gap-ms"),
  thinkMs: number("think-ms"),
  layerBytes: number("layer-bytes"),
  progress: (line) => console.log(`  ${((performance.now() - started) / 1000).toFixed(0)} s: ${line}`),
});
const rss = (await (await fetch(`${d.url}/api/v1/info`)).json().catch(() => ({}))) as Record<string, unknown>;
console.log(`pushes acknowledged:            ${r.acknowledged} (${r.indexes} of them indexes over an image)`);
console.log(`broken acknowledged images:     ${r.broken.length}   (must be 0)`);
console.log(`refused MANIFEST_BLOB_UNKNOWN:  ${r.refusedBlobUnknown}`);
console.log(`other errors:                   ${r.errors.length}   (must be 0)`);
console.log(`GC passes:                      ${r.gcPasses}`);
console.log(`blobs collected:                ${r.blobsCollected} (pool entries: ${r.poolCollected}, manifests unlisted: ${r.manifestsCollected})`);
console.log(`checked afterwards:             ${r.manifestsChecked} manifests, ${r.blobsChecked} blobs`);
if (rss.memory !== undefined) console.log(`daemon memory:                  ${JSON.stringify(rss.memory)}`);
for (const b of r.broken.slice(0, 20)) console.log(`  broken: ${b}`);
for (const e of r.errors.slice(0, 20)) console.log(`  error: ${e}`);
process.exitCode = r.broken.length > 0 || r.errors.length > 0 ? 1 : 0;
