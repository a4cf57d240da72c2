/**
 * A private network namespace for multicast tests: a veth pair `va` (10.77.0.1/24) and `vb`
 * (10.77.0.2/24), both inside the namespace, so mDNS never reaches the host's interfaces.
 * Also starts a private D-Bus system bus and avahi-daemon inside the namespace (with its
 * runtime directory on a tmpfs in its own mount namespace) for avahi-browse. Everything is
 * stopped by PID and the namespace deleted on dispose.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { runOk, waitFor } from "./clients";

/** A namespace with avahi running in it. */
export interface MdnsLab extends AsyncDisposable {
  readonly ns: string;
  readonly dir: string;
  /** Environment for avahi-browse (the private bus). */
  readonly busEnv: Record<string, string>;
  /** Prefix to run a command inside the namespace. */
  exec(cmd: string[]): string[];
  avahiLog(): string;
}

export async function startMdnsLab(): Promise<MdnsLab> {
  const ns = `berth-test-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  const dir = mkdtempSync(join(tmpdir(), "berth-mdns-"));
  const exec = (cmd: string[]) => ["ip", "netns", "exec", ns, ...cmd];
  const procs: Subprocess[] = [];
  let avahiLog = "";
  const cleanup = async () => {
    for (const p of procs.reverse()) {
      p.kill("SIGTERM");
      const t = setTimeout(() => p.kill("SIGKILL"), 3000);
      await p.exited;
      clearTimeout(t);
    }
    await Bun.spawn(["ip", "netns", "del", ns], { stderr: "ignore" }).exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await runOk(["ip", "netns", "add", ns]);
    for (const c of [
      ["ip", "link", "set", "lo", "up"],
      ["ip", "link", "add", "va", "type", "veth", "peer", "name", "vb"],
      ["ip", "addr", "add", "10.77.0.1/24", "dev", "va"],
      ["ip", "addr", "add", "10.77.0.2/24", "dev", "vb"],
      ["ip", "link", "set", "va", "up", "multicast", "on"],
      ["ip", "link", "set", "vb", "up", "multicast", "on"],
    ]) await runOk(exec(c));
    const bus = join(dir, "bus");
    writeFileSync(
      join(dir, "bus.conf"),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=${bus}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>\n`,
    );
    const dbus = Bun.spawn(exec(["dbus-daemon", `--config-file=${join(dir, "bus.conf")}`, "--nofork", "--nopidfile"]), { stderr: "inherit", stdout: "ignore" });
    procs.push(dbus);
    await waitFor("the private D-Bus", () => existsSync(bus));
    const busEnv = { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${bus}` };
    writeFileSync(
      join(dir, "avahi.conf"),
      "[server]\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=va,vb\nenable-dbus=yes\ndisallow-other-stacks=no\n[wide-area]\nenable-wide-area=no\n[publish]\npublish-hinfo=no\npublish-workstation=no\n",
    );
    // avahi-daemon keeps its pid file in /run/avahi-daemon: give it a tmpfs /run in its own
    // mount namespace (ip netns exec makes one, not propagated to the host).
    const avahi = Bun.spawn(
      exec(["sh", "-c", `mount -t tmpfs tmpfs /run && mkdir -p /run/avahi-daemon && exec avahi-daemon --no-drop-root --no-chroot --no-rlimits --no-proc-title -f ${join(dir, "avahi.conf")}`]),
      { env: { ...process.env, ...busEnv }, stdout: "pipe", stderr: "pipe" },
    );
    procs.push(avahi);
    (async () => {
      for await (const c of avahi.stderr as ReadableStream<Uint8Array>) avahiLog += new TextDecoder().decode(c);
    })();
    await waitFor("avahi-daemon to be up", () => avahiLog.includes("Server startup complete"), 15_000, 50);
    return { ns, dir, busEnv, exec, avahiLog: () => avahiLog, [Symbol.asyncDispose]: cleanup };
  } catch (err) {
    await cleanup();
    throw new Error(`${(err as Error).message}\navahi log:\n${avahiLog}`);
  }
}
