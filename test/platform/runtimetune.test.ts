/**
 * `[memory] jit`: berth serve re-executes itself once with the engine's options in its
 * environment (daemon/platform/runtimetune.ts). Unit tests of the pieces, then the real daemon:
 * the same process id answers, and its environment carries the options.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { libcPath } from "../../daemon/platform/libc";
import { TUNED_MARK, ownArguments, ownEnvironment, serviceProblem, tunedEnvironment, tuningEnv } from "../../daemon/platform/runtimetune";
import { startDaemon } from "../helpers/daemon";

test("each JIT setting maps to the engine's options; optimizing sets none", () => {
  expect(tuningEnv("off")).toEqual({ BUN_JSC_useJIT: "false" });
  expect(tuningEnv("baseline")).toEqual({ BUN_JSC_useDFGJIT: "false", BUN_JSC_useFTLJIT: "false" });
  expect(tuningEnv("optimizing")).toEqual({});
});

test("the tuned environment adds what is missing and the mark; an operator's own value is kept", () => {
  const added = tunedEnvironment({ PATH: "/bin", BUN_JSC_useFTLJIT: "true", UNSET: undefined }, { BUN_JSC_useDFGJIT: "false", BUN_JSC_useFTLJIT: "false" });
  expect(added).toEqual({ BUN_JSC_useDFGJIT: "false", [TUNED_MARK]: "1" });
});

test("the environment is read back byte for byte, and what Bun loaded from .env is not part of it", () => {
  const raw = Buffer.concat([Buffer.from("A=1\0RAW="), Buffer.from([0xe9, 0xff]), Buffer.from("\0EMPTY=\0")]);
  const own = ownEnvironment(raw);
  expect(Buffer.concat(own.raw).equals(raw)).toBe(true);
  expect(own.vars.A).toBe("1");
  expect(own.vars.EMPTY).toBe("");
  expect(Object.keys(own.vars)).toEqual(["A", "RAW", "EMPTY"]);
});

test("an operator's BUN_JSC_useJIT=false under a service manager is refused with the remedy; the config's off is not", () => {
  expect(serviceProblem({ NOTIFY_SOCKET: "/run/x", BUN_JSC_useJIT: "false" })).toMatch(/remove it: \[memory\] jit = "off"/);
  expect(serviceProblem({ NOTIFY_SOCKET: "/run/x", BUN_JSC_useJIT: "false", [TUNED_MARK]: "1" })).toBeUndefined();
  expect(serviceProblem({ BUN_JSC_useJIT: "false" })).toBeUndefined();
  expect(serviceProblem({ NOTIFY_SOCKET: "/run/x" })).toBeUndefined();
});

test("no re-execution when nothing is missing, when there is nothing to set, or once tuned (no loop)", () => {
  expect(tunedEnvironment({ BUN_JSC_useJIT: "true" }, { BUN_JSC_useJIT: "false" })).toBeUndefined();
  expect(tunedEnvironment({ PATH: "/bin" }, {})).toBeUndefined();
  expect(tunedEnvironment({ [TUNED_MARK]: "1" }, { BUN_JSC_useJIT: "false" })).toBeUndefined();
});

test("the arguments are read back byte for byte, empty ones, spaces and non-UTF-8 bytes included", () => {
  const raw = Buffer.concat([Buffer.from("bun\0serve\0--config\0/a b/"), Buffer.from([0xe9, 0xff]), Buffer.from(".toml\0\0")]);
  const args = ownArguments(raw);
  expect(args.map((b) => b.at(-1))).toEqual([0, 0, 0, 0, 0]);
  expect(Buffer.concat(args).equals(raw)).toBe(true);
  expect(args.map((b) => b.subarray(0, -1).toString("latin1"))).toEqual(["bun", "serve", "--config", "/a b/\xe9\xff.toml", ""]);
  expect(ownArguments().length).toBeGreaterThan(0);
});

test("the C library is found in the maps of glibc and musl processes, and in this one", () => {
  const glibc = "7f00-7f10 r-xp 00026000 fe:00 339380    /usr/lib/x86_64-linux-gnu/libc.so.6\n";
  const musl = "7f00-7f10 r-xp 00000000 fe:00 12    /lib/ld-musl-aarch64.so.1\n";
  const other = "7f00-7f10 r-xp 00000000 fe:00 12    /usr/lib/libcrypto.so.3\n7f00-7f10 rw-p 00000000 00:00 0 \n";
  expect(libcPath(other + glibc)).toBe("/usr/lib/x86_64-linux-gnu/libc.so.6");
  expect(libcPath(musl)).toBe("/lib/ld-musl-aarch64.so.1");
  expect(libcPath(other)).toBeUndefined();
  expect(libcPath()).toMatch(/libc\.so\.6$|musl/);
});

const environOf = (pid: number): Record<string, string> =>
  Object.fromEntries(readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));

test("the daemon re-executes in place: the process started answers, with the options in its environment", async () => {
  await using d = await startDaemon({ extra: '[memory]\njit = "baseline"\n' });
  expect((await fetch(`${d.url}/v2/`)).status).toBe(200);
  const env = environOf(d.proc.pid);
  expect(env.BUN_JSC_useDFGJIT).toBe("false");
  expect(env.BUN_JSC_useFTLJIT).toBe("false");
  expect(env[TUNED_MARK]).toBe("1");
  // one start-up, one "listening": the re-executed process is the only one that served
  expect(d.logs().match(/berth listening/g)?.length).toBe(1);
  expect(d.logs()).not.toContain("not applied");
  expect(await d.stop()).toBe(0);
});

test("by default the daemon runs interpreted, and what needed bun:ffi still works: the root lock (flock(1)) holds", async () => {
  await using d = await startDaemon();
  const env = environOf(d.proc.pid);
  expect(env.BUN_JSC_useJIT).toBe("false");
  expect(env[TUNED_MARK]).toBe("1");
  expect(env.BERTH_NOTIFY_FD).toBeUndefined(); // no service manager: no socket made
  // a second daemon on the same root is refused: the lock is held without FFI
  await expect(startDaemon({ root: d.root })).rejects.toThrow(/exited before listening[\s\S]*(lock|another|in use)/i);
  expect((await fetch(`${d.url}/v2/`)).status).toBe(200);
});

test("jit = optimizing leaves the environment alone; an operator's BUN_JSC_ value wins over the config", async () => {
  await using plain = await startDaemon({ extra: '[memory]\njit = "optimizing"\n' });
  expect(Object.keys(environOf(plain.proc.pid)).filter((k) => k.startsWith("BUN_JSC_") || k === TUNED_MARK)).toEqual([]);
  await using own = await startDaemon({ extra: '[memory]\njit = "off"\n', env: { BUN_JSC_useJIT: "true" } });
  const env = environOf(own.proc.pid);
  expect(env.BUN_JSC_useJIT).toBe("true");
  expect(env[TUNED_MARK]).toBeUndefined();
  expect((await fetch(`${own.url}/v2/`)).status).toBe(200);
});

test("interpreted, without flock(1) on the PATH, the daemon refuses to start rather than run with no lock on its root", async () => {
  await expect(startDaemon({ env: { PATH: "/nonexistent" } })).rejects.toThrow(/cannot lock the storage root[\s\S]*util-linux/);
});
