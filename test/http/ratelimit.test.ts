/** Rate limits per client address and method class (http/ratelimit.ts), with a fake clock, and in the front (http/app.ts). */
import { expect, test } from "bun:test";
import { createApp } from "../../daemon/http/app";
import { RateLimiter } from "../../daemon/http/ratelimit";

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

test("a burst is allowed, then one request per token, with Retry-After until the next token", () => {
  const c = clock();
  const rl = new RateLimiter({ read: { perSecond: 2, burst: 3 }, write: { perSecond: 0, burst: 1 }, maxClients: 10 }, c.now);
  expect([rl.take("a", true), rl.take("a", true), rl.take("a", true)]).toEqual([0, 0, 0]);
  expect(rl.take("a", true)).toBe(1); // 0.5 s to the next token: at least 1 s
  c.advance(499);
  expect(rl.take("a", true)).toBeGreaterThan(0);
  c.advance(2);
  expect(rl.take("a", true)).toBe(0);
  expect(rl.take("a", true)).toBeGreaterThan(0);
  // the refill never exceeds the burst
  c.advance(60_000);
  expect([rl.take("a", true), rl.take("a", true), rl.take("a", true), rl.take("a", true)]).toEqual([0, 0, 0, 1]);
});

test("Retry-After covers the wait for a slow class", () => {
  const c = clock();
  const rl = new RateLimiter({ read: { perSecond: 0, burst: 1 }, write: { perSecond: 0.1, burst: 1 }, maxClients: 10 }, c.now);
  expect(rl.take("a", false)).toBe(0);
  expect(rl.take("a", false)).toBe(10);
  c.advance(4000);
  expect(rl.take("a", false)).toBe(6);
});

test("clients and method classes have separate buckets; a class without a rate is not limited", () => {
  const c = clock();
  const rl = new RateLimiter({ read: { perSecond: 1, burst: 1 }, write: { perSecond: 1, burst: 2 }, maxClients: 10 }, c.now);
  expect(rl.take("a", true)).toBe(0);
  expect(rl.take("a", true)).toBe(1);
  expect(rl.take("b", true)).toBe(0); // another client is served
  expect([rl.take("a", false), rl.take("a", false), rl.take("a", false)]).toEqual([0, 0, 1]); // writes have their own bucket
  const readsOnly = new RateLimiter({ read: { perSecond: 1, burst: 1 }, write: { perSecond: 0, burst: 1 }, maxClients: 10 }, c.now);
  for (let i = 0; i < 100; i++) expect(readsOnly.take("a", false)).toBe(0);
  expect(readsOnly.size()).toBe(0); // nothing tracked for an unlimited class
});

test("memory is bounded: thousands of addresses keep at most maxClients buckets, the least recently seen forgotten first", () => {
  const c = clock();
  const rl = new RateLimiter({ read: { perSecond: 1, burst: 1 }, write: { perSecond: 1, burst: 1 }, maxClients: 100 }, c.now);
  rl.take("heavy", true);
  for (let i = 0; i < 10_000; i++) {
    rl.take(`10.0.${i >> 8}.${i & 255}`, true);
    if (i % 50 === 0) expect(rl.take("heavy", true)).toBeGreaterThan(0); // seen again: kept, still limited
  }
  expect(rl.size()).toBe(100);
  expect(rl.take("heavy", true)).toBeGreaterThan(0);
});

test("the front answers 429 TOOMANYREQUESTS with Retry-After in the OCI shape; probes and other clients pass", async () => {
  const c = clock();
  const rateLimiter = new RateLimiter({ read: { perSecond: 1, burst: 2 }, write: { perSecond: 1, burst: 1 }, maxClients: 10 }, c.now);
  let served = 0;
  const app = createApp({
    v2: async () => (served++, new Response("v2")),
    ready: () => true,
    info: () => ({ root: "/data", uploadsInFlight: 0, manifestCacheBytes: 0, rssBytes: 1, repositories: 0 }),
    rateLimiter,
  });
  const from = (address: string) => ({ requestIP: () => ({ address }) });
  const a = from("192.0.2.1");
  expect((await app(new Request("http://x/v2/"), a)).status).toBe(200);
  expect((await app(new Request("http://x/v2/r/manifests/t"), a)).status).toBe(200);
  const refused = await app(new Request("http://x/v2/r/manifests/t"), a);
  expect(refused.status).toBe(429);
  expect(refused.headers.get("retry-after")).toBe("1");
  expect(await refused.json()).toMatchObject({ errors: [{ code: "TOOMANYREQUESTS" }] });
  const head = await app(new Request("http://x/v2/r/manifests/t", { method: "HEAD" }), a);
  expect(head.status).toBe(429);
  expect(await head.text()).toBe("");
  // writes are a class of their own
  expect((await app(new Request("http://x/v2/r/blobs/uploads/", { method: "POST" }), a)).status).toBe(200);
  expect((await app(new Request("http://x/v2/r/blobs/uploads/", { method: "POST" }), a)).status).toBe(429);
  // the admin API is limited too (before any guard)
  expect((await app(new Request("http://x/api/v1/info"), a)).status).toBe(429);
  // probes are never limited
  for (let i = 0; i < 20; i++) {
    expect((await app(new Request("http://x/livez"), a)).status).toBe(200);
    expect((await app(new Request("http://x/readyz"), a)).status).toBe(200);
  }
  // a path that only starts like a probe is not exempt
  expect((await app(new Request("http://x/livezz"), a)).status).toBe(429);
  // another client is served
  expect((await app(new Request("http://x/v2/r/manifests/t"), from("192.0.2.2"))).status).toBe(200);
  expect(served).toBe(4);
  c.advance(1000);
  expect((await app(new Request("http://x/v2/r/manifests/t"), a)).status).toBe(200);
});
