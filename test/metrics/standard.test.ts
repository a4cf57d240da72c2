/**
 * The standard providers when the process cannot read its own memory (Bun reads /proc for
 * it, which fails under EMFILE): the scrape still carries the host figures and counts no
 * provider error; only the process memory series are left out.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HttpMetrics } from "../../daemon/metrics/http";
import { MetricsRegistry } from "../../daemon/metrics/registry";
import { registerStandard } from "../../daemon/metrics/standard";

const original = process.memoryUsage;
afterEach(() => {
  process.memoryUsage = original;
});

test("a scrape under EMFILE keeps the host figures and reports no provider error", async () => {
  const root = mkdtempSync(join(tmpdir(), "berth-standard-"));
  try {
    const registry = new MetricsRegistry();
    registerStandard(registry, { root, http: new HttpMetrics(), uploadsInFlight: () => 0, ingressBytes: () => 0, board: "test", hostIntervalMs: 0 });
    const failing = (() => {
      throw new Error("Failed to get memory usage");
    }) as unknown as typeof process.memoryUsage;
    failing.rss = () => {
      throw new Error("Failed to get memory usage");
    };
    process.memoryUsage = failing;
    const page = await registry.render();
    process.memoryUsage = original;
    expect(page).toContain("\nberth_host_memory_total_bytes ");
    expect(page).toContain("\nberth_host_disk_total_bytes ");
    expect(page).not.toContain("berth_metrics_provider_errors_total{");
    expect(page).not.toMatch(/^berth_process_resident_memory_bytes /m);

    const healthy = await registry.render();
    expect(healthy).toMatch(/^berth_process_resident_memory_bytes \d+/m);
    expect(healthy).toMatch(/^berth_process_heap_bytes \d+/m);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
