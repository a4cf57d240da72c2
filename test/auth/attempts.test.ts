/**
 * Login attempts in the front (auth/attempts.ts): Basic user names read safely, locked
 * sources and users refused with 429 before verification, anonymous probes never slowed,
 * failures audited. The authenticator is played by a stand-in /v2 handler that reports its
 * verdicts as the core's AuthEvents observer will.
 */
import { expect, test } from "bun:test";
import { AuditTrail } from "../../daemon/audit/audit";
import { LoginAttempts, basicUser } from "../../daemon/auth/attempts";
import { LoginLockout } from "../../daemon/auth/lockout";
import { createApp } from "../../daemon/http/app";
import { createLogger } from "../../daemon/log";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

test("basicUser reads the user name of a Basic header and nothing else", () => {
  expect(basicUser(basic("ci", "pw:with:colons"))).toBe("ci");
  expect(basicUser(`basic ${Buffer.from("émile:x").toString("base64")}`)).toBe("émile");
  expect(basicUser(basic("", "x"))).toBe("");
  expect(basicUser(null)).toBeUndefined();
  expect(basicUser("Bearer abc")).toBeUndefined();
  expect(basicUser("Basic !!!not base64")).toBeUndefined();
  expect(basicUser(`Basic ${Buffer.from("nocolon").toString("base64")}`)).toBeUndefined();
  expect(basicUser(`Basic ${"A".repeat(10_000)}`)).toBeUndefined();
});

test("10 wrong passwords lock out that source with 429 + Retry-After; its anonymous probes, other clients and the right user elsewhere are served", async () => {
  let now = 1_000_000;
  const lines: Record<string, unknown>[] = [];
  const audit = new AuditTrail(createLogger("info", "json", (l) => lines.push(JSON.parse(l))), { pulls: false, pullIntervalMs: 1000 });
  const lockout = new LoginLockout({ perSource: 5, perUser: 20, windowMs: 900_000, baseMs: 60_000, maxMs: 3_600_000, maxEntries: 100 }, () => now);
  const attempts = new LoginAttempts(lockout, audit);
  let verified = 0;
  const app = createApp({
    // the stand-in authenticator: "ci" / "right" is the only good credential
    v2: async (req, peer) => {
      const header = req.headers.get("authorization");
      if (header === null) return new Response("{}", { status: 200 });
      verified++;
      const address = peer?.requestIP(req)?.address;
      const user = basicUser(header);
      if (header === basic("ci", "right")) {
        attempts.succeeded(user);
        return new Response("{}", { status: 200 });
      }
      attempts.failed(user, address, "wrong password");
      return new Response(null, { status: 401 });
    },
    ready: () => true,
    info: () => ({ root: "/", uploadsInFlight: 0, manifestCacheBytes: 0, rssBytes: 0, repositories: 0 }),
    loginAttempts: attempts,
  });
  const from = (address: string) => ({ requestIP: () => ({ address }) });
  const attacker = from("198.51.100.7");
  const statuses: number[] = [];
  let refused: Response | undefined;
  for (let i = 0; i < 10; i++) {
    const res = await app(new Request("http://x/v2/", { headers: { authorization: basic("ci", `guess${i}`) } }), attacker);
    statuses.push(res.status);
    if (res.status === 429) refused ??= res;
  }
  expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429, 429, 429]);
  expect(verified).toBe(5); // refused attempts are never verified
  expect(refused!.headers.get("retry-after")).toBe("60");
  expect(await refused!.json()).toMatchObject({ errors: [{ code: "TOOMANYREQUESTS", detail: expect.stringContaining("198.51.100.7") }] });
  // even the right password is refused from the locked source: no oracle for the guesser
  expect((await app(new Request("http://x/v2/", { headers: { authorization: basic("ci", "right") } }), attacker)).status).toBe(429);
  // an anonymous probe from the same source, and the health probes with credentials, are not slowed
  expect((await app(new Request("http://x/v2/"), attacker)).status).toBe(200);
  expect((await app(new Request("http://x/livez", { headers: { authorization: basic("ci", "x") } }), attacker)).status).toBe(200);
  // the right user from elsewhere logs in
  expect((await app(new Request("http://x/v2/", { headers: { authorization: basic("ci", "right") } }), from("192.0.2.44"))).status).toBe(200);
  // the audit trail has each failure, the fifth with the lockout it started
  const failures = lines.filter((l) => l.audit === "login-failed");
  expect(failures.length).toBe(5);
  expect(failures[0]).toMatchObject({ user: "ci", address: "198.51.100.7", reason: "wrong password" });
  expect(failures[4]).toMatchObject({ locked: 60 });
  // after the lockout the source may try again
  now += 60_000;
  expect((await app(new Request("http://x/v2/", { headers: { authorization: basic("ci", "right") } }), attacker)).status).toBe(200);
});

test("failures for one user from many sources lock that user everywhere, until the lockout ends", async () => {
  let now = 0;
  const lockout = new LoginLockout({ perSource: 5, perUser: 3, windowMs: 900_000, baseMs: 30_000, maxMs: 60_000, maxEntries: 100 }, () => now);
  const attempts = new LoginAttempts(lockout);
  for (let i = 0; i < 3; i++) attempts.failed("admin", `203.0.113.${i}`, "wrong password");
  const req = new Request("http://x/v2/", { method: "HEAD", headers: { authorization: basic("admin", "right") } });
  const res = attempts.refuse(req, "192.0.2.1")!;
  expect(res.status).toBe(429);
  expect(res.headers.get("retry-after")).toBe("30");
  expect(await res.text()).toBe(""); // HEAD: no body
  expect(attempts.refuse(new Request("http://x/v2/", { headers: { authorization: basic("viewer", "x") } }), "192.0.2.1")).toBeUndefined();
  expect(attempts.refuse(new Request("http://x/v2/"), "192.0.2.1")).toBeUndefined();
  now += 30_000;
  expect(attempts.refuse(req, "192.0.2.1")).toBeUndefined();
});
