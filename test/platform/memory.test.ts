/** The memory governor collects only when over budget, and only while there is traffic. */
import { expect, jest, test } from "bun:test";
import { waitFor } from "../helpers/clients";
import { SETTLE_MS, TRIM_AT, memoryGovernor } from "../../daemon/platform/memory";

test("ingress checks every interval and collects only over the soft limit", () => {
  let rss = 50;
  let collections = 0;
  const g = memoryGovernor({ softLimitBytes: 64, checkInterval: 10, rss: () => rss }, () => collections++);
  g.ingress(9);
  rss = 100;
  expect(collections).toBe(0);
  g.ingress(1); // 10 bytes since the last check, over budget
  expect(collections).toBe(1);
  g.ingress(5);
  expect(collections).toBe(1);
  rss = 60;
  g.ingress(5);
  expect(collections).toBe(1); // checked, under budget
  expect(g.stats().collections).toBe(1);
});

test("while requests arrive the timer checks; a quiet tick under the limit stops it", () => {
  // Fake timers: each tick is stepped explicitly, so "no more looks" is shown tick by tick.
  jest.useFakeTimers();
  try {
    let collections = 0;
    let looks = 0;
    let rss = 100;
    const g = memoryGovernor({ softLimitBytes: 64, checkInterval: 1 << 20, tickMs: 5, rss: () => (looks++, rss) }, () => {
      collections++;
      rss = 50; // the collection brings it under the limit
    });
    g.request();
    expect(looks).toBe(0);
    jest.advanceTimersByTime(5); // first tick: a request arrived since the last one, so it looks
    expect([looks, collections]).toEqual([2, 1]); // the look, and the one after the collection
    rss = 100;
    g.request();
    jest.advanceTimersByTime(5); // traffic continues: it looks again
    expect([looks, collections]).toEqual([4, 2]);
    jest.advanceTimersByTime(5); // a quiet tick: one last look (under the limit now), and no timer is left
    expect([looks, collections]).toEqual([5, 2]);
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(60_000);
    expect([looks, collections]).toEqual([5, 2]);
    g.request(); // traffic again starts the timer again
    expect(jest.getTimerCount()).toBe(1);
    g.stop();
    expect(jest.getTimerCount()).toBe(0);
  } finally {
    jest.useRealTimers();
  }
});

test("a collection that leaves the set above the limit is not repeated every tick, only after growth by an eighth", () => {
  jest.useFakeTimers();
  try {
    let collections = 0;
    let rss = 100;
    const g = memoryGovernor({ softLimitBytes: 64, checkInterval: 1 << 20, tickMs: 5, rss: () => rss }, () => collections++);
    for (let i = 0; i < 10; i++) {
      g.request();
      jest.advanceTimersByTime(5);
    }
    expect(collections).toBe(1); // the set stayed at 100: one vain collection, not ten
    rss = 100 + 64 / 8; // grown by an eighth of the limit beyond what it left
    g.request();
    jest.advanceTimersByTime(5);
    expect(collections).toBe(2);
    g.stop();
  } finally {
    jest.useRealTimers();
  }
});

test("after traffic stops above the limit, follow-up looks collect until it is under, then no timer is left", () => {
  jest.useFakeTimers();
  try {
    let collections = 0;
    let rss = 100;
    const g = memoryGovernor({ softLimitBytes: 64, checkInterval: 1 << 20, tickMs: 5, rss: () => rss }, () => collections++);
    g.request();
    jest.advanceTimersByTime(5); // traffic: one collection, the set stays at 100
    expect(collections).toBe(1);
    jest.advanceTimersByTime(5); // quiet: the last look collects even though the set did not grow
    expect(collections).toBe(2);
    expect(jest.getTimerCount()).toBe(1); // a follow-up is due (SETTLE_MS[0])
    jest.advanceTimersByTime(SETTLE_MS[0]!);
    expect(collections).toBe(3);
    rss = 60; // the allocator gave pages back
    jest.advanceTimersByTime(SETTLE_MS[1]!);
    expect(collections).toBe(3); // under the limit: no collection, and no further look
    expect(jest.getTimerCount()).toBe(0);
    g.stop();
  } finally {
    jest.useRealTimers();
  }
});

test("the follow-up looks end within a minute even when the set stays above the limit", () => {
  jest.useFakeTimers();
  try {
    let collections = 0;
    const g = memoryGovernor({ softLimitBytes: 64, checkInterval: 1 << 20, tickMs: 5, rss: () => 100 }, () => collections++);
    g.request();
    jest.advanceTimersByTime(10); // a traffic tick, then the quiet one
    jest.advanceTimersByTime(60_000);
    expect(collections).toBe(2 + SETTLE_MS.length);
    expect(SETTLE_MS.reduce((a, b) => a + b, 0)).toBeLessThan(60_000);
    expect(jest.getTimerCount()).toBe(0);
    g.stop();
  } finally {
    jest.useRealTimers();
  }
});

