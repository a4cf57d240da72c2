/**
 * The command line as an operator meets it, run as the real `bun daemon/main.ts` process:
 * help for every command by `--help`, `-h` and `help COMMAND` (exit 0, on stdout); an
 * unknown command or argument says so in one line before the usage (exit 2); `verify`
 * checks every file and directory a configuration names, so a config that verifies also
 * starts, and `serve` reports the same problems without a stack trace (exit 1); TOML errors
 * carry line and column, and a JSON config is recognised as such.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join, resolve } from "node:path";
import { describeRun, makeTemp, run } from "../helpers/clients";
import { startDaemon } from "../helpers/daemon";
import { makeCertificates } from "../helpers/upstream";

const MAIN = resolve(import.meta.dir, "../../daemon/main.ts");
const berth = (...args: string[]) => run([process.execPath, MAIN, ...args], { timeoutMs: 20_000 });
const COMMANDS = ["serve", "verify", "gc", "scrub", "version", "board", "discover"];

let work: string;
let certs: { ca: string; cert: string; key: string; otherCa: string };

beforeAll(async () => {
  work = makeTemp("berth-cli-");
  certs = await makeCertificates(work);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Writes `toml` to a fresh file and returns its path. */
let n = 0;
function config(toml: string): string {
  const path = join(work, `c${n++}.toml`);
  writeFileSync(path, toml);
  return path;
}

/** True when `text` holds a JavaScript stack frame. */
const hasStack = (text: string) => /^\s+at .+[:(]/m.test(text);

describe("help and usage errors", () => {
  test("every command answers --help and -h with its usage on stdout and exit 0", async () => {
    const runs = await Promise.all(COMMANDS.flatMap((c) => [berth(c, "--help"), berth(c, "-h")]));
    for (const [i, r] of runs.entries()) {
      const command = COMMANDS[Math.floor(i / 2)]!;
      expect(r.code, describeRun(r)).toBe(0);
      expect(r.stdout.startsWith(`usage: berth ${command}`), describeRun(r)).toBe(true);
      expect(r.stderr).toBe("");
    }
  });

  test("berth -h, --help and help print the overview and exit 0; help COMMAND prints the command's", async () => {
    for (const args of [["-h"], ["--help"], ["help"]]) {
      const r = await berth(...args);
      expect(r.code, describeRun(r)).toBe(0);
      expect(r.stdout).toContain("berth serve [--config FILE]");
      expect(r.stdout).toContain("berth discover");
    }
    const r = await berth("help", "discover");
    expect(r.code).toBe(0);
    expect(r.stdout).toStartWith("usage: berth discover");
  });

  test("an unknown command or argument says what is wrong in its first line and exits 2", async () => {
    const cmd = await berth("srve");
    expect(cmd.code).toBe(2);
    expect(cmd.stderr.split("\n")[0]).toBe('berth: unknown command "srve"');
    expect(cmd.stderr).toContain("usage:");
    const arg = await berth("serve", "--confg", "x.toml");
    expect(arg.code).toBe(2);
    expect(arg.stderr.split("\n")[0]).toBe('berth: unknown argument "--confg"');
    const discover = await berth("discover", "--bogus");
    expect(discover.code).toBe(2);
    expect(discover.stderr.split("\n")[0]).toBe('berth: unknown argument "--bogus"');
    expect(discover.stderr).toContain("usage: berth discover");
    const board = await berth("board");
    expect(board.code).toBe(2);
    expect(board.stderr.split("\n")[0]).toBe("berth: board needs a subcommand (detect)");
    const missing = await berth("verify");
    expect(missing.code).toBe(2);
    expect(missing.stderr.split("\n")[0]).toBe("berth: verify needs a FILE");
  });
  test("verify warns about the deprecated [gc] upload_idle and still says valid", async () => {
    const path = config(`[http]\nport = 0\n[storage]\nroot = "${join(work, "deprecated-root")}"\n[gc]\nupload_idle = 900\n`);
    const r = await berth("verify", path);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stderr).toContain(`${path}: warning: gc.upload_idle is deprecated`);
    expect(r.stdout).toContain("valid");
  });
  test("verify accepts [scheduler] io_profile silently and the old [scheduler] profile with a warning", async () => {
    const root = join(work, "io-profile-root");
    const fresh = config(`[http]\nport = 0\n[storage]\nroot = "${root}"\n[scheduler]\nio_profile = "sdcard"\n`);
    const r1 = await berth("verify", fresh);
    expect(r1.code, describeRun(r1)).toBe(0);
    expect(r1.stderr).not.toContain("warning");
    const old = config(`[http]\nport = 0\n[storage]\nroot = "${root}"\n[scheduler]\nprofile = "sdcard"\n`);
    const r2 = await berth("verify", old);
    expect(r2.code, describeRun(r2)).toBe(0);
    expect(r2.stderr).toContain(`${old}: warning: scheduler.profile is deprecated`);
    expect(r2.stdout).toContain("valid");
  });
});

