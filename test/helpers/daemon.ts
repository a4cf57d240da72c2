/**
 * Starts the real berth daemon as a child process on port 0 against a temp root, reads the
 * bound port from its first log line, and stops it by PID. `await using` releases it.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

const MAIN = resolve(import.meta.dir, "../../daemon/main.ts");

/** A temp directory removed on dispose. */
export function tempDir(prefix = "berth-test-"): { path: string; [Symbol.dispose](): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

/** A running daemon. */
export interface Daemon extends AsyncDisposable {
  readonly url: string;
  /** host:port, as clients name the registry. */
  readonly host: string;
  readonly port: number;
  readonly root: string;
  readonly proc: Subprocess;
  /** The configuration file the daemon was started with. */
  readonly configPath: string;
  /** Everything the daemon logged so far. */
  logs(): string;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
}

/** Options for {@link startDaemon}. */
export interface DaemonOptions {
  /** Storage root; a fresh temp dir (removed on dispose) when omitted. */
  root?: string;
  /** Extra TOML appended to the generated config (e.g. more [storage] keys go in `storage`). */
  storage?: string;
  /** More [http] keys for the generated config. */
  http?: string;
  logLevel?: string;
  /** TOML appended at the end of the config (e.g. [scheduler] or [[sync.registries]]). */
  extra?: string;
  /** Run this executable instead of `bun daemon/main.ts` (e.g. a compiled binary). */
  command?: string[];
  /** Extra environment variables for the daemon process. */
  env?: Record<string, string>;
  /** Full config text to use instead of the generated one (port 0 and a root are up to the caller). */
  config?: string;
  /** How long to wait for "berth listening" (default 30 s; emulated runs need more). */
  startTimeoutMs?: number;
}

/** Starts berth and resolves once it listens. */
export async function startDaemon(options: DaemonOptions = {}): Promise<Daemon> {
  const work = mkdtempSync(join(tmpdir(), "berth-daemon-"));
  const root = options.root ?? join(work, "root");
  const configPath = join(work, "berth.toml");
  writeFileSync(
    configPath,
    options.config ?? `[http]\naddress = "127.0.0.1"\nport = 0\n${options.http ?? ""}\n[storage]\nroot = "${root}"\n${options.storage ?? ""}\n[log]\nlevel = "${options.logLevel ?? "info"}"\n${options.extra ?? ""}\n`,
  );
  const cmd = [...(options.command ?? [process.execPath, MAIN]), "serve", "--config", configPath];
  const proc = Bun.spawn(cmd, { stdout: "ignore", stderr: "pipe", stdin: "ignore", env: { ...process.env, ...options.env } });
  let logs = "";
  let resolvePort!: (port: number) => void;
  let rejectPort!: (err: Error) => void;
  const portPromise = new Promise<number>((res, rej) => {
    resolvePort = res;
    rejectPort = rej;
  });
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) {
      logs += decoder.decode(chunk, { stream: true });
      // [log] format = "json" (the default) or "text"
      const m = /"msg":"berth listening".*?"port":(\d+)/.exec(logs) ?? / INFO berth listening .*?\bport=(\d+)/.exec(logs);
      if (m) resolvePort(Number(m[1]));
    }
    rejectPort(new Error(`berth exited before listening:\n${logs}`));
  })();
  const startMs = options.startTimeoutMs ?? 30_000;
  const timer = setTimeout(() => rejectPort(new Error(`berth did not start within ${startMs / 1000} s:\n${logs}`)), startMs);
  let port: number;
  try {
    port = await portPromise;
  } catch (err) {
    proc.kill("SIGKILL");
    rmSync(work, { recursive: true, force: true });
    throw err;
  } finally {
    clearTimeout(timer);
  }
  let stopped = false;
  const daemon: Daemon = {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    root,
    proc,
    configPath,
    logs: () => logs,
    async stop() {
      if (!stopped) proc.kill("SIGTERM");
      stopped = true;
      return await proc.exited;
    },
    async kill() {
      if (!stopped) proc.kill("SIGKILL");
      stopped = true;
      await proc.exited;
    },
    async [Symbol.asyncDispose]() {
      await daemon.kill();
      rmSync(work, { recursive: true, force: true });
    },
  };
  return daemon;
}

/** Writes a berth config file into `dir` and returns its path. */
export function writeConfig(dir: string, toml: string): string {
  const path = join(dir, "berth.toml");
  writeFileSync(path, toml);
  return path;
}
