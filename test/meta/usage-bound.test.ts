/** Pull/push statistics keep only unflushed changes in memory, at most MAX_PENDING, and lose nothing. */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_PENDING, UsageStats } from "../../daemon/meta/usage";
import { openDatabase } from "../../daemon/platform/sqlite";

test("more references than MAX_PENDING: memory holds at most that many, every figure is still right", () => {
  const dir = mkdtempSync(join(tmpdir(), "berth-usage-"));
  try {
    const db = openDatabase(join(dir, "meta.db"));
    let now = 1000;
    const usage = new UsageStats(db, () => now);
    const refs = MAX_PENDING * 2 + 10;
    for (let i = 0; i < refs; i++) {
      usage.pushed(`r/${i % 7}`, `sha256:${i}`, [`t${i}`]);
      expect(usage.figures().dirty).toBeLessThanOrEqual(MAX_PENDING);
    }
    now = 2000;
    usage.pulled("r/3", "t3", "sha256:3");
    usage.pulled("r/3", "t3", "sha256:3");
    expect(usage.get("r/3", "t3")).toEqual({ pushedAt: 1000, pulledAt: 2000, pulls: 2 });
    expect(usage.get("r/0", "t0")).toEqual({ pushedAt: 1000, pulls: 0 }); // flushed long ago, read back
    expect(usage.lastUsed("r/3", "t3", "sha256:3")).toBe(2000);
    usage.forget("r/3", "t3");
    expect(usage.get("r/3", "t3")).toBeUndefined();
    expect(usage.ofRepo("r/3").has("t3")).toBe(false);
    expect(usage.ofRepo("r/3").get("t10")).toEqual({ pushedAt: 1000, pulls: 0 });
    usage.flush();
    expect(usage.figures()).toMatchObject({ dirty: 0, entries: refs * 2 - 1 });
    // a new instance on the same table sees the same figures
    expect(new UsageStats(db).get("r/3", "sha256:3")).toEqual({ pushedAt: 1000, pulledAt: 2000, pulls: 0 });
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
