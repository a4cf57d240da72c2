/**
 * /metrics on the real daemon after real traffic: request counts by method and status,
 * latency histogram consistency, bytes, storage per repository and dedupe savings (two
 * repositories sharing a layer), uploads, host figures; and the provider registry's format.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { startDaemon, tempDir } from "../helpers/daemon";
import { configOf } from "../helpers/auth";
import { pushBlobTo } from "../helpers/clients";
import { silentLogger } from "../../daemon/log";
import { startDaemon as startBerth } from "../../daemon/main";
import { MetricsRegistry, renderFamilies } from "../../daemon/metrics/registry";
import { parseMeminfo } from "../../daemon/platform/host";

setDefaultTimeout(30_000);

function value(page: string, series: string): number | undefined {
  const line = page.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test("/metrics reflects requests, bytes, storage per repository and dedupe savings", async () => {
  await using daemon = await startDaemon();
  const layer = crypto.getRandomValues(new Uint8Array(50_000));
  const config = new TextEncoder().encode('{"architecture":"amd64","os":"linux"}');
  for (const repo of ["team/a", "team/b"]) {
    const l = (await pushBlobTo(daemon.url, repo, layer)).digest;
    const c = (await pushBlobTo(daemon.url, repo, config)).digest;
    const manifest = JSON.stringify({
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: c, size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: l, size: layer.length }],
    });
    const put = await fetch(`${daemon.url}/v2/${repo}/manifests/v1`, { method: "PUT", body: manifest, headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
    expect(put.status).toBe(201);
  }
  for (let i = 0; i < 3; i++) expect((await fetch(`${daemon.url}/v2/team/a/manifests/v1`)).status).toBe(200);
  expect((await fetch(`${daemon.url}/v2/team/a/manifests/nope`)).status).toBe(404);
  const blob = await fetch(`${daemon.url}/v2/team/a/blobs/${(await pushBlobTo(daemon.url, "team/a", layer)).digest}`);
  expect((await blob.arrayBuffer()).byteLength).toBe(layer.length);

  const res = await fetch(`${daemon.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
  const page = await res.text();
  expect(value(page, 'berth_http_requests_total{method="GET",code="200"}')).toBe(4);
  expect(value(page, 'berth_http_requests_total{method="GET",code="404"}')).toBe(1);
  expect(value(page, 'berth_http_requests_total{method="PUT",code="201"}')).toBe(2);
  expect(value(page, 'berth_http_requests_total{method="POST",code="201"}')).toBe(5);
  const count = value(page, 'berth_http_request_duration_seconds_count{method="GET"}');
  expect(count).toBe(5);
  expect(value(page, 'berth_http_request_duration_seconds_bucket{method="GET",le="+Inf"}')).toBe(count);
  expect(value(page, "berth_http_received_bytes_total")).toBeGreaterThanOrEqual(3 * layer.length + 2 * config.length);
  expect(value(page, "berth_http_sent_bytes_total")).toBeGreaterThanOrEqual(layer.length);
  expect(value(page, "berth_storage_ingress_bytes_total")).toBe(3 * layer.length + 2 * config.length);
  const a = value(page, 'berth_storage_repository_bytes{repository="team/a"}')!;
  const b = value(page, 'berth_storage_repository_bytes{repository="team/b"}')!;
  expect(a).toBeGreaterThan(layer.length + config.length); // plus the manifest
  expect(b).toBe(a);
  const pool = value(page, "berth_storage_pool_bytes")!;
  expect(pool).toBe(a); // same manifest bytes in both: every blob stored once
  expect(value(page, "berth_storage_dedupe_saved_bytes")).toBe(a + b - pool);
  expect(value(page, "berth_uploads_in_flight")).toBe(0);
  expect(value(page, "berth_host_memory_total_bytes")).toBeGreaterThan(0);
  expect(value(page, "berth_host_disk_free_bytes")).toBeGreaterThan(0);
  expect(value(page, "berth_process_resident_memory_bytes")).toBeGreaterThan(1024 * 1024);
  expect(page).toContain('berth_build_info{version="0.1.0-dev",board="none"} 1');
});

test("/metrics carries the background work: GC, scrub and quarantine, scheduler and IO budget", async () => {
  await using daemon = await startDaemon({ storage: "[scheduler]\njitter_ms = 0" });
  const gc = await fetch(`${daemon.url}/api/v1/storage/gc`, { method: "POST" });
  expect(gc.status).toBe(200);
  const text = await (await fetch(`${daemon.url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1]);
  expect(value("berth_gc_passes_total")).toBe(1);
  expect(value("berth_scrub_mismatches_total")).toBe(0);
  expect(value("berth_quarantined_blobs")).toBe(0);
  expect(value("berth_scheduler_running_tasks")).toBe(0);
  expect(text).toContain('berth_io_foreground_bytes_total{kind="read"}');
  expect(text).not.toContain("berth_sync_upstream_up"); // no [[sync.registries]]: no sync families
});

test("metrics.enabled = false: no /metrics page (and no counting)", async () => {
  await using daemon = await startDaemon({ storage: "[metrics]\nenabled = false" });
  const res = await fetch(`${daemon.url}/metrics`);
  expect(res.status).toBe(404);
  expect(await res.text()).not.toContain("berth_");
});

test("metrics.enabled = false: requests are not counted (in-process daemon, its registry read directly)", async () => {
  using dir = tempDir("berth-nometrics-");
  const started = await startBerth(configOf(`[http]\naddress = "127.0.0.1"\nport = 0\n[storage]\nroot = "${join(dir.path, "root")}"\n[metrics]\nenabled = false\n`), silentLogger);
  try {
    for (let i = 0; i < 3; i++) expect((await fetch(`http://127.0.0.1:${started.server.port}/v2/`)).status).toBe(200);
    const page = await started.metrics.render();
    // The family is still declared (the registry is built either way); it has no samples.
    expect(page).toContain("# TYPE berth_http_requests_total counter");
    expect(page).not.toMatch(/^berth_http_requests_total\{/m);
    expect(page).toMatch(/^berth_http_requests_in_flight 0$/m);
  } finally {
    await started.close(1000);
  }
});

test("providers: plain objects rendered in the text format; a failing provider is counted, not fatal", async () => {
  const reg = new MetricsRegistry();
  let runs = 0;
  reg.provide("gc", () => [{ name: "berth_gc_runs_total", help: "GC passes.\nDone.", type: "counter", samples: [{ value: ++runs }] }]);
  reg.provide("sync", () => {
    throw new Error("boom");
  });
  reg.provide("quoted", async () => [{ name: "berth_x", help: "x", type: "gauge", samples: [{ labels: { repo: 'a"b\\c' }, value: Infinity }] }]);
  const page = await reg.render();
  expect(page).toBe(
    '# HELP berth_gc_runs_total GC passes.\\nDone.\n# TYPE berth_gc_runs_total counter\nberth_gc_runs_total 1\n' +
      '# HELP berth_x x\n# TYPE berth_x gauge\nberth_x{repo="a\\"b\\\\c"} +Inf\n' +
      '# HELP berth_metrics_provider_errors_total Scrapes on which a metrics provider failed.\n# TYPE berth_metrics_provider_errors_total counter\nberth_metrics_provider_errors_total{provider="sync"} 1\n',
  );
  expect(renderFamilies([])).toBe("");
});

test("meminfo parsing", () => {
  expect(parseMeminfo("MemTotal:        1000 kB\nMemFree: 5 kB\nMemAvailable:     600 kB\n")).toEqual({ total: 1024000, available: 614400 });
});
