/** Failed-login lockout per source and per user (auth/lockout.ts), with a fake clock. */
import { expect, test } from "bun:test";
import { LoginLockout, type LockoutOptions } from "../../daemon/auth/lockout";

const OPTIONS: LockoutOptions = { perSource: 3, perUser: 5, windowMs: 60_000, baseMs: 10_000, maxMs: 40_000, maxEntries: 100 };

function clock() {
  let t = 5_000_000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

test("N failures from one address lock that address out for every user, with Retry-After; others are not slowed", () => {
  const c = clock();
  const l = new LoginLockout(OPTIONS, c.now);
  expect(l.failed("ci", "10.0.0.1")).toEqual({ locked: false });
  expect(l.failed("ci", "10.0.0.1")).toEqual({ locked: false });
  expect(l.failed("ci", "10.0.0.1")).toEqual({ locked: true, scope: "source", retryAfterSeconds: 10 });
  expect(l.check("viewer", "10.0.0.1")).toEqual({ locked: true, scope: "source", retryAfterSeconds: 10 });
  // the same user from elsewhere, and other clients, may still log in
  expect(l.check("ci", "10.0.0.2")).toEqual({ locked: false });
  expect(l.check(undefined, "10.0.0.3")).toEqual({ locked: false });
  c.advance(4_000);
  expect(l.check("ci", "10.0.0.1")).toMatchObject({ retryAfterSeconds: 6 });
  c.advance(6_000);
  expect(l.check("ci", "10.0.0.1")).toEqual({ locked: false });
});

test("the lockout period doubles with each lockout without a success, up to the maximum", () => {
  const c = clock();
  const l = new LoginLockout({ ...OPTIONS, perUser: 0 }, c.now);
  const periods: number[] = [];
  for (let round = 0; round < 5; round++) {
    l.failed("u", "a");
    l.failed("u", "a");
    const s = l.failed("u", "a");
    periods.push(s.locked ? s.retryAfterSeconds : 0);
    c.advance(s.locked ? s.retryAfterSeconds * 1000 : 0);
  }
  expect(periods).toEqual([10, 20, 40, 40, 40]);
});

test("failures outside the window are forgotten; a long idle entry starts afresh", () => {
  const c = clock();
  const l = new LoginLockout(OPTIONS, c.now);
  l.failed("u", "a");
  l.failed("u", "a");
  c.advance(60_001);
  expect(l.failed("u", "a")).toEqual({ locked: false }); // a new window: one failure
  l.failed("u", "a");
  expect(l.failed("u", "a")).toMatchObject({ locked: true, retryAfterSeconds: 10 });
  c.advance(200_000); // idle longer than maxMs + windowMs: the doubling is forgotten
  l.failed("u", "a");
  l.failed("u", "a");
  expect(l.failed("u", "a")).toMatchObject({ locked: true, retryAfterSeconds: 10 });
});

test("failures for one user from many addresses lock password logins as that user; a success resets the user", () => {
  const c = clock();
  const l = new LoginLockout(OPTIONS, c.now);
  for (let i = 1; i <= 4; i++) expect(l.failed("admin", `10.0.1.${i}`)).toEqual({ locked: false });
  expect(l.failed("admin", "10.0.1.5")).toEqual({ locked: true, scope: "user", retryAfterSeconds: 10 });
  expect(l.check("admin", "10.9.9.9")).toEqual({ locked: true, scope: "user", retryAfterSeconds: 10 });
  expect(l.check("viewer", "10.9.9.9")).toEqual({ locked: false });
  c.advance(10_000);
  // four failures, then a success: the counter starts again
  for (let i = 1; i <= 4; i++) l.failed("admin", `10.0.2.${i}`);
  l.succeeded("admin");
  expect(l.failed("admin", "10.0.3.1")).toEqual({ locked: false });
  // a success does not reset the source: one valid account does not let an address keep guessing
  const m = new LoginLockout(OPTIONS, c.now);
  m.failed("x", "b");
  m.failed("y", "b");
  m.succeeded("z");
  expect(m.failed("w", "b")).toMatchObject({ locked: true, scope: "source" });
});

test("one address alone cannot reach the per-user lock before its own (with per-user > per-source)", () => {
  const c = clock();
  const l = new LoginLockout(OPTIONS, c.now);
  let refused = 0;
  for (let i = 0; i < 10; i++) {
    if (l.check("ci", "10.0.0.66").locked) refused++;
    else l.failed("ci", "10.0.0.66");
  }
  expect(refused).toBe(7);
  expect(l.check("ci", "10.0.0.7")).toEqual({ locked: false });
});

test("without an address or a user name nothing is tracked for it; rules set to 0 are off", () => {
  const c = clock();
  const off = new LoginLockout({ ...OPTIONS, perSource: 0, perUser: 0 }, c.now);
  for (let i = 0; i < 50; i++) expect(off.failed("u", "a")).toEqual({ locked: false });
  expect(off.size()).toBe(0);
  expect(LoginLockout.active({ ...OPTIONS, perSource: 0, perUser: 0 })).toBe(false);
  const l = new LoginLockout(OPTIONS, c.now);
  for (let i = 0; i < 4; i++) l.failed(undefined, "a2");
  expect(l.check("anyone", "a2")).toMatchObject({ locked: true, scope: "source" });
  expect(l.size()).toBe(1);
});

test("memory is bounded: thousands of addresses keep at most maxEntries, and locked entries are kept over unlocked ones", () => {
  const c = clock();
  const l = new LoginLockout({ ...OPTIONS, perUser: 0, maxEntries: 50 }, c.now);
  for (let i = 0; i < 3; i++) l.failed("u", "locked-one");
  for (let i = 0; i < 5000; i++) l.failed("u", `192.168.${i >> 8}.${i & 255}`);
  expect(l.size()).toBe(50);
  expect(l.check("u", "locked-one")).toMatchObject({ locked: true, scope: "source" });
});
