/**
 * Board profiles: which profile a board gets, profile defaults under the file's own keys,
 * unknown names, every shipped profile valid against the schema, block-device
 * identification, the IO budget of SD-card and eMMC boards (in the daemon too), and
 * `berth board detect` end to end.
 */
import { expect, test } from "bun:test";
import { join, resolve } from "node:path";
import { BOARD_PROFILES, applyProfile, profileFor } from "../../daemon/board/profiles";
import { blockDeviceOf } from "../../daemon/board/identify";
import { ConfigError, parseConfig } from "../../daemon/config/load";
import { validate } from "../../daemon/config/schema";
import { runOk } from "../helpers/clients";
import { startDaemon, tempDir } from "../helpers/daemon";
import { IO_PROFILES } from "../../daemon/scheduler/budget";

const MAIN = resolve(import.meta.dir, "../../daemon/main.ts");

test("profileFor: device-tree model first, then the architecture", () => {
  expect(profileFor({ model: "Raspberry Pi 4 Model B Rev 1.4", arch: "arm64" })).toBe("rpi4");
  expect(profileFor({ model: "Raspberry Pi Compute Module 4 Rev 1.0", arch: "arm64" })).toBe("rpi4");
  expect(profileFor({ model: "Raspberry Pi 5 Model B Rev 1.0", arch: "arm64" })).toBe("rpi5");
  expect(profileFor({ model: "Radxa ROCK 3 Model A", arch: "arm64" })).toBe("arm64-emmc");
  expect(profileFor({ model: "", arch: "x64" })).toBe("x64-server");
  expect(profileFor({ model: "Raspberry Pi 3 Model B", arch: "arm" })).toBeUndefined();
});

test("every shipped profile validates against the schema", () => {
  expect(Object.keys(BOARD_PROFILES).sort()).toEqual(["arm64-emmc", "rpi4", "rpi5", "x64-server"]);
  for (const [name, doc] of Object.entries(BOARD_PROFILES)) expect({ name, problems: validate(doc).problems }).toEqual({ name, problems: [] });
});

test("a profile supplies defaults; the file's keys win", () => {
  const c = parseConfig('[board]\nprofile = "rpi4"\n[memory]\nrss_soft_limit = "100 MiB"\n[http]\nport = 6000\n', "t");
  expect(c.board.profile).toBe("rpi4");
  expect(c.memory.rss_soft_limit).toBe(100 * 1024 * 1024); // the file
  expect(c.http.port).toBe(6000); // the file
  expect(c.http.address).toBe("0.0.0.0"); // the profile
  expect(c.storage.manifest_cache_bytes).toBe(4 * 1024 * 1024); // the profile
  expect(c.mdns.enabled).toBe(true); // the profile
  const none = parseConfig("[http]\nport = 6000\n", "t");
  expect(none.board.profile).toBe("none");
  expect(none.mdns.enabled).toBe(false);
  expect(none.http.address).toBe("127.0.0.1");
});

test("the JIT tiers follow the board: interpreted on small boards and by default, optimizing on a server; the file wins", () => {
  const jit = (text: string) => parseConfig(text, "t").memory.jit;
  expect(jit("")).toBe("off");
  expect(jit('[board]\nprofile = "rpi4"')).toBe("off");
  expect(jit('[board]\nprofile = "arm64-emmc"')).toBe("off");
  expect(jit('[board]\nprofile = "rpi5"')).toBe("baseline");
  expect(jit('[board]\nprofile = "x64-server"')).toBe("optimizing");
  expect(jit('[board]\nprofile = "x64-server"\n[memory]\njit = "baseline"')).toBe("baseline");
  expect(() => parseConfig('[memory]\njit = "fast"', "t")).toThrow(/memory\.jit/);
});

