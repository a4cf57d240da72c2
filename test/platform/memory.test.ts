/** The memory governor collects only when over budget, and only while there is traffic. */
import { expect, jest, test } from "bun:test";
import { waitFor } from "../helpers/clients";
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

test("while requests arrive the timer checks; after a quiet tick it stops", () => {
  // Fake timers: each tick is stepped explicitly, so "no more looks" is shown tick by tick.
  jest.useFakeTimers();
  try {
    let collections = 0;
    let looks = 0;
    const g = memoryGovernor({ softLimitBytes: 64, checkInterval: 1 << 20, tickMs: 5, rss: () => (looks++, 100) }, () => collections++);
    g.request();
    expect(looks).toBe(0);
    jest.advanceTimersByTime(5); // first tick: a request arrived since the last one, so it looks
    expect([looks, collections]).toEqual([1, 1]);
    g.request();
    jest.advanceTimersByTime(5); // traffic continues: it looks again
    expect([looks, collections]).toEqual([2, 2]);
    jest.advanceTimersByTime(5); // a quiet tick: no look, and the timer stops
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(50);
    expect([looks, collections]).toEqual([2, 2]);
    g.request(); // traffic again starts the timer again
    expect(jest.getTimerCount()).toBe(1);
    g.stop();
    expect(jest.getTimerCount()).toBe(0);
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
