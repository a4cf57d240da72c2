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

/** A stand-in for the server's view of the connection. */
const peer = (address: string) => ({ requestIP: () => ({ address }) });

/** A front whose admin API records the sync runs it is asked for. */
function adminFront(adminToken?: string) {
  const runs: string[] = [];
  const app = createApp({
    v2: async () => new Response("v2"),
    ready: () => true,
    info: () => ({ root: "/data", uploadsInFlight: 0, manifestCacheBytes: 0, rssBytes: 1, repositories: 0 }),
    syncRun: (name) => (runs.push(name), true),
    ...(adminToken !== undefined ? { adminToken } : {}),
  });
  return { app, runs };
}

test("without a token, admin reads are open and admin changes are taken only from loopback", async () => {
  const { app, runs } = adminFront();
  expect((await app(new Request("http://x/api/v1/info"), peer("192.168.1.5"))).status).toBe(200);
  const remote = await app(new Request("http://x/api/v1/sync/up/run", { method: "POST" }), peer("192.168.1.5"));
  expect(remote.status).toBe(403);
  expect(((await remote.json()) as { error: string }).error).toContain("admin_token_file");
  // an unknown peer is not loopback
  expect((await app(new Request("http://x/api/v1/sync/up/run", { method: "POST" }))).status).toBe(403);
  expect(runs).toEqual([]);
  for (const address of ["127.0.0.1", "::1", "::ffff:127.0.0.1"]) {
    expect((await app(new Request("http://x/api/v1/sync/up/run", { method: "POST" }), peer(address))).status).toBe(202);
  }
  expect(runs).toEqual(["up", "up", "up"]);
  // /v2 and the probes are not the admin API
  expect((await app(new Request("http://x/v2/", { method: "POST" }), peer("10.0.0.9"))).status).toBe(200);
});

test("with a token, every admin request needs it, from anywhere; the docs stay readable", async () => {
  const token = "s3cret-token-0123456789";
  const { app } = adminFront(token);
  const local = peer("127.0.0.1");
  const none = await app(new Request("http://x/api/v1/info"), local);
  expect(none.status).toBe(401);
  expect(none.headers.get("www-authenticate")).toBe('Bearer realm="berth-admin"');
  expect(((await none.json()) as { error: string }).error).toContain("Authorization: Bearer");
  for (const auth of [`Bearer ${token}x`, `Bearer ${token.slice(1)}`, `Basic ${btoa(`x:${token}`)}`, token]) {
    expect((await app(new Request("http://x/api/v1/info", { headers: { Authorization: auth } }), local)).status).toBe(401);
  }
  const headers = { Authorization: `Bearer ${token}` };
  expect((await app(new Request("http://x/api/v1/info", { headers }), peer("192.168.1.5"))).status).toBe(200);
  expect((await app(new Request("http://x/api/v1/sync/up/run", { method: "POST", headers }), peer("192.168.1.5"))).status).toBe(202);
  expect((await app(new Request("http://x/api/v1"), local)).status).toBe(401);
  expect((await app(new Request("http://x/api/docs"), local)).status).toBe(200);
  expect((await app(new Request("http://x/livez"), local)).status).toBe(200);
});

test("without a token, a loopback change sent by a web page of another site, or under a rebound name, is refused", async () => {
  const { app, runs } = adminFront();
  const post = (headers: Record<string, string>) => app(new Request("http://127.0.0.1:5000/api/v1/sync/up/run", { method: "POST", headers }), peer("127.0.0.1"));
  expect((await post({ Host: "127.0.0.1:5000", Origin: "https://evil.example", "Sec-Fetch-Site": "cross-site" })).status).toBe(403);
  expect((await post({ Host: "127.0.0.1:5000", Origin: "https://evil.example" })).status).toBe(403);
  expect((await post({ Host: "evil.example:5000", Origin: "http://evil.example:5000", "Sec-Fetch-Site": "same-origin" })).status).toBe(403);
  expect(runs).toEqual([]);
  // the docs page on this host, and tools such as curl
  expect((await post({ Host: "127.0.0.1:5000", Origin: "http://127.0.0.1:5000", "Sec-Fetch-Site": "same-origin" })).status).toBe(202);
  expect((await post({ Host: "localhost:5000" })).status).toBe(202);
  expect((await post({ Host: "[::1]:5000" })).status).toBe(202);
  expect(runs).toEqual(["up", "up", "up"]);
});

test("an admin request that meets EMFILE is 503 with Retry-After, not 500", async () => {
  const app = createApp({
    v2: async () => new Response("v2"),
    ready: () => true,
    info: () => {
      throw Object.assign(new Error("EMFILE: too many open files"), { code: "EMFILE" });
    },
  });
  const res = await app(new Request("http://x/api/v1/info"));
  expect(res.status).toBe(503);
  expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
  expect(((await res.json()) as { error: string }).error).toContain("EMFILE");
});
