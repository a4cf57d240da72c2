/**
 * Runs the real `berth` command line (daemon/main.ts in a child process) for the client
 * tests, with its own credentials directory (XDG_CONFIG_HOME) and optional standard input.
 */
import { resolve } from "node:path";

const MAIN = resolve(import.meta.dir, "../../daemon/main.ts");

/** What a finished `berth` run gave. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `berth ARGS…` with `configHome` as XDG_CONFIG_HOME; `stdin` is piped in (empty by default: never a terminal). */
export async function berth(configHome: string, args: readonly string[], stdin = "", env: Record<string, string> = {}): Promise<CliResult> {
  const clean = { ...process.env };
  delete clean.BERTH_REGISTRY;
  delete clean.BERTH_CREDENTIALS;
  const proc = Bun.spawn([process.execPath, MAIN, ...args], {
    stdin: new TextEncoder().encode(stdin),
    stdout: "pipe",
    stderr: "pipe",
    env: { ...clean, XDG_CONFIG_HOME: configHome, ...env },
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 60_000);
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Describes a run for assertion messages. */
export function shown(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}
