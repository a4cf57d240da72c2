/**
 * Runtime settings that must be in place before the JavaScript engine starts. Bun reads
 * JavaScriptCore's options only from `BUN_JSC_*` environment variables at start-up; there is
 * no way to change them from a running program. The one berth needs is the JIT tiers: any JIT
 * at all costs 10-30 MiB of peak resident memory under pushes against the interpreter, for
 * speed a registry's requests, which wait on the disk and the network, seldom need
 * (docs/BENCHMARKS.md). `[memory] jit` chooses; "off" (the default) interprets.
 *
 * So `berth serve` re-executes itself, once, as its first act: execve(2) of /proc/self/exe
 * with the same arguments (/proc/self/cmdline) and the environment it was started with
 * (/proc/self/environ), both byte for byte, plus the settings. execve keeps the process id, so
 * systemd's supervision, sd_notify and a parent's handle see one process. A variable the
 * operator set stays as they set it. Nothing here may stop the daemon: where the C library
 * cannot be found or execve fails, berth carries on untuned and says so.
 */
import { readFileSync } from "node:fs";
import { NODE_BUILD } from "../version";
import { openLibc } from "./libc";
import { AF_UNIX, SOCK_DGRAM, sockaddrUnix } from "./sdnotify";

/** Set in the environment of the re-executed process, so it does not re-execute again. */
export const TUNED_MARK = "BERTH_RUNTIME_TUNED";

/**
 * The descriptor of a datagram socket connected to $NOTIFY_SOCKET, made before re-executing
 * and inherited across execve (sdnotify.ts writes to it). Interpreted (`jit = "off"`), bun:ffi
 * cannot call libc, and without it neither Bun nor Node.js can send a unix datagram to a path;
 * a write(2) on a connected socket needs no FFI.
 */
export const NOTIFY_FD = "BERTH_NOTIFY_FD";

/**
 * The engine's JIT tiers: "off" interprets (no machine code at all), "baseline" stops before
 * the optimizing compilers, "optimizing" is the runtime's default.
 */
export type JitTiers = "off" | "baseline" | "optimizing";

/** The environment variables that select `jit`; empty for the runtime's default. */
export function tuningEnv(jit: JitTiers): Record<string, string> {
  if (jit === "off") return { BUN_JSC_useJIT: "false" };
  if (jit === "baseline") return { BUN_JSC_useDFGJIT: "false", BUN_JSC_useFTLJIT: "false" };
  return {};
}

/** What to add to `env`: the keys of `extra` it does not set, and the mark; undefined when nothing would change. */
export function tunedEnvironment(env: Record<string, string | undefined>, extra: Record<string, string>): Record<string, string> | undefined {
  if (env[TUNED_MARK] !== undefined) return undefined;
  const missing = Object.entries(extra).filter(([k]) => env[k] === undefined);
  if (missing.length === 0) return undefined;
  return { ...Object.fromEntries(missing), [TUNED_MARK]: "1" };
}

/**
 * Why this process cannot run as a service, if it cannot: interpreted because the operator
 * set BUN_JSC_useJIT=false themselves (so berth did not re-execute and hand itself a
 * notification socket), under a service manager that waits for READY=1, which then needs FFI.
 */
export function serviceProblem(env: Record<string, string | undefined>): string | undefined {
  if (!env.NOTIFY_SOCKET || env.BUN_JSC_useJIT !== "false" || env[TUNED_MARK] !== undefined) return undefined;
  return 'BUN_JSC_useJIT=false is set in the environment, so berth cannot notify the service manager ($NOTIFY_SOCKET needs FFI, which the interpreter refuses); remove it: [memory] jit = "off" (the default) runs interpreted and keeps the notification';
}

/** Splits a NUL-separated block (/proc/self/cmdline, /proc/self/environ) into its strings, each with its NUL, byte for byte. */
export function nulStrings(block: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < block.length; ) {
    const end = block.indexOf(0, at);
    const stop = end < 0 ? block.length : end;
    out.push(Buffer.concat([block.subarray(at, stop), Buffer.from([0])]));
    at = stop + 1;
  }
  return out;
}

