/**
 * `[auth.token]` / `[auth.apikeys]` checking and setupTokenAuth (daemon/auth/tokenconfig.ts):
 * defaults, every bad value reported with its key, and the pieces built only when enabled
 * (the key file created 0600 under the root; a readable key file refused).
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { APIKEYS_DEFAULTS, TOKEN_DEFAULTS, checkApiKeysConfig, checkTokenConfig } from "../../daemon/config/tokenauth";
import { setupTokenAuth } from "../../daemon/auth/tokensetup";
import { tempDir } from "../helpers/daemon";
import { configOf, writeHtpasswd } from "../helpers/auth";
import { checkPaths } from "../../daemon/config/verify";
import { mkdirSync, writeFileSync } from "node:fs";

describe("[auth.token] and [auth.apikeys]", () => {
  test("defaults and valid values", () => {
    const problems: string[] = [];
    expect(checkTokenConfig(undefined, "auth.token", problems)).toEqual(TOKEN_DEFAULTS);
    expect(checkApiKeysConfig(undefined, "auth.apikeys", problems)).toEqual(APIKEYS_DEFAULTS);
    expect(checkTokenConfig({ enabled: true, service: "reg.lan", realm: "https://reg.lan/auth/token", expiry: "10m", key_file: "/etc/berth/token.key" }, "auth.token", problems)).toEqual({
      enabled: true, service: "reg.lan", issuer: "berth", realm: "https://reg.lan/auth/token", key_file: "/etc/berth/token.key", expiry: 600,
    });
    expect(checkApiKeysConfig({ flush_interval: "5m", enabled: false }, "auth.apikeys", problems)).toEqual({ enabled: false, flush_interval: 300 });
    expect(problems).toEqual([]);
  });

  test("every bad value is reported under its key", () => {
    const problems: string[] = [];
    checkTokenConfig({ enabled: "yes", service: "", realm: "ftp://x", expiry: "2h", colour: 1, issuer: 'a"b' }, "auth.token", problems);
    checkApiKeysConfig({ flush_interval: 0 }, "auth.apikeys", problems);
    checkTokenConfig([1], "auth.token", problems);
    expect(problems).toEqual([
      "auth.token.colour: unknown key",
      "auth.token.enabled: expected true or false",
      "auth.token.issuer: expected a string without quotes, backslashes or control characters",
      "auth.token: service and issuer must not be empty",
      'auth.token.realm: "ftp://x" is not an http(s) URL',
      'auth.token.expiry: "2h" is not a duration between 30s and 1h',
      "auth.apikeys.flush_interval: 0 is not a duration between 1s and 1d",
      "auth.token: expected a table",
    ]);
  });

  test("setupTokenAuth builds only what is enabled; the key file is created 0600 and refused when readable", async () => {
    using dir = tempDir();
    const base = { root: dir.path, passwords: async () => ({ kind: "unknown" }) as const, authorize: () => false };
    const off = await setupTokenAuth({ ...base, token: TOKEN_DEFAULTS, apikeys: { ...APIKEYS_DEFAULTS, enabled: false } });
    expect(off.token).toBeUndefined();
    expect(off.apiKeys).toBeUndefined();
    expect(existsSync(join(dir.path, ".berth"))).toBe(false);
    const on = await setupTokenAuth({ ...base, token: { ...TOKEN_DEFAULTS, enabled: true }, apikeys: APIKEYS_DEFAULTS });
    const keyFile = join(dir.path, ".berth", "token.key");
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(on.apiKeys?.name).toBe("apikey");
    const res = await on.token!.handle(new Request("http://x/auth/token?service=berth"));
    expect(res.status).toBe(200);
    const { token } = (await res.json()) as { token: string };
    expect(await on.token!.verifier.verify(token)).toEqual({ kind: "anonymous" });
    on.close();
    chmodSync(keyFile, 0o640);
    await expect(setupTokenAuth({ ...base, token: { ...TOKEN_DEFAULTS, enabled: true }, apikeys: APIKEYS_DEFAULTS })).rejects.toThrow(/mode 0640/);
  });

  test("berth verify reports a signing key or key store opened to others", async () => {
    using dir = tempDir();
    const htpasswd = await writeHtpasswd(dir.path, { ci: "pw" });
    const root = join(dir.path, "root");
    const config = configOf(`[storage]\nroot = "${root}"\n[auth]\nhtpasswd = "${htpasswd}"\n[auth.token]\nenabled = true\n`);
    expect(checkPaths(config)).toEqual([]); // nothing there yet: created on first start
    mkdirSync(join(root, ".berth"), { recursive: true });
    writeFileSync(join(root, ".berth", "token.key"), "k", { mode: 0o600 });
    writeFileSync(join(root, ".berth", "apikeys.json"), "{}", { mode: 0o600 });
    expect(checkPaths(config)).toEqual([]);
    chmodSync(join(root, ".berth", "token.key"), 0o644);
    chmodSync(join(root, ".berth", "apikeys.json"), 0o604);
    const problems = checkPaths(config);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toStartWith("auth.token.key_file: ");
    expect(problems[1]).toStartWith("auth.apikeys: ");
  });
});
