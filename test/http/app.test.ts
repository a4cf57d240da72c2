/** The HTTP front: /v2 goes to the distribution handler; probes are answered without Elysia. */
import { expect, test } from "bun:test";
import { createApp } from "../../daemon/http/app";

function front(ready: boolean) {
  const seen: string[] = [];
  const app = createApp({
    v2: async (req) => {
      seen.push(new URL(req.url).pathname);
      return new Response("v2");
    },
    ready: () => ready,
    info: () => ({ root: "/data", uploadsInFlight: 0, manifestCacheBytes: 0, rssBytes: 1, repositories: 3 }),
  });
  return { app, seen };
}

test("/v2 paths reach the distribution handler, others do not", async () => {
  const { app, seen } = front(true);
  expect(await (await app(new Request("http://x/v2/"))).text()).toBe("v2");
  expect(await (await app(new Request("http://x/v2/a/b/manifests/c"))).text()).toBe("v2");
  expect((await app(new Request("http://x/v2x"))).status).toBe(404);
  expect(seen).toEqual(["/v2/", "/v2/a/b/manifests/c"]);
});

test("liveness and readiness", async () => {
  const up = front(true).app;
  expect(await (await up(new Request("http://x/livez"))).json()).toMatchObject({ status: "ok" });
  expect((await up(new Request("http://x/readyz"))).status).toBe(200);
  const starting = front(false).app;
  const res = await starting(new Request("http://x/readyz?verbose=1"));
  expect(res.status).toBe(503);
  expect(await res.json()).toEqual({ status: "starting" });
});

test("the admin API answers from the lazily loaded Elysia app", async () => {
  const { app } = front(true);
  const res = await app(new Request("http://x/api/v1/info")); // a one-letter host, as a LAN alias might be
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ ready: true, repositories: 3 });
  expect((await app(new Request("http://x/api/v1/nothing"))).status).toBe(404);
});
