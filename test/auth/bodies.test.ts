/**
 * Bodies of the token endpoint (anyone may POST to it) and of the API keys routes are read
 * as they stream and refused past their caps; before, a chunked body (no Content-Length)
 * was read whole into memory and only then measured, so one anonymous request to
 * /auth/token could hold any amount of memory.
 */
import { expect, test } from "bun:test";
import type { Principal, Verdict } from "../../daemon/auth/identity";
import { generateSigningKey } from "../../daemon/auth/tokenkey";
import { createTokenService } from "../../daemon/auth/tokenservice";
import { ApiKeyStore } from "../../daemon/auth/apikeys";
import { createKeysApi } from "../../daemon/http/keys";
import { tempDir } from "../helpers/daemon";
import { endlessBody } from "../helpers/endless";
import { join } from "node:path";

const TOTAL = 256 * 1024 * 1024;
const BOUND = 16 * 1024 + 4 * 64 * 1024;

test("POST /auth/token with an endless chunked form: 400 after reading little of it", async () => {
  const handle = createTokenService({
    key: await generateSigningKey(),
    issuer: "berth",
    service: "reg",
    ttl: 300,
    passwords: async (): Promise<Verdict> => ({ kind: "unknown" }) as unknown as Verdict,
    authorize: () => false,
  });
  const s = endlessBody(TOTAL);
  const res = await handle(new Request("http://reg.local/auth/token", { method: "POST", body: s.body, headers: { "Content-Type": "application/x-www-form-urlencoded" } }));
  expect(res.status).toBe(400);
  expect(s.pulled()).toBeLessThan(BOUND);
});

test("POST /api/v1/keys with an endless chunked body: 400 after reading little of it", async () => {
  using dir = tempDir();
  const store = ApiKeyStore.open(join(dir.path, "k.json"), { flushInterval: 0 });
  const api = createKeysApi(store);
  const alice: Principal = { name: "alice", groups: [], source: "htpasswd" };
  const s = endlessBody(TOTAL);
  const res = await api(new Request("http://x/api/v1/keys", { method: "POST", body: s.body }), "/api/v1/keys", { principal: alice, admin: false });
  expect(res.status).toBe(400);
  expect(s.pulled()).toBeLessThan(BOUND);
});
