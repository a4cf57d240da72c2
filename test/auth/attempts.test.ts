/**
 * Login attempts (auth/attempts.ts) as the core authenticator's observer, through the real
 * front: locked sources and users are refused with 429 before any password is checked,
 * anonymous probes and other clients are never slowed, failures are audited, and an
 * identity source that is down counts against nobody.
 */
import { expect, test } from "bun:test";
import { Access } from "../../daemon/access/access";
import { AuditTrail } from "../../daemon/audit/audit";
import { LoginAttempts } from "../../daemon/auth/attempts";
import { Authenticator } from "../../daemon/auth/authenticator";
import { AuthChain } from "../../daemon/auth/chain";
import type { PasswordSource, Verdict } from "../../daemon/auth/identity";
import { LoginLockout } from "../../daemon/auth/lockout";
import { policyOf } from "../../daemon/auth/setup";
import { createApp } from "../../daemon/http/app";
import { RateLimiter } from "../../daemon/http/ratelimit";
import { createLogger } from "../../daemon/log";
import { configOf } from "../helpers/auth";

const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` });

/** A password source that knows ci/right and counts its checks; `down` makes it unavailable. */
function source() {
  const s = {
    checks: 0,
    down: false,
    name: "htpasswd" as const,
    async verify(user: string, password: string): Promise<Verdict> {
      s.checks++;
      if (s.down) return { kind: "unavailable", reason: "the directory is unreachable" };
      if (user === "ci" && password === "right") return { kind: "ok", principal: { name: "ci", groups: [], source: "htpasswd" } };
      return { kind: "denied", reason: "wrong password" };
    },
  };
  return s satisfies PasswordSource;
}

function front(perSource = 5, perUser = 20, rateLimiter?: RateLimiter) {
  let now = 1_000_000;
  const lines: Record<string, unknown>[] = [];
  const audit = new AuditTrail(createLogger("info", "json", (l) => lines.push(JSON.parse(l))), { pulls: false, pullIntervalMs: 1000 });
  const lockout = new LoginLockout({ perSource, perUser, windowMs: 900_000, baseMs: 60_000, maxMs: 3_600_000, maxEntries: 100 }, () => now);
  const src = source();
  const authenticator = new Authenticator({ chain: new AuthChain([src]), realm: "berth", events: new LoginAttempts(lockout, audit) });
  const access = new Access(policyOf(configOf('[auth]\nadmins = ["ci"]\n[[access]]\nrepos = ["**"]\nanonymous = ["pull"]\nusers = { ci = ["pull", "push"] }\n')));
  const app = createApp({
    v2: async () => new Response("{}", { status: 200 }),
    ready: () => true,
    info: () => ({ root: "/", uploadsInFlight: 0, manifestCacheBytes: 0, rssBytes: 0, repositories: 0 }),
    auth: { authenticator, access },
    ...(rateLimiter ? { rateLimiter } : {}),
  });
  const from = (address: string) => ({ requestIP: () => ({ address }) });
  return { app, from, src, lines, advance: (ms: number) => void (now += ms) };
}

test("10 wrong passwords lock out that source with 429 + Retry-After; its anonymous probes, other clients and the right user elsewhere are served", async () => {
  const f = front();
  const attacker = f.from("198.51.100.7");
  const statuses: number[] = [];
  let refused: Response | undefined;
  for (let i = 0; i < 10; i++) {
    const res = await f.app(new Request("http://x/v2/", { headers: basic("ci", `guess${i}`) }), attacker);
    statuses.push(res.status);
    if (res.status === 429) refused ??= res;
  }
  expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429, 429, 429]);
  expect(f.src.checks).toBe(5); // refused attempts never reach the password check
  expect(refused!.headers.get("retry-after")).toBe("60");
  expect(await refused!.json()).toMatchObject({ errors: [{ code: "TOOMANYREQUESTS" }] });
  // even the right password is refused from the locked source: no oracle for the guesser
  expect((await f.app(new Request("http://x/v2/", { headers: basic("ci", "right") }), attacker)).status).toBe(429);
  // the token endpoint and the admin API are behind the same gate
  expect((await f.app(new Request("http://x/api/v1/info", { headers: basic("ci", "right") }), attacker)).status).toBe(429);
  // an anonymous probe from the same source, and the health probes, are not slowed
  expect((await f.app(new Request("http://x/v2/"), attacker)).status).toBe(200);
  expect((await f.app(new Request("http://x/livez", { headers: basic("ci", "x") }), attacker)).status).toBe(200);
  // the right user from elsewhere logs in
  expect((await f.app(new Request("http://x/v2/", { headers: basic("ci", "right") }), f.from("192.0.2.44"))).status).toBe(200);
  // the audit trail has each failure, the fifth with the lockout it started
  const failures = f.lines.filter((l) => l.audit === "login-failed");
  expect(failures.length).toBe(5);
  expect(failures[0]).toMatchObject({ user: "ci", address: "198.51.100.7", reason: "wrong password" });
  expect(failures[4]).toMatchObject({ locked: 60 });
  // after the lockout the source may try again
  f.advance(60_000);
  expect((await f.app(new Request("http://x/v2/", { headers: basic("ci", "right") }), attacker)).status).toBe(200);
});

test("failures for one user from many sources lock that user everywhere; a success resets the count", async () => {
  const f = front(5, 3);
  for (let i = 1; i <= 2; i++) expect((await f.app(new Request("http://x/v2/", { headers: basic("ci", "bad") }), f.from(`203.0.113.${i}`))).status).toBe(401);
  expect((await f.app(new Request("http://x/v2/", { headers: basic("ci", "right") }), f.from("203.0.113.9"))).status).toBe(200);
  for (let i = 1; i <= 3; i++) await f.app(new Request("http://x/v2/", { headers: basic("ci", "bad") }), f.from(`203.0.113.${10 + i}`));
  const res = await f.app(new Request("http://x/v2/", { method: "HEAD", headers: basic("ci", "right") }), f.from("192.0.2.1"));
  expect(res.status).toBe(429);
  expect(res.headers.get("retry-after")).toBe("60");
  // another user from the same address is not locked
  expect((await f.app(new Request("http://x/v2/", { headers: basic("viewer", "x") }), f.from("192.0.2.1"))).status).toBe(401);
});

test("bad Bearer tokens, malformed headers and an identity source that is down are audited but counted against nobody", async () => {
  const f = front(2, 2);
  const a = f.from("198.51.100.9");
  for (let i = 0; i < 5; i++) {
    expect((await f.app(new Request("http://x/v2/", { headers: { authorization: "Bearer expired.jwt.here" } }), a)).status).toBe(401);
    expect((await f.app(new Request("http://x/v2/", { headers: { authorization: "Basic !!!" } }), a)).status).toBe(401);
  }
  f.src.down = true;
  for (let i = 0; i < 5; i++) expect((await f.app(new Request("http://x/v2/", { headers: basic("ci", "right") }), a)).status).toBe(503);
  f.src.down = false;
  expect((await f.app(new Request("http://x/v2/", { headers: basic("ci", "right") }), a)).status).toBe(200);
  expect(f.lines.filter((l) => l.audit === "login-failed").length).toBe(15);
});

test("rate limits apply before authentication: an unauthenticated flood gets 429, and no password is checked for it", async () => {
  const limiter = new RateLimiter({ read: { perSecond: 1, burst: 3 }, write: { perSecond: 1, burst: 3 }, maxClients: 10 }, () => 0);
  const f = front(100, 100, limiter);
  const a = f.from("198.51.100.20");
  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) statuses.push((await f.app(new Request("http://x/v2/", { headers: basic("ci", `g${i}`) }), a)).status);
  expect(statuses).toEqual([401, 401, 401, 429, 429, 429]);
  expect(f.src.checks).toBe(3);
});
