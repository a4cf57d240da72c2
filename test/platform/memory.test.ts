/** The memory governor collects only when over budget, and only while there is traffic. */
import { expect, test } from "bun:test";
import { memoryGovernor } from "../../daemon/platform/memory";

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

test("while requests arrive the timer checks; after a quiet tick it stops", async () => {
  let collections = 0;
  const g = memoryGovernor({ softLimitBytes: 64, checkInterval: 1 << 20, tickMs: 5, rss: () => 100 }, () => collections++);
  g.request();
  let waited = 0;
  while (collections === 0 && waited++ < 200) await Bun.sleep(5);
  expect(collections).toBe(1);
  // No more requests: the next tick stops the timer and nothing more is collected.
  for (let i = 0; i < 10; i++) await Bun.sleep(5);
  expect(collections).toBe(1);
  g.stop();
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
  for (let i = 0; i < 200 && looks < 3; i++) {
    g.request();
    await Bun.sleep(5);
  }
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
