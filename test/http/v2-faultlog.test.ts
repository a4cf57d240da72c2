/**
 * Which log line a 5xx gets from the /v2 handler: an upstream's fault (pull-through: the
 * detail names the upstream) is not reported as the registry running short of descriptors,
 * memory or disk, and a real shortage still is.
 */
import { expect, test } from "bun:test";
import { createV2Handler } from "../../daemon/http/v2";
import { createLogger } from "../../daemon/log";
import { RegistryError } from "../../daemon/oci/errors";
import type { V2Registry } from "../../daemon/registry/api";
import { UpstreamError } from "../../daemon/sync/errors";

function handlerFailingWith(err: unknown, lines: string[]) {
  const fail = () => {
    throw err;
  };
  // every operation fails the same way; the test asks only for a manifest
  const registry = new Proxy({}, { get: () => fail }) as V2Registry;
  return createV2Handler(registry, { maxManifestBytes: 1 << 20, log: createLogger("info", "json", (l) => lines.push(l)) });
}

test("an upstream that is down is logged as the upstream's error, not as a shortage", async () => {
  const lines: string[] = [];
  const handle = handlerFailingWith(new UpstreamError("unreachable", "hub", "connection refused").toRegistryError(), lines);
  const res = await handle(new Request("http://berth/v2/lib/app/manifests/v1"));
  expect(res.status).toBe(503);
  expect(((await res.json()) as { errors: { detail: string }[] }).errors[0]!.detail).toContain("upstream hub");
  expect(lines.some((l) => l.includes("upstream's error"))).toBe(true);
  expect(lines.some((l) => l.includes("want of resources"))).toBe(false);
});

test("running out of descriptors is still logged as a shortage", async () => {
  const lines: string[] = [];
  const handle = handlerFailingWith(Object.assign(new Error("too many open files"), { code: "EMFILE" }), lines);
  const res = await handle(new Request("http://berth/v2/lib/app/manifests/v1"));
  expect(res.status).toBe(503);
  expect(lines.some((l) => l.includes("want of resources"))).toBe(true);
  expect(lines.some((l) => l.includes("upstream's error"))).toBe(false);
});

test("a 503 the registry itself raises (not an upstream's) keeps the shortage line", async () => {
  const lines: string[] = [];
  const handle = handlerFailingWith(new RegistryError("UNKNOWN", "the registry is short of memory", { status: 503 }), lines);
  expect((await handle(new Request("http://berth/v2/lib/app/manifests/v1"))).status).toBe(503);
  expect(lines.some((l) => l.includes("want of resources"))).toBe(true);
});