test("an idle registry still above the limit trims once, ~20 s into the quiet, then collects what the trim let go", () => {
  jest.useFakeTimers();
  try {
    const events: string[] = [];
    let rss = 100;
    const g = memoryGovernor(
      { softLimitBytes: 64, checkInterval: 1 << 20, tickMs: 5, rss: () => rss, trim: () => { events.push("trim"); rss = 50; } },
      () => events.push("collect"),
    );
    g.request();
    jest.advanceTimersByTime(10); // a traffic tick, then the quiet one (look 0)
    for (let i = 0; i < TRIM_AT - 1; i++) jest.advanceTimersByTime(SETTLE_MS[i]!);
    expect(events).not.toContain("trim"); // looks before TRIM_AT only collect
    const before = events.length;
    jest.advanceTimersByTime(SETTLE_MS[TRIM_AT - 1]!);
    // the look collects, is still above, trims, and its second look finds the set under the limit
    expect(events.slice(before)).toEqual(["collect", "trim"]);
    expect(g.stats().trims).toBe(1);
    expect(jest.getTimerCount()).toBe(0);
    expect(SETTLE_MS.slice(0, TRIM_AT).reduce((a, b) => a + b, 0)).toBeLessThan(30_000);
    g.stop();
  } finally {
    jest.useRealTimers();
  }
});

test("a pause between bursts shorter than the trim's delay keeps the caches", () => {
  jest.useFakeTimers();
  try {
    let trims = 0;
    const g = memoryGovernor({ softLimitBytes: 64, checkInterval: 1 << 20, tickMs: 5, rss: () => 100, trim: () => trims++ }, () => {});
    for (let burst = 0; burst < 5; burst++) {
      g.request();
      jest.advanceTimersByTime(10 + SETTLE_MS[0]! + SETTLE_MS[1]! / 2); // quiet, but less than TRIM_AT's delay
    }
    expect(trims).toBe(0);
    jest.advanceTimersByTime(60_000);
    expect(trims).toBe(1); // the last quiet lasts: one trim
    g.stop();
  } finally {
    jest.useRealTimers();
  }
});

test("a trim that throws is contained, and the collection after it still runs", () => {
  jest.useFakeTimers();
  try {
    let collections = 0;
    const g = memoryGovernor({ softLimitBytes: 64, checkInterval: 1 << 20, tickMs: 5, rss: () => 100, trim: () => { throw new Error("boom"); } }, () => collections++);
    g.request();
    jest.advanceTimersByTime(60_000);
    expect(collections).toBe(3 + SETTLE_MS.length); // one more than without a trim: the look after it
    expect(g.stats().trims).toBe(0);
    g.stop();
  } finally {
    jest.useRealTimers();
  }
});

test("a zero soft limit disables it", () => {
  let collections = 0;
  const g = memoryGovernor({ softLimitBytes: 0, checkInterval: 1, rss: () => 1e12 }, () => collections++);
  g.ingress(100);
  g.request();
  g.stop();
  expect(collections).toBe(0);
});

test("a resident set that cannot be read (EMFILE) skips the look: nothing throws, not even on the timer", async () => {
  let collections = 0;
  let looks = 0;
  const failing = () => {
    looks++;
    throw new Error("Failed to get memory usage");
  };
  const g = memoryGovernor({ softLimitBytes: 64, checkInterval: 1, tickMs: 5, rss: failing }, () => collections++);
  expect(() => g.ingress(10)).not.toThrow();
  g.request();
  // the timer looks too; an exception there would be uncaught and fail this test run
  await waitFor("the timer to look three times", () => {
    g.request();
    return looks >= 3;
  }, 5000, 5);
  expect(looks).toBeGreaterThanOrEqual(3);
  expect(collections).toBe(0);
  g.stop();
});

test("a collection that throws is contained as well", () => {
  const g = memoryGovernor({ softLimitBytes: 64, checkInterval: 1, rss: () => 100 }, () => {
    throw new Error("boom");
  });
  expect(() => g.ingress(10)).not.toThrow();
  g.stop();
});

test("whole-file replacements (index.json rewrites) count toward the governor's looks like request bodies", async () => {
  // A busy repository's index.json rewrites churn memory while the pushes causing them carry
  // tiny bodies: the counting disk reports each replacement's size to the governor.
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { countingDisk } = await import("../../daemon/platform/countingdisk");
  const { realDisk } = await import("../../daemon/platform/disk");
  const dir = mkdtempSync(join(tmpdir(), "berth-governor-"));
  try {
    let collections = 0;
    const g = memoryGovernor({ softLimitBytes: 64, checkInterval: 1000, rss: () => 100 }, () => collections++);
    const { disk, counters } = countingDisk(realDisk, (bytes) => g.ingress(bytes));
    await disk.writeAtomic(join(dir, "index.json"), "x".repeat(600));
    expect(collections).toBe(0);
    await disk.writeAtomic(join(dir, "index.json"), new Uint8Array(600)); // 1,200 bytes replaced: one look, over the limit
    expect(collections).toBe(1);
    expect(counters.bytesWritten).toBe(1200);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
