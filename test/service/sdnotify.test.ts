/**
 * The service-manager path of the real daemon: a unix datagram socket from an independent
 * listener (python3, with SCM_CREDENTIALS to see the sender's PID, as systemd checks
 * NotifyAccess=main) stands in for $NOTIFY_SOCKET. The daemon must send READY=1 once it
 * serves, WATCHDOG=1 pings at half of $WATCHDOG_USEC, RELOADING=1 then READY=1 around a
 * SIGHUP that applies a new log level, and STOPPING=1 on SIGTERM before it exits 0.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startDaemon, tempDir } from "../helpers/daemon";
import { waitFor } from "../helpers/clients";

setDefaultTimeout(60_000);

const LISTENER = resolve(import.meta.dir, "../helpers/notify-listener.py");

type Datagram = { pid: number | null; text: string };

async function listen(path: string) {
  const proc = Bun.spawn(["python3", LISTENER, path, "50"], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const got: Datagram[] = [];
  let ready = false;
  (async () => {
    let buf = "";
    for await (const chunk of proc.stdout) {
      buf += new TextDecoder().decode(chunk);
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if ("listening" in line) ready = true;
        else got.push(line);
      }
    }
  })();
  await waitFor("the notify listener", () => ready);
  return {
    got,
    texts: () => got.map((d) => d.text),
    async [Symbol.asyncDispose]() {
      proc.stdin.end();
      await proc.exited;
    },
  };
}

test("READY=1, WATCHDOG=1, RELOADING=1 on SIGHUP (live log level), STOPPING=1 on SIGTERM, all from the main PID", async () => {
  using dir = tempDir("berth-notify-");
  const socket = join(dir.path, "notify.sock");
  await using listener = await listen(socket);
  await using daemon = await startDaemon({ env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: "200000" }, logLevel: "info" });
  const pid = daemon.proc.pid;

  await waitFor("READY=1", () => listener.texts().some((t) => t.split("\n").includes("READY=1")));
  // The daemon already listened when it said READY=1.
  expect((await fetch(`${daemon.url}/readyz`)).status).toBe(200);
  await waitFor("three watchdog pings", () => listener.texts().filter((t) => t === "WATCHDOG=1").length >= 3, 5_000);
  expect(listener.got.every((d) => d.pid === pid)).toBe(true);

  // SIGHUP with log.level changed: the reload names it among the keys applied live.
  writeFileSync(daemon.configPath, readFileSync(daemon.configPath, "utf8").replace('level = "info"', 'level = "debug"'));
  const readiesBefore = listener.texts().filter((t) => t.startsWith("READY=1")).length;
  daemon.proc.kill("SIGHUP");
  await waitFor("READY=1 after the reload", () => listener.texts().filter((t) => t.startsWith("READY=1")).length > readiesBefore);
  const reloading = listener.texts().findIndex((t) => t.startsWith("RELOADING=1"));
  expect(reloading).toBeGreaterThan(0);
  expect(listener.texts().slice(reloading).some((t) => t.startsWith("READY=1"))).toBe(true);
  expect(daemon.logs()).toContain('"msg":"configuration reloaded","applied":["log.level"]');

  // A bad file on SIGHUP keeps the daemon running with what it has.
  writeFileSync(daemon.configPath, "[log]\nlevel = \"loud\"\n");
  daemon.proc.kill("SIGHUP");
  await waitFor("the reload failure in the log", () => daemon.logs().includes("reload failed"));
  expect(daemon.logs()).toContain("log.level: expected one of");
  expect((await fetch(`${daemon.url}/livez`)).status).toBe(200);

  expect(await daemon.stop()).toBe(0);
  await waitFor("STOPPING=1", () => listener.texts().some((t) => t.startsWith("STOPPING=1")));
  expect(listener.got.every((d) => d.pid === pid)).toBe(true);
});

test("without NOTIFY_SOCKET the daemon sends nothing and runs as before", async () => {
  await using daemon = await startDaemon();
  expect((await fetch(`${daemon.url}/livez`)).status).toBe(200);
  expect(daemon.logs()).not.toContain("could not notify");
  expect(await daemon.stop()).toBe(0);
});

test("a SIGTERM that arrives the moment READY=1 is sent drains and exits 0: the stop signals are handled before READY", async () => {
  using dir = tempDir("berth-notify-early-");
  const script = join(dir.path, "early.ts");
  const service = resolve(import.meta.dir, "../../daemon/service.ts");
  const load = resolve(import.meta.dir, "../../daemon/config/load.ts");
  const logm = resolve(import.meta.dir, "../../daemon/log.ts");
  writeFileSync(script, `
import { runService } from ${JSON.stringify(service)};
import { parseConfig } from ${JSON.stringify(load)};
import { createLogger } from ${JSON.stringify(logm)};
await runService({
  config: parseConfig("", "t"),
  configPath: undefined,
  log: createLogger("error", "json"),
  close: async () => console.log("drained"),
  notifier: {
    enabled: true,
    // systemd's answer to READY=1 can be an immediate stop: the signal lands as READY leaves
    notify: async (state) => (state.startsWith("READY=1") && process.kill(process.pid, "SIGTERM"), true),
    startWatchdog: () => () => {},
    close() {},
  },
});
console.log("stopped");
`);
  const proc = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  expect({ code, signal: proc.signalCode, out }).toEqual({ code: 0, signal: null, out: "drained\nstopped\n" });
});
