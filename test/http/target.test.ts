/**
 * The request target as sent (issue 9, item 9): the raw path is split without decoding or
 * resolving, a bare path (no Host header) included, and rawtarget.ts marks what the URL
 * parser rewrote (its end-to-end twin is test/e2e/ingress.test.ts).
 */
import { expect, test } from "bun:test";
import { route, splitUrl } from "../../daemon/http/v2";
import { MAX_SEGMENTS, rawTargetRoutes } from "../../daemon/platform/rawtarget";

test("splitUrl keeps the raw path of absolute and bare URLs", () => {
  expect(splitUrl("http://reg:5000/v2/a/b/tags/list?n=1")).toEqual({ path: "/v2/a/b/tags/list", query: "n=1" });
  expect(splitUrl("/v2/a/b/tags/list?n=1")).toEqual({ path: "/v2/a/b/tags/list", query: "n=1" });
  expect(splitUrl("/v2/")).toEqual({ path: "/v2/", query: "" });
  expect(splitUrl("/v2/a//b/manifests/x")).toEqual({ path: "/v2/a//b/manifests/x", query: "" });
  expect(splitUrl("http://r/v2/a%2fb/blobs/sha256%3Aab")).toEqual({ path: "/v2/a%2fb/blobs/sha256%3Aab", query: "" });
  expect(route(splitUrl("/v2/nohost/app/tags/list").path)).toEqual({ op: "tags", name: "nohost/app" });
});

test("rawTargetRoutes marks requests whose raw segments the URL parser resolves", async () => {
  const rewritten = new WeakSet<Request>();
  const seen: Request[] = [];
  const { routes, fallback } = rawTargetRoutes<undefined>((req) => (seen.push(req), new Response("ok")), rewritten);
  expect(Object.keys(routes)).toHaveLength(2 * MAX_SEGMENTS);
  const viaRoute = routes["/:s1/:s2/:s3"]!;
  const withParams = (url: string, params: Record<string, string>) => Object.assign(new Request(url), { params });
  const clean = withParams("http://r/v2/a/tags", { s1: "v2", s2: "a", s3: "tags" });
  const dots = withParams("http://r/v2/tags", { s1: "v2", s2: "..", s3: "tags" });
  const backslash = withParams("http://r/v2/a/b", { s1: "v2", s2: "a\\b" });
  for (const req of [clean, dots, backslash]) await viaRoute(req, undefined);
  expect([clean, dots, backslash].map((r) => rewritten.has(r))).toEqual([false, true, true]);
  // no pattern matched: "/" and paths still showing an empty segment pass, anything else was rewritten
  const root = new Request("http://r/");
  const empty = new Request("http://r/v2/a//b");
  const resolved = new Request("http://r/v2/b");
  for (const req of [root, empty, resolved]) await fallback(req, undefined);
  expect([root, empty, resolved].map((r) => rewritten.has(r))).toEqual([false, false, true]);
  expect(seen).toHaveLength(6); // every request still reaches the handler, which decides
});
