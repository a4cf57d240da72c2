/**
 * Watching a running process's system calls with strace: attach to every thread of a PID,
 * wait (by polling /proc, not by sleeping) until the tracer is attached, and on stop return
 * the calls seen, each with the file its descriptor named (`strace -y`). strace is a required
 * peer of the suite: when it is missing the test fails saying so, it does not skip.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "./clients";

/** One traced call: its name, the path strace gave its first (descriptor) argument, and the whole line. */
export interface TracedCall {
  name: string;
  fdPath: string | undefined;
  line: string;
}

/** A running trace; `stop()` detaches and returns what was seen. */
export interface Trace extends AsyncDisposable {
  stop(): Promise<TracedCall[]>;
}

function tracerPid(pid: number, tid: string): number {
  const status = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
  return Number(/^TracerPid:\s*(\d+)/m.exec(status)?.[1] ?? 0);
}

/** Attaches strace to every thread of `pid`, tracing the given calls; resolves once attached. */
export async function traceSyscalls(pid: number, calls: readonly string[]): Promise<Trace> {
  if (Bun.which("strace") === null) throw new Error("strace is required by this test and was not found on PATH");
  const dir = mkdtempSync(join(tmpdir(), "berth-strace-"));
  const out = join(dir, "trace");
  const proc = Bun.spawn(["strace", "-f", "-y", "-qq", "-e", `trace=${calls.join(",")}`, "-o", out, "-p", String(pid)], { stdout: "ignore", stderr: "pipe" });
  await waitFor("strace to attach to every thread", () => {
    if (proc.exitCode !== null) throw new Error(`strace exited with ${proc.exitCode} before attaching to ${pid}`);
    return readdirSync(`/proc/${pid}/task`).every((tid) => tracerPid(pid, tid) === proc.pid);
  });
  let stopped: Promise<TracedCall[]> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      proc.kill("SIGINT");
      await proc.exited;
      const text = readFileSync(out, "utf8");
      rmSync(dir, { recursive: true, force: true });
      return text
        .split("\n")
        .filter((l) => /^\d+\s+\w+\(/.test(l))
        .map((line) => {
          const m = /^\d+\s+(\w+)\((?:\d+<([^>]*)>)?/.exec(line)!;
          return { name: m[1]!, fdPath: m[2], line };
        });
    })());
  return { stop, [Symbol.asyncDispose]: async () => void (await stop()) };
}