/**
 * The arguments this process was started with, byte for byte (argv[0] included), from
 * /proc/self/cmdline: a path that is not UTF-8 is passed on unchanged.
 */
export function ownArguments(cmdline: Buffer = readFileSync("/proc/self/cmdline")): Buffer[] {
  return nulStrings(cmdline);
}

/**
 * The environment this process was started with, byte for byte, from /proc/self/environ:
 * not process.env, which also holds what Bun loaded from a .env file (that would then be
 * exported to every child) and decodes values that are not UTF-8.
 */
export function ownEnvironment(environ: Buffer = readFileSync("/proc/self/environ")): { raw: Buffer[]; vars: Record<string, string> } {
  const raw = nulStrings(environ);
  const vars: Record<string, string> = {};
  for (const b of raw) {
    const eq = b.indexOf(61); // "="
    if (eq > 0) vars[b.subarray(0, eq).toString("latin1")] = b.subarray(eq + 1, b.length - 1).toString("utf8");
  }
  return { raw, vars };
}

/**
 * Re-executes this process with `extra` in its environment, unless it already runs with it.
 * Returns only when it did not re-execute: with a reason when it tried and failed (to be
 * logged), or undefined when there was nothing to do.
 */
export async function reexecTuned(extra: Record<string, string>): Promise<string | undefined> {
  if (NODE_BUILD || (globalThis as { Bun?: unknown }).Bun === undefined) return undefined;
  let own: ReturnType<typeof ownEnvironment>;
  try {
    own = ownEnvironment();
  } catch (err) {
    return (err as Error).message;
  }
  const added = tunedEnvironment(own.vars, extra);
  if (!added) return undefined;
  let lib: { closeFd(fd: number): void; close(): void } | undefined;
  let notifyFd = -1;
  try {
    const { dlopen, FFIType, ptr } = await import("bun:ffi");
    const l = openLibc((libc) => dlopen(libc, {
      execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
      socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
      connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
      close: { args: [FFIType.i32], returns: FFIType.i32 },
    }));
    lib = { closeFd: (fd) => void l.symbols.close(fd), close: () => l.close() };
    // the service manager's socket, connected now while FFI works (no SOCK_CLOEXEC: it is
    // inherited); when it cannot be made, the daemon reports READY=1 as undeliverable
    const notifySocket = own.vars.NOTIFY_SOCKET;
    if (notifySocket) {
      try {
        const addr = sockaddrUnix(notifySocket);
        notifyFd = l.symbols.socket(AF_UNIX, SOCK_DGRAM, 0);
        if (notifyFd >= 0 && l.symbols.connect(notifyFd, ptr(addr), addr.length) !== 0) notifyFd = (l.symbols.close(notifyFd), -1);
      } catch {
        notifyFd = -1;
      }
      if (notifyFd >= 0) added[NOTIFY_FD] = String(notifyFd);
    }
    // every string stays referenced in `keep` until execve returns (it returns only on failure)
    const keep: Buffer[] = [];
    const table = (items: Buffer[]) => {
      const t = new BigUint64Array(items.length + 1);
      items.forEach((b, i) => {
        keep.push(b);
        t[i] = BigInt(ptr(b));
      });
      return t;
    };
    const path = Buffer.from("/proc/self/exe\0");
    const argv = table(ownArguments());
    const inherited = own.raw.filter((b) => {
      const eq = b.indexOf(61);
      return eq <= 0 || added[b.subarray(0, eq).toString("latin1")] === undefined;
    });
    const envp = table([...inherited, ...Object.entries(added).map(([k, v]) => Buffer.from(`${k}=${v}\0`, "utf8"))]);
    const rc = l.symbols.execve(ptr(path), ptr(argv), ptr(envp));
    void keep;
    return `execve returned ${rc}`;
  } catch (err) {
    return (err as Error).message;
  } finally {
    // reached only when execve did not replace the process
    if (notifyFd >= 0) lib?.closeFd(notifyFd);
    lib?.close();
  }
}
