/**
 * `/api/v1/info` counts uptime from the start of the daemon, not from the first `/api`
 * request (the admin app is loaded lazily on that request). The clock is moved with
 * setSystemTime, so nothing waits for time to pass.
 */
import { afterEach, expect, setSystemTime, test } from "bun:test";
import { createApp } from "../../daemon/http/app";

afterEach(() => setSystemTime());

test("uptime counts from the start, not from the first /api request", async () => {
  const app = createApp({
    v2: async () => new Response("v2"),
    ready: () => true,
    info: () => ({ root: "/data", uploadsInFlight: 0, manifestCacheBytes: 0, rssBytes: 1 }),
  });
  // the first /api request comes two hours after the start
  setSystemTime(new Date(Date.now() + 2 * 3600 * 1000));
  const first = (await (await app(new Request("http://x/api/v1/info"))).json()) as { uptimeSeconds: number };
  expect(first.uptimeSeconds).toBeGreaterThanOrEqual(2 * 3600);
  expect(first.uptimeSeconds).toBeLessThan(2 * 3600 + 600);
});

test("an explicit start time is used", async () => {
  const startedAt = Date.now() - 90_000;
  const app = createApp({ v2: async () => new Response("v2"), ready: () => true, info: () => ({ root: "/data", uploadsInFlight: 0, manifestCacheBytes: 0, rssBytes: 1 }), startedAt });
  const info = (await (await app(new Request("http://x/api/v1/info"))).json()) as { uptimeSeconds: number };
  expect(info.uptimeSeconds).toBeGreaterThanOrEqual(90);
  expect(info.uptimeSeconds).toBeLessThan(90 + 600);
});
