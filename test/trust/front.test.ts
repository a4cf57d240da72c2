/**
 * The trust routes at the front without [auth]: zot's upload endpoints and /api/v1/trust
 * follow the admin token's rule (a Bearer token when `admin_token_file` is set); with
 * `[trust] enabled = false` none of them exists, and a keys_dir that cannot be created stops
 * the start with a configuration error naming the key.
 */
import { expect, test } from "bun:test";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startDaemon as startBerth } from "../../daemon/main";
import { ConfigError } from "../../daemon/config/load";
import { silentLogger } from "../../daemon/log";
import { configOf } from "../helpers/auth";
import { tempDir } from "../helpers/daemon";
import { keyPair } from "./fixtures";

const base = (root: string, extra: string) => configOf(`[http]\naddress = "127.0.0.1"\nport = 0\n${extra}\n[storage]\nroot = "${root}"\n`);

test("with an admin token, the zot upload endpoints and /api/v1/trust need it", async () => {
  using dir = tempDir("berth-trust-front-");
  const tokenFile = join(dir.path, "token");
  writeFileSync(tokenFile, "s3cret-token-0123456789\n", { mode: 0o600 });
  const berth = await startBerth(base(join(dir.path, "root"), `admin_token_file = "${tokenFile}"\n[trust]\nenabled = true`), silentLogger);
  try {
    const url = `http://127.0.0.1:${berth.server.port}`;
    const pem = keyPair("p256").publicPem;
    const anonymous = await fetch(`${url}/v2/_zot/ext/cosign`, { method: "POST", body: pem });
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("UNAUTHORIZED");
    expect((await fetch(`${url}/api/v1/trust/keys`)).status).toBe(401);
    const auth = { Authorization: "Bearer s3cret-token-0123456789" };
    expect((await fetch(`${url}/v2/_zot/ext/cosign`, { method: "POST", body: pem, headers: auth })).status).toBe(200);
    const list = (await (await fetch(`${url}/api/v1/trust/keys`, { headers: auth })).json()) as { keys: unknown[] };
    expect(list.keys).toHaveLength(1);
    // not a certificate: refused in the OCI shape
    const bad = await fetch(`${url}/v2/_zot/ext/notation?truststoreType=ca`, { method: "POST", body: pem, headers: auth });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("PEM certificate");
  } finally {
    await berth.close(1000);
  }
});

test("[trust] enabled = false: no trust route exists", async () => {
  using dir = tempDir("berth-trust-off-");
  const berth = await startBerth(base(join(dir.path, "root"), ""), silentLogger);
  try {
    const url = `http://127.0.0.1:${berth.server.port}`;
    expect(berth.trust).toBeUndefined();
    expect((await fetch(`${url}/v2/_zot/ext/cosign`, { method: "POST", body: "x" })).status).toBe(404);
    expect((await fetch(`${url}/api/v1/trust/keys`)).status).toBe(404);
  } finally {
    await berth.close(1000);
  }
});

test("a keys_dir that cannot be created is a configuration error naming trust.keys_dir", async () => {
  using dir = tempDir("berth-trust-bad-");
  const locked = join(dir.path, "locked");
  mkdirSync(locked);
  writeFileSync(join(locked, "file"), "");
  // a path under a regular file can never be a directory (also for root)
  const err = await startBerth(base(join(dir.path, "root"), `[trust]\nenabled = true\nkeys_dir = "${join(locked, "file", "keys")}"`), silentLogger).then(() => undefined, (e) => e);
  chmodSync(locked, 0o755);
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as ConfigError).source).toBe("trust.keys_dir");
});
