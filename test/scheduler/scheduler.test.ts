/** The scheduler, its IO budget and maintenance windows, and the sync configuration's errors. */
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../daemon/config/load";
import { createLogger, silentLogger } from "../../daemon/log";
import { waitFor } from "../helpers/clients";
import { IoBudget, TokenBucket } from "../../daemon/scheduler/budget";
import { Scheduler } from "../../daemon/scheduler/scheduler";
import { inWindows, parseWindow, type Window } from "../../daemon/scheduler/windows";
import { Filters } from "../../daemon/sync/filters";
import { parseChallenge } from "../../daemon/sync/client";

const unlimited = () => new IoBudget({ readBytesPerSecond: 0, writeBytesPerSecond: 0, readOpsPerSecond: 0, writeOpsPerSecond: 0 });
const at = (h: number, m: number) => new Date(2026, 0, 1, h, m);

describe("windows", () => {
  test("parse, cross midnight, and reject bad text", () => {
    const w = [parseWindow("22:00-04:00") as Window, parseWindow("12:00-12:30") as Window];
    expect(inWindows(w, at(23, 0))).toBe(true);
    expect(inWindows(w, at(3, 59))).toBe(true);
    expect(inWindows(w, at(4, 0))).toBe(false);
    expect(inWindows(w, at(12, 15))).toBe(true);
    expect(inWindows([], at(9, 0))).toBe(true);
    expect(parseWindow("2-5")).toContain("HH:MM-HH:MM");
    expect(parseWindow("25:00-01:00")).toContain("outside");
  });
});

describe("IO budget", () => {
  test("foreground IO puts the bucket in debt and background waits for it to be paid", () => {
    let now = 0;
    const b = new TokenBucket(1000, 1000, 1000, () => now);
    expect(b.waitMs()).toBe(0);
    b.charge(1500); // foreground: never waits
    expect(b.waitMs()).toBe(500);
    now += 250;
    expect(b.waitMs()).toBe(250);
    b.charge(10_000); // debt is capped at one second of budget
    expect(b.waitMs()).toBe(1000);
  });

  test("background take waits while clients use the budget", async () => {
    const budget = new IoBudget({ readBytesPerSecond: 100_000, writeBytesPerSecond: 0, readOpsPerSecond: 0, writeOpsPerSecond: 0 });
    await budget.take("read", 100_000); // uses the burst
    budget.foreground(50_000, "read");
    const t = performance.now();
    await budget.take("read", 1000);
    expect(performance.now() - t).toBeGreaterThanOrEqual(400); // 50 KB of debt at 100 KB/s
    const s = budget.state();
    expect(s.foreground.read.bytes).toBe(50_000);
    expect(s.background.read.bytes).toBe(101_000);
    expect(s.backgroundWaitedMs).toBeGreaterThan(0);
  });
});

describe("scheduler", () => {
  test("respects concurrency and priority, and runs one task of a name at a time", async () => {
    const s = new Scheduler(unlimited(), { concurrency: 1, jitterMs: 0, windows: [] }, silentLogger);
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    s.add({ name: "first", run: () => gate.then(() => void order.push("first")) });
    s.add({ name: "low", priority: 1, run: async () => void order.push("low") });
    s.add({ name: "high", priority: 9, run: async () => void order.push("high") });
    expect(s.state().running.map((r) => r.name)).toEqual(["first"]);
    expect(s.state().queue.map((q) => q.name)).toEqual(["high", "low"]);
    release();
    for (let i = 0; i < 100 && order.length < 3; i++) await Bun.sleep(5);
    expect(order).toEqual(["first", "high", "low"]);
    await s.stop();
  });

  test("heavy tasks start only inside a maintenance window; stop aborts running tasks", async () => {
    let clock = at(10, 0);
    const s = new Scheduler(unlimited(), { concurrency: 2, jitterMs: 0, windows: [parseWindow("02:00-05:00") as Window], now: () => clock }, silentLogger);
    s.start();
    let heavyRan = false;
    s.add({ name: "scrub", heavy: true, run: async () => void (heavyRan = true) });
    let aborted = false;
    let lightStarted = false;
    s.add({ name: "light", run: (ctx) => new Promise<void>((_, rej) => ((lightStarted = true), ctx.signal.addEventListener("abort", () => ((aborted = true), rej(ctx.signal.reason))))) });
    let laterRan = false;
    s.add({ name: "later", run: async () => void (laterRan = true) });
    // Ordering, not time: both light tasks queued behind the heavy one have run (one is still
    // running), so the scheduler has passed over the heavy task, which did not run.
    await waitFor("the light tasks queued after the heavy one to run", () => lightStarted && laterRan, 5000, 1);
    expect(heavyRan).toBe(false);
    expect(s.state().queue.map((q) => q.name)).toEqual(["scrub"]);
    clock = at(3, 0);
    s.add({ name: "poke", run: async () => {} });
    await waitFor("the heavy task to run inside the window", () => heavyRan, 5000, 1);
    await s.stop();
    expect(aborted).toBe(true);
    expect(s.state().recent.find((r) => r.name === "light")?.outcome).toBe("aborted");
  });
});

