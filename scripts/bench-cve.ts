/**
 * Vulnerability scanning benchmark: a large image (default 500 MiB of gzip layers: this
 * machine's dpkg status and os-release in the first layer, incompressible files in the
 * rest) is placed as an OCI layout in a fresh storage root, a real daemon starts on it with
 * [cve] enabled, a Grype v6 database (the test fixture's schema, ~20,000 advisories) is
 * imported over the API, and the scan that follows is timed. Prints the scan's throughput
 * (MiB of compressed layers per second) and the daemon's peak RSS (VmHWM) before and after.
 *
 *   bun scripts/bench-cve.ts [--mib 500] [--layers 5]
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { writeGrypeV6, type FixtureAdvisory } from "../test/cve/grypedb";

const MAIN = resolve(import.meta.dir, "../daemon/main.ts");
const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const MIB = arg("mib", 500);
const LAYERS = arg("layers", 5);

const work = mkdtempSync(join(tmpdir(), "berth-bench-cve-"));
const root = join(work, "root");
const layout = join(root, "bench/big");

async function sh(cmd: string[]): Promise<void> {
  const p = Bun.spawn(cmd, { stdout: "ignore", stderr: "inherit" });
  if ((await p.exited) !== 0) throw new Error(`${cmd.join(" ")} failed`);
}

function put(bytes: Uint8Array | string): { digest: string; size: number } {
  const hex = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
  writeFileSync(join(layout, "blobs/sha256", hex), bytes);
  return { digest: `sha256:${hex}`, size: typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.byteLength };
}

async function putFile(path: string): Promise<{ digest: string; size: number }> {
  const hasher = new Bun.CryptoHasher("sha256");
  for await (const c of Bun.file(path).stream() as unknown as AsyncIterable<Uint8Array>) hasher.update(c);
  const hex = hasher.digest("hex");
  await sh(["mv", path, join(layout, "blobs/sha256", hex)]);
  return { digest: `sha256:${hex}`, size: Bun.file(join(layout, "blobs/sha256", hex)).size };
}

function vmHwm(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

async function main() {
  mkdirSync(join(layout, "blobs/sha256"), { recursive: true });
  writeFileSync(join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  const src = join(work, "src");
  const layers: { digest: string; size: number }[] = [];
  // layer 1: the package database
  mkdirSync(join(src, "0/var/lib/dpkg"), { recursive: true });
  mkdirSync(join(src, "0/etc"), { recursive: true });
  writeFileSync(join(src, "0/var/lib/dpkg/status"), readFileSync("/var/lib/dpkg/status"));
  writeFileSync(join(src, "0/etc/os-release"), 'ID=debian\nVERSION_ID="12"\n');
  await sh(["tar", "-C", join(src, "0"), "-czf", join(work, "l0.tar.gz"), "."]);
  layers.push(await putFile(join(work, "l0.tar.gz")));
  // the bulk: incompressible files, so compressed bytes = scanned bytes
  const per = Math.ceil(MIB / LAYERS);
  for (let i = 1; i <= LAYERS; i++) {
    const dir = join(src, String(i), "opt/data");
    mkdirSync(dir, { recursive: true });
    await sh(["dd", "if=/dev/urandom", `of=${join(dir, "blob.bin")}`, "bs=1M", `count=${per}`, "status=none"]);
    await sh(["tar", "-C", join(src, String(i)), "-cf", join(work, `l${i}.tar`), "."]);
    await sh(["gzip", "-1", join(work, `l${i}.tar`)]);
    rmSync(join(src, String(i)), { recursive: true, force: true });
    layers.push(await putFile(join(work, `l${i}.tar.gz`)));
  }
  const layerBytes = layers.reduce((n, l) => n + l.size, 0);
  const config = put(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
  const manifest = put(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...l })),
  }));
  writeFileSync(join(layout, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, annotations: { "org.opencontainers.image.ref.name": "v1" } }] }));

  // a database of realistic shape: every installed package of this machine with a few advisories
  const names = [...readFileSync("/var/lib/dpkg/status", "utf8").matchAll(/^Package: (.+)$/gm)].map((m) => m[1]!);
  const adv: FixtureAdvisory[] = [];
  for (let i = 0; i < 20_000; i++) {
    const pkg = names[i % names.length]!;
    adv.push({ vuln: `CVE-2026-${10000 + i}`, provider: "debian", severity: ["critical", "high", "medium", "low", "negligible"][i % 5]!, os: { name: "debian", releaseId: "debian", major: "12" }, ecosystem: "deb", pkg, format: "dpkg", constraint: i % 2 ? "< 0.1" : "< 99999", fix: i % 2 ? "0.1" : "99999" });
  }
  const dbFile = join(work, "grype.db");
  writeGrypeV6(dbFile, adv);

  writeFileSync(join(work, "c.toml"), `[http]\naddress = "127.0.0.1"\nport = 0\n[storage]\nroot = "${root}"\n[log]\nlevel = "info"\n[cve]\nenabled = true\n[scheduler]\njitter_ms = 0\n`);
  const proc = Bun.spawn([process.execPath, MAIN, "serve", "--config", join(work, "c.toml")], { stderr: "pipe" });
  let logs = "";
  let port = 0;
  const reader = (proc.stderr as ReadableStream<Uint8Array>).getReader();
  const dec = new TextDecoder();
  while (!port) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the daemon exited:\n${logs}`);
    logs += dec.decode(value);
    const m = /"port":(\d+)/.exec(logs);
    if (m) port = Number(m[1]);
  }
  void (async () => {
    for (;;) if ((await reader.read()).done) break;
  })();
  try {
    const url = `http://127.0.0.1:${port}`;
    const before = vmHwm(proc.pid);
    const t0 = performance.now();
    const res = await fetch(`${url}/api/v1/cve/db`, { method: "PUT", body: Bun.file(dbFile) });
    if (!res.ok) throw new Error(`import failed: ${res.status} ${await res.text()}`);
    const tImported = performance.now();
    const afterImport = vmHwm(proc.pid);
    // polled on the summary listing: the image's full finding list is a large answer of its own
    let summary: { count: number; packages: number; error: string | null } | undefined;
    const deadline = Date.now() + 30 * 60_000;
    while (!summary && Date.now() < deadline) {
      const r = await fetch(`${url}/api/v1/cve/images?repo=bench/big`);
      summary = r.ok ? ((await r.json()) as { images: (typeof summary)[] }).images[0] : undefined;
      if (!summary) await Bun.sleep(100);
    }
    const tScanned = performance.now();
    const after = vmHwm(proc.pid);
    const secs = (tScanned - tImported) / 1000;
    console.log(JSON.stringify({
      layers: layers.length,
      layerMiB: +(layerBytes / 2 ** 20).toFixed(1),
      dbMiB: +(Bun.file(dbFile).size / 2 ** 20).toFixed(1),
      importSeconds: +((tImported - t0) / 1000).toFixed(2),
      scanSeconds: +secs.toFixed(2),
      scanMiBPerSecond: +(layerBytes / 2 ** 20 / secs).toFixed(1),
      packages: summary?.packages,
      findings: summary?.count,
      error: summary?.error,
      peakRssBeforeMiB: +(before / 2 ** 20).toFixed(1),
      peakRssAfterImportMiB: +(afterImport / 2 ** 20).toFixed(1),
      peakRssAfterScanMiB: +(after / 2 ** 20).toFixed(1),
    }, null, 2));
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
