/** Configuration: defaults, every problem reported with its key, sizes with units, the CLI. */
import { describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { configWarnings } from "../../daemon/config/deprecated";
import { ConfigError, EMBEDDED_DEFAULT, parseConfig } from "../../daemon/config/load";
import { parseBytes } from "../../daemon/config/schema";
import { tempDir, writeConfig } from "../helpers/daemon";

const MAIN = resolve(import.meta.dir, "../../daemon/main.ts");

describe("configuration", () => {
  test("the embedded default gives 127.0.0.1:5000 and ./data", () => {
    const c = parseConfig(EMBEDDED_DEFAULT, "default");
    expect(c.http).toMatchObject({ address: "127.0.0.1", port: 5000 });
    expect(c.storage).toMatchObject({ root: "./data", dedupe: true, max_manifest_bytes: 4 * 1024 * 1024 });
    expect(c.log).toEqual({ level: "info", format: "json" });
  });

  test("an empty file gets every default", () => {
    expect(parseConfig("", "x").storage.root).toBe("./data");
  });

  test("the deprecated [gc] upload_idle becomes [storage] upload_expiry, with a warning; an explicit upload_expiry wins", () => {
    const old = parseConfig("[gc]\nupload_idle = \"2m\"", "x");
    expect(old.storage.upload_expiry).toBe(120);
    expect(configWarnings(old)).toEqual(["gc.upload_idle is deprecated: upload sessions expire on their own timer; its value (120 s) is used as storage.upload_expiry; rename the key"]);
    expect(parseConfig("[gc]\nupload_idle = \"30d\"", "x").storage.upload_expiry).toBe(7 * 24 * 3600);
    const both = parseConfig("[gc]\nupload_idle = 120\n[storage]\nupload_expiry = 300", "x");
    expect(both.storage.upload_expiry).toBe(300);
    expect(configWarnings(both)[0]).toContain("gc.upload_idle is deprecated and ignored");
    const fresh = parseConfig("", "x");
    expect(fresh.storage.upload_expiry).toBe(600);
    expect(configWarnings(fresh)).toEqual([]);
  });

  test("the deprecated [scheduler] profile becomes io_profile, with a warning, over a board profile's; an explicit io_profile wins", () => {
    const old = parseConfig('[scheduler]\nprofile = "emmc"', "x");
    expect(old.scheduler.io_profile).toBe("emmc");
    expect(configWarnings(old)).toEqual(['scheduler.profile is deprecated: it is now scheduler.io_profile; its value ("emmc") is used for it; rename the key']);
    // the board profile rpi4 sets io_profile = "sdcard"; the file's own (old) key still wins
    expect(parseConfig('[board]\nprofile = "rpi4"\n[scheduler]\nprofile = "ssd"', "x").scheduler.io_profile).toBe("ssd");
    const both = parseConfig('[scheduler]\nprofile = "emmc"\nio_profile = "ssd"', "x");
    expect(both.scheduler.io_profile).toBe("ssd");
    expect(configWarnings(both)).toEqual(['scheduler.profile is deprecated and ignored: scheduler.io_profile ("ssd") is set; remove scheduler.profile']);
    const fresh = parseConfig('[scheduler]\nio_profile = "sdcard"', "x");
    expect(fresh.scheduler.io_profile).toBe("sdcard");
    expect(configWarnings(fresh)).toEqual([]);
    expect(() => parseConfig('[scheduler]\nio_profile = "floppy"', "x")).toThrow();
  });

  test("sizes take units", () => {
    expect(parseBytes("4 MiB")).toBe(4 * 1024 * 1024);
    expect(parseBytes("512KiB")).toBe(512 * 1024);
    expect(parseBytes("1GB")).toBe(1e9);
    expect(parseBytes(123)).toBe(123);
    expect(parseBytes("12 parsecs")).toBeUndefined();
    expect(parseConfig('[storage]\nmax_manifest_bytes = "8 MiB"', "x").storage.max_manifest_bytes).toBe(8 * 1024 * 1024);
  });

  test("every problem is reported, each with its key", () => {
    const text = `
[http]
port = 70000
adress = "0.0.0.0"
[storage]
dedupe = "yes"
max_manifest_bytes = "lots"
[log]
level = "loud"
[extra]
x = 1
`;
    let err: ConfigError | undefined;
    try {
      parseConfig(text, "bad.toml");
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = err!.problems.join("\n");
    expect(problems).toContain("http.port: 70000 is outside 0..65535");
    expect(problems).toContain("http.adress: unknown key");
    expect(problems).toContain("storage.dedupe: expected true or false");
    expect(problems).toContain("storage.max_manifest_bytes: expected a size");
    expect(problems).toContain('log.level: expected one of "debug", "info", "warn", "error"');
    expect(problems).toContain("extra: unknown section or key");
    expect(err!.problems).toHaveLength(6);
  });

  test("a manifest body budget smaller than the largest manifest is refused (such a push would get 429 for ever)", () => {
    let err: ConfigError | undefined;
    try {
      parseConfig('[http]\nmanifest_body_budget = "1MiB"\n[storage]\nmax_manifest_bytes = "2MiB"\n', "small-budget.toml");
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems).toEqual([expect.stringMatching(/^http\.manifest_body_budget: 1048576 bytes is less than storage\.max_manifest_bytes \(2097152\)/)]);
    expect(() => parseConfig('[http]\nmanifest_body_budget = "2MiB"\n[storage]\nmax_manifest_bytes = "2MiB"\n', "equal.toml")).not.toThrow();
  });

  test("TOML syntax errors are reported", () => {
    expect(() => parseConfig("[http\nport=1", "broken.toml")).toThrow(/not valid TOML/);
  });
});

describe("command line", () => {
  test("verify reports every problem and exits 1; a good file exits 0", () => {
    using dir = tempDir();
    const bad = writeConfig(dir.path, "[http]\nport = -1\n[log]\nformat = \"xml\"\n");
    const run = Bun.spawnSync([process.execPath, MAIN, "verify", bad], { stderr: "pipe", stdout: "pipe" });
    expect(run.exitCode).toBe(1);
    const out = run.stderr.toString();
    expect(out).toContain("http.port");
    expect(out).toContain("log.format");
    const good = writeConfig(dir.path, "[http]\nport = 0\n");
    const ok = Bun.spawnSync([process.execPath, MAIN, "verify", good], { stdout: "pipe" });
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout.toString()).toContain("valid");
  });

  test("version prints the version", () => {
    const run = Bun.spawnSync([process.execPath, MAIN, "version"], { stdout: "pipe" });
    expect(run.exitCode).toBe(0);
    expect(run.stdout.toString()).toMatch(/^berth \d+\.\d+\.\d+/);
  });

  test("serve with a missing config file fails clearly", () => {
    const run = Bun.spawnSync([process.execPath, MAIN, "serve", "--config", "/nonexistent/berth.toml"], { stderr: "pipe" });
    expect(run.exitCode).toBe(1);
    expect(run.stderr.toString()).toContain("cannot read the file (ENOENT)");
  });
});
