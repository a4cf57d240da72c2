/**
 * How the admin commands (keys, trust keys, cve) pick their registry and credentials
 * (client/admin.ts), without a server: the old --url flags and their checks, the admin
 * token file (its first line), the stored login and what overrides it, and the exit code
 * mapping (the client's codes on the stored login, 1 for any failure with --url).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ADMIN_FLAGS, TOKEN_FLAG, connectAdmin, finishAdmin, type AdminNeeds } from "../../daemon/client/admin";
import { parseArgs } from "../../daemon/client/args";
import { writeCredentials } from "../../daemon/client/credentials";
import { ClientError, EXIT } from "../../daemon/client/errors";

let dir: string;
const saved = { creds: process.env.BERTH_CREDENTIALS, registry: process.env.BERTH_REGISTRY };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "berth-admin-"));
  process.env.BERTH_CREDENTIALS = join(dir, "credentials.json");
  delete process.env.BERTH_REGISTRY;
  writeCredentials({ default: "edge", registries: { edge: { url: "http://127.0.0.1:1", username: "ci", password: "ci-pw" }, adm: { url: "http://127.0.0.1:2", token: "stored-token" } } });
  writeFileSync(join(dir, "token"), "  file-token  \nsecond line\n");
});
afterAll(() => {
  for (const [k, v] of [["BERTH_CREDENTIALS", saved.creds], ["BERTH_REGISTRY", saved.registry]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  rmSync(dir, { recursive: true, force: true });
});

const connect = (argv: string[], needs: AdminNeeds = { withUrl: "credentials" }) => connectAdmin(parseArgs(argv, ADMIN_FLAGS, TOKEN_FLAG), needs);

/** The usage message `argv` is refused with. */
async function refusal(argv: string[], needs?: AdminNeeds): Promise<string> {
  const err = await connect(argv, needs).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ClientError);
  expect((err as ClientError).exit).toBe(EXIT.usage);
  return (err as ClientError).message;
}

describe("connectAdmin", () => {
  test("--url: checked as before; --token-file gives its first line as the admin token", async () => {
    expect(await refusal(["--url", "ftp://x"])).toBe('--url "ftp://x" must start with http:// or https://');
    expect(await refusal(["--url", "http://h"])).toBe("give one of --user USER or --token-file FILE");
    expect(await refusal(["--url", "http://h"], { withUrl: "user" })).toBe("--user is required with --url");
    expect(await refusal(["--url", "http://h", "--registry", "edge"])).toBe("give --url or --registry, not both");
    expect(await refusal(["--url", "http://h", "--user", "u", "--token-file", "f"])).toBe("give one of --user USER or --token-file FILE");
    const { client, legacy } = await connect(["--url", "http://h:5000//", "--token-file", join(dir, "token")]);
    expect(legacy).toBe(true);
    expect(client.url).toBe("http://h:5000");
    expect(client.entry).toEqual({ url: "http://h:5000", token: "file-token" });
    // anonymous where the command allows it (cve)
    expect((await connect(["--url", "http://h"], { withUrl: "none" })).client.entry).toEqual({ url: "http://h" });
  });

  test("the stored login: the default alias, --registry, $BERTH_REGISTRY; --token-file overrides it", async () => {
    const byDefault = await connect([]);
    expect(byDefault.legacy).toBe(false);
    expect(byDefault.client.entry).toEqual({ url: "http://127.0.0.1:1", username: "ci", password: "ci-pw" });
    expect((await connect(["-r", "adm"])).client.entry).toEqual({ url: "http://127.0.0.1:2", token: "stored-token" });
    process.env.BERTH_REGISTRY = "adm";
    try {
      expect((await connect([])).client.entry.token).toBe("stored-token");
    } finally {
      delete process.env.BERTH_REGISTRY;
    }
    expect((await connect(["--token-file", join(dir, "token")])).client.entry).toEqual({ url: "http://127.0.0.1:1", token: "file-token" });
    // a user is needed (keys) and the login holds only a token
    expect(await refusal(["-r", "adm"], { withUrl: "user", user: true })).toBe("no user for http://127.0.0.1:2: pass --user, or run berth login first");
    expect((await connect(["-r", "edge"], { withUrl: "user", user: true })).client.entry).toEqual({ url: "http://127.0.0.1:1", username: "ci", password: "ci-pw" });
  });

  test("exit codes: the client's on the stored login, 1 with --url but for usage errors", () => {
    const quiet = console.error;
    console.error = () => {};
    try {
      expect(finishAdmin(new ClientError("denied", EXIT.denied), "usage", false)).toBe(EXIT.denied);
      expect(finishAdmin(new ClientError("denied", EXIT.denied), "usage", true)).toBe(EXIT.error);
      expect(finishAdmin(new ClientError("missing", EXIT.notFound), "usage", true)).toBe(EXIT.error);
      expect(finishAdmin(new ClientError("bad flag", EXIT.usage), "usage", true)).toBe(EXIT.usage);
    } finally {
      console.error = quiet;
    }
  });
});
