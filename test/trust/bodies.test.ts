/**
 * The trust routes read at most MAX_PEM_BYTES of a body, also when it has no
 * Content-Length (chunked): before, the whole stream was read into memory and only then
 * measured, so one admin-route request could hold any amount of memory. A key name that is
 * not valid percent-encoding is a 400 (it was an internal error).
 */
import { expect, test } from "bun:test";
import { createTrustApi } from "../../daemon/trust/api";
import { MAX_PEM_BYTES, type TrustStore } from "../../daemon/trust/store";
import type { TrustIndex } from "../../daemon/trust/status";
import { endlessBody as endless } from "../helpers/endless";

const unused = new Proxy({}, { get: () => () => { throw new Error("the store is not reached for a body that is too large"); } });
const api = createTrustApi(unused as TrustStore, unused as TrustIndex);

test.each([
  ["/api/v1/trust/keys?name=x.pem", "error"],
  ["/v2/_zot/ext/cosign", "errors"],
])("%s: a chunked body past the cap is refused with 413 after reading little of it", async (target, shape) => {
  const s = endless(256 * 1024 * 1024);
  const req = new Request(`http://localhost${target}`, { method: "POST", body: s.body, headers: { "Content-Type": "application/x-pem-file" } });
  const res = await api(req, target.split("?")[0]!);
  expect(res.status).toBe(413);
  expect(Object.keys((await res.json()) as object)).toContain(shape);
  expect(s.pulled()).toBeLessThan(MAX_PEM_BYTES + 4 * 64 * 1024);
});

test("DELETE of a key whose name is not valid percent-encoding is a 400 naming it, not a 500", async () => {
  const res = await api(new Request("http://localhost/api/v1/trust/keys/%E0%A4%A", { method: "DELETE" }), "/api/v1/trust/keys/%E0%A4%A");
  expect(res.status).toBe(400);
  expect(((await res.json()) as { error: string }).error).toContain("%E0%A4%A");
});