test("auto resolves with the identity; unknown names are errors naming the key", () => {
  expect(applyProfile({ board: { profile: "auto" } }, () => ({ model: "Raspberry Pi 5 Model B", arch: "arm64" })).profile).toBe("rpi5");
  expect(applyProfile({ board: { profile: "auto" } }, () => ({ model: "", arch: "riscv64" })).profile).toBe("none");
  expect(() => parseConfig('[board]\nprofile = "pi9"\n', "t")).toThrow(ConfigError);
  try {
    parseConfig('[board]\nprofile = "pi9"\n', "t");
  } catch (err) {
    expect((err as ConfigError).problems).toEqual(['board.profile: unknown profile "pi9" (known: auto, none, rpi4, rpi5, arm64-emmc, x64-server)']);
  }
  expect(() => parseConfig('[mdns]\ninterfaces = "eth0"\n', "t")).toThrow(/mdns.interfaces: expected a list/);
  expect(() => parseConfig('[http]\ntls_cert = "/x.pem"\n', "t")).toThrow(/http.tls_key: required when http.tls_cert is set/);
});

test("blockDeviceOf names the device of a path's file system (or none for virtual ones)", () => {
  const dev = blockDeviceOf("/proc/self");
  expect(dev.name).toBe(""); // procfs has no block device
  expect(dev.devno).toMatch(/^\d+:\d+$/);
  const here = blockDeviceOf(import.meta.dir);
  expect(here.devno).toMatch(/^\d+:\d+$/);
});

test("berth board detect prints the inventory and the profile auto picks", async () => {
  const r = await runOk([process.execPath, MAIN, "board", "detect", "--json"]);
  const report = JSON.parse(r.stdout);
  expect(report.arch).toBe(process.arch);
  expect(report.cpu.cores).toBeGreaterThan(0);
  expect(report.memoryBytes).toBeGreaterThan(0);
  expect(report.profile).toBe(process.arch === "x64" ? "x64-server" : process.arch === "arm64" ? expect.any(String) : "none");
  expect(report.storage.path).toBe("./data");
  const text = await runOk([process.execPath, MAIN, "board", "detect"]);
  expect(text.stdout).toMatch(/^profile: {2}\S+/m);
});

test("SD-card and eMMC profiles set an IO budget; the file's keys still win", () => {
  const MiB = 1024 * 1024;
  const rpi4 = parseConfig('[board]\nprofile = "rpi4"\n', "t").scheduler;
  expect(rpi4.io_profile).toBe("sdcard");
  expect(IO_PROFILES[rpi4.io_profile]).toEqual({ readBytesPerSecond: 8 * MiB, writeBytesPerSecond: 4 * MiB, readOpsPerSecond: 400, writeOpsPerSecond: 100 });
  const rpi5 = parseConfig('[board]\nprofile = "rpi5"\n', "t").scheduler;
  expect(rpi5).toMatchObject({ read_bytes_per_second: 20 * MiB, write_bytes_per_second: 8 * MiB, read_ops_per_second: 500, write_ops_per_second: 150 });
  expect(parseConfig('[board]\nprofile = "arm64-emmc"\n', "t").scheduler.io_profile).toBe("emmc");
  expect(parseConfig('[board]\nprofile = "x64-server"\n', "t").scheduler.io_profile).toBe("none");
  const own = parseConfig('[board]\nprofile = "rpi5"\n[scheduler]\nwrite_bytes_per_second = "2 MiB"\n', "t").scheduler;
  expect(own.write_bytes_per_second).toBe(2 * MiB);
  expect(own.read_bytes_per_second).toBe(20 * MiB);
});

test("the daemon on an SD-card profile runs with that budget", async () => {
  using dir = tempDir();
  await using berth = await startDaemon({
    config: `[board]\nprofile = "rpi5"\n[http]\naddress = "127.0.0.1"\nport = 0\n[storage]\nroot = "${join(dir.path, "root")}"\n[mdns]\nenabled = false\n`,
  });
  const state = (await (await fetch(`${berth.url}/api/v1/scheduler`)).json()) as { budget: { rates: Record<string, number> } };
  expect(state.budget.rates).toEqual({ readBytesPerSecond: 20 << 20, writeBytesPerSecond: 8 << 20, readOpsPerSecond: 500, writeOpsPerSecond: 150 });
}, 30_000);
