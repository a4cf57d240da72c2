/**
 * GC on a long referrer chain (issue 9, item 6): a repository holding one tagged image and
 * N manifests, each with the previous one as its `subject`, the first naming a subject
 * that was deleted. Runs a dry pass and then a real pass in process, and prints for each
 * the time it took, what it dropped, and how long the event loop was blocked meanwhile (the
 * gaps between firings of a timer that should fire every 1 ms: p99, longest, and how many
 * exceeded 20 ms; on a busy machine the longest also contains the OS preempting the
 * process). A second real pass shows whether the first one finished the job.
 *
 *   bun scripts/bench-gc-chain.ts [--chain 8000]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { OCI_INDEX, OCI_MANIFEST, REF_NAME } from "../daemon/oci/mediatypes";
import { createLifecycleRegistry } from "../test/helpers/lifecycle";
import { imageManifest, sha256 } from "../test/helpers/registry";

const { values } = parseArgs({ options: { chain: { type: "string", default: "8000" } } });
const N = Number(values.chain);
if (!Number.isInteger(N) || N < 1) throw new Error(`--chain: "${values.chain}" is not a positive whole number`);

const root = mkdtempSync(join(tmpdir(), "berth-gc-chain-"));
try {
  const dir = join(root, "chain", "blobs", "sha256");
  mkdirSync(dir, { recursive: true });
  const put = (b: string) => writeFileSync(join(dir, sha256(b).slice(7)), b);
  const entries: object[] = [];
  const kept = imageManifest("{}", [], { annotations: { kept: "yes" } });
  put(kept);
  put("{}");
  entries.push({ mediaType: OCI_MANIFEST, digest: sha256(kept), size: kept.length, annotations: { [REF_NAME]: "kept" } });
  let subject = { mediaType: OCI_MANIFEST, digest: sha256("a deleted subject"), size: 17 };
  for (let i = 0; i < N; i++) {
    const m = imageManifest("{}", [], { artifactType: "application/x.sig", subject, annotations: { n: String(i) } });
    put(m);
    subject = { mediaType: OCI_MANIFEST, digest: sha256(m), size: m.length };
    entries.push(subject);
  }
  writeFileSync(join(root, "chain", "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(root, "chain", "index.json"), JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries }));

  await using r = await createLifecycleRegistry({}, { root });
  const measure = async (label: string, pass: () => Promise<{ manifests: unknown[]; blobs: unknown[] }>) => {
    const gaps: number[] = [];
    let last = performance.now();
    const probe = setInterval(() => {
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }, 1);
    const t0 = performance.now();
    const report = await pass();
    const ms = performance.now() - t0;
    gaps.push(performance.now() - last);
    clearInterval(probe);
    gaps.sort((a, b) => a - b);
    const p99 = gaps[Math.min(gaps.length - 1, Math.floor(gaps.length * 0.99))]!;
    console.log(
      `${label.padEnd(12)} ${ms.toFixed(0).padStart(7)} ms   manifests ${String(report.manifests.length).padStart(6)}   blobs ${String(report.blobs.length).padStart(6)}` +
        `   event-loop gaps: p99 ${p99.toFixed(1)} ms, longest ${gaps[gaps.length - 1]!.toFixed(1)} ms, over 20 ms: ${gaps.filter((g) => g > 20).length}`,
    );
  };
  console.log(`referrer chain of ${N} manifests, subject deleted`);
  await measure("dry run", () => r.lifecycle.gc({ dryRun: true }));
  await measure("real pass", () => r.lifecycle.gc());
  await measure("second pass", () => r.lifecycle.gc());
} finally {
  rmSync(root, { recursive: true, force: true });
}