describe("verify checks what the configuration names; serve agrees", () => {
  test("missing TLS files, an unusable root, a bad token file and a missing credentials file: each reported with its key", async () => {
    const root = join(work, "root-is-a-file");
    writeFileSync(root, "not a directory");
    const shortToken = join(work, "short-token");
    writeFileSync(shortToken, "tooshort\n");
    const path = config(`[http]
port = 0
tls_cert = "${join(work, "nope.crt")}"
tls_key = "${join(work, "nope.key")}"
admin_token_file = "${shortToken}"
[storage]
root = "${root}"
[[sync.registries]]
urls = ["http://127.0.0.1:1"]
credentials_file = "${join(work, "nope.credentials")}"
`);
    for (const args of [["verify", path], ["serve", "--config", path]]) {
      const r = await berth(...args);
      expect(r.code, describeRun(r)).toBe(1);
      expect(r.stderr).toContain(`http.tls_cert: cannot read "${join(work, "nope.crt")}" (ENOENT)`);
      expect(r.stderr).toContain(`http.tls_key: cannot read "${join(work, "nope.key")}" (ENOENT)`);
      expect(r.stderr).toContain(`storage.root: "${root}" is not a directory`);
      expect(r.stderr).toContain("http.admin_token_file:");
      expect(r.stderr).toContain("at least 16 characters");
      expect(r.stderr).toContain("sync.registries[0].credentials_file:");
      expect(r.stderr).toContain("5 problems");
      expect(hasStack(r.stderr), describeRun(r)).toBe(false);
      expect(r.stdout).not.toContain("valid");
    }
  });

  test("a root below a file, a missing token file, a key that is not the certificate's", async () => {
    const file = join(work, "plain-file");
    writeFileSync(file, "x");
    const path = config(`[http]
port = 0
tls_cert = "${certs.cert}"
tls_key = "${join(work, "other.key")}"
admin_token_file = "${join(work, "no-token")}"
[storage]
root = "${join(file, "data")}"
`);
    for (const args of [["verify", path], ["serve", "--config", path]]) {
      const r = await berth(...args);
      expect(r.code, describeRun(r)).toBe(1);
      expect(r.stderr).toContain("is not the private key of the certificate");
      expect(r.stderr).toContain(`http.admin_token_file: cannot read "${join(work, "no-token")}" (ENOENT)`);
      expect(r.stderr).toContain(`cannot be created: "${file}" is not a directory`);
      expect(hasStack(r.stderr), describeRun(r)).toBe(false);
    }
  });

  test("a configuration whose files are all usable verifies, and serve starts on it", async () => {
    const token = join(work, "token");
    writeFileSync(token, "0123456789abcdef0123\n");
    chmodSync(token, 0o600);
    const creds = join(work, "creds.toml");
    writeFileSync(creds, 'username = "u"\npassword = "p"\n');
    const root = join(work, "fresh", "root");
    mkdirSync(join(work, "fresh"));
    const path = config(`[http]
port = 0
tls_cert = "${certs.cert}"
tls_key = "${certs.key}"
admin_token_file = "${token}"
[storage]
root = "${root}"
[[sync.registries]]
urls = ["https://127.0.0.1:1"]
credentials_file = "${creds}"
ca_file = "${certs.ca}"
`);
    const r = await berth("verify", path);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout).toBe(`${path}: valid\n`);
    await using daemon = await startDaemon({ config: readFileSync(path, "utf8") });
    expect(daemon.port).toBeGreaterThan(0);
  });

  test("serve on a port another program holds: one line naming the address, no stack trace", async () => {
    const holder: Server = createServer();
    await new Promise<void>((res) => holder.listen(0, "127.0.0.1", res));
    const port = (holder.address() as { port: number }).port;
    try {
      const path = config(`[http]\nport = ${port}\n[storage]\nroot = "${join(work, "busy-root")}"\n`);
      const r = await berth("serve", "--config", path);
      expect(r.code, describeRun(r)).toBe(1);
      expect(r.stderr).toContain(`Cannot listen on 127.0.0.1:${port}: the address is in use by another process`);
      expect(hasStack(r.stderr), describeRun(r)).toBe(false);
    } finally {
      holder.close();
    }
  });
});

describe("syntax errors", () => {
  test("a TOML error names line and column and shows the line", async () => {
    const r = await berth("verify", config('[http]\nport = 5000\naddress = \n'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("line 3, column 11: not valid TOML (invalid value)");
    expect(r.stderr).toContain("3:  address =");
  });

  test("a JSON configuration is recognised and the conversion explained", async () => {
    const r = await berth("verify", config('{\n  "http": { "address": "0.0.0.0", "port": "5000" },\n  "storage": { "rootDirectory": "/tmp/zot" }\n}\n'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("this is JSON, but berth reads TOML");
    expect(r.stderr).toContain("[http]");
    expect(r.stderr).not.toContain("illegal character in key");
  });
});