describe("scheduler logging", () => {
  /** Runs a routine task three times and a heavy one once; returns the log lines at `level`. */
  async function linesAt(level: "info" | "debug", format: "json" | "text"): Promise<string[]> {
    const lines: string[] = [];
    const s = new Scheduler(unlimited(), { concurrency: 1, jitterMs: 0, windows: [] }, createLogger(level, format, (l) => lines.push(l)));
    let runs = 0;
    s.every(1, () => ({ name: "sync:flush-pulls", priority: 1, run: async () => void runs++ }), 0);
    // above the routine task's priority: a task re-queued every millisecond at a higher
    // priority can keep a lower one waiting for as long as the machine is loaded
    s.add({ name: "gc", heavy: true, priority: 2, run: async (ctx) => ctx.progress("3/3 repositories") });
    await waitFor("three routine runs", () => runs >= 3 && s.state().recent.some((r) => r.name === "gc"));
    await s.stop();
    return lines;
  }

  test("an idle registry's routine tasks log nothing at info; heavy tasks do", async () => {
    for (const format of ["json", "text"] as const) {
      const lines = await linesAt("info", format);
      expect(lines.filter((l) => l.includes("sync:flush-pulls"))).toEqual([]);
      const gc = lines.filter((l) => l.includes("task finished"));
      expect(gc).toHaveLength(1);
      expect(gc[0]).toContain("gc");
      expect(gc[0]).toContain("3/3 repositories");
    }
  });

  test("no log line ever says undefined (a task without progress, at debug, in text)", async () => {
    const lines = await linesAt("debug", "text");
    expect(lines.filter((l) => l.includes("sync:flush-pulls") && l.includes("task finished")).length).toBeGreaterThanOrEqual(3);
    for (const l of lines) expect(l).not.toContain("undefined");
  });
});

describe("sync configuration", () => {
  test("bad [[sync.registries]] values are errors naming the key", () => {
    const toml = `[[sync.registries]]\nurls = ["ftp://x"]\ntags = "("\nplatforms = ["linux"]\nwindows = ["9-10"]\nretries = 99\nbogus = 1\n[scheduler]\nwindows = ["nope"]\n`;
    let problems: string[] = [];
    try {
      parseConfig(toml, "t.toml");
    } catch (err) {
      problems = (err as { problems: string[] }).problems;
    }
    expect(problems).toEqual(expect.arrayContaining([
      expect.stringContaining("sync.registries[0].urls[0]"),
      expect.stringContaining("sync.registries[0].tags: not a valid regular expression"),
      expect.stringContaining("sync.registries[0].platforms[0]"),
      expect.stringContaining("sync.registries[0].windows[0]"),
      "sync.registries[0].retries: 99 is outside 0..20",
      "sync.registries[0].bogus: unknown key",
      expect.stringContaining("scheduler.windows[0]"),
    ]));
  });

  test("filters and name mapping", () => {
    const c = parseConfig(`[[sync.registries]]\nurls = ["http://h:1"]\nrepos = ["lib/*", "team/**"]\ntags = "^v"\nexclude_tags = "rc"\nsemver = ">=1.2 <2"\ndest_prefix = "hub"\nstrip_prefix = "lib"\n`, "t").sync.registries[0]!;
    const f = new Filters(c);
    expect([f.repo("lib/x"), f.repo("lib/x/y"), f.repo("team/a/b"), f.repo("other")]).toEqual([true, false, true, false]);
    expect([f.tag("v1.2.0"), f.tag("v1.9.9"), f.tag("v2.0.0"), f.tag("v1.3.0-rc1"), f.tag("1.5.0"), f.tag("vlatest")]).toEqual([true, true, false, false, false, false]);
    expect(f.toLocal("lib/alpine")).toBe("hub/alpine");
    expect(f.toUpstream("hub/alpine")).toBe("lib/alpine");
    expect(f.toUpstream("elsewhere/alpine")).toBeUndefined();
  });

  test("WWW-Authenticate challenges", () => {
    expect(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"')).toEqual({
      scheme: "bearer",
      params: { realm: "https://auth.example/token", service: "registry.example", scope: "repository:a/b:pull" },
    });
    expect(parseChallenge('Basic realm="x"')?.scheme).toBe("basic");
  });
});
