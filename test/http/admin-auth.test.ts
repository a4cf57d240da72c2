/**
 * The admin API's token on the real daemon: `[http] admin_token_file` is read at start, a
 * request without the token is refused over a real socket, and a token file that is missing
 * or too short stops the start with an error naming the key.
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startDaemon, tempDir } from "../helpers/daemon";
import { run } from "../helpers/clients";

const config = (root: string, tokenFile: string) => `[http]\naddress = "127.0.0.1"\nport = 0\nadmin_token_file = "${tokenFile}"\n[storage]\nroot = "${root}"\n`;

test("the daemon requires the token of admin_token_file on the admin API, and only there", async () => {
  using dir = tempDir();
  const tokenFile = join(dir.path, "admin-token");
  const token = "edge-0123456789abcdef";
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  await using berth = await startDaemon({ config: config(join(dir.path, "root"), tokenFile) });
  const refused = await fetch(`${berth.url}/api/v1/storage/gc?dry_run=true`, { method: "POST" });
  expect(refused.status).toBe(401);
  expect(((await refused.json()) as { error: string }).error).toContain("admin_token_file");
  expect((await fetch(`${berth.url}/api/v1/info`)).status).toBe(401);
  const allowed = await fetch(`${berth.url}/api/v1/storage/gc?dry_run=true`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  expect(allowed.status).toBe(200);
  expect((await fetch(`${berth.url}/api/v1/info`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
  expect((await fetch(`${berth.url}/v2/`)).status).toBe(200);
  expect((await fetch(`${berth.url}/readyz`)).status).toBe(200);
});

test("a missing or short token file stops the start, naming the key", async () => {
  using dir = tempDir();
  const short = join(dir.path, "short");
  writeFileSync(short, "abc\n");
  for (const [file, why] of [[join(dir.path, "absent"), "ENOENT"], [short, "at least 16 characters"]] as const) {
    const configPath = join(dir.path, "berth.toml");
    writeFileSync(configPath, config(join(dir.path, "root"), file));
    const r = await run([process.execPath, join(import.meta.dir, "../../daemon/main.ts"), "serve", "--config", configPath], { timeoutMs: 30_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("http.admin_token_file");
    expect(r.stderr).toContain(why);
  }
});
