/**
 * systemd's readiness protocol (sd_notify(3)): datagrams such as `READY=1` sent to the unix
 * datagram socket named by $NOTIFY_SOCKET, and the watchdog (`WATCHDOG=1` every half of
 * $WATCHDOG_USEC).
 *
 * Bun and Node.js have no unix datagram sockets, so the datagram is sent through libc with
 * bun:ffi (socket, sendto, close). The alternative, spawning `systemd-notify`, sends from
 * another process: systemd then needs NotifyAccess=all, may drop the message when that
 * process has exited before it looks up the sender (a known race), and a fork every watchdog
 * period is a real cost on a small board. With FFI the message comes from the main PID, so
 * the unit keeps NotifyAccess=main. If libc cannot be loaded, notify() reports false and the
 * daemon logs it once; the service then fails its start-up timeout visibly rather than
 * silently. After berth re-executes itself (runtimetune.ts), the socket is one it connected
 * before execve and inherited ($BERTH_NOTIFY_FD): a write(2) on it needs no FFI, which an
 * interpreted engine (`[memory] jit = "off"`) cannot call.
 */
import { closeSync, fstatSync, writeSync } from "node:fs";
import { platform } from "node:os";
import { openLibc } from "./libc";

/** The inherited socket's descriptor from $BERTH_NOTIFY_FD, when it names an open socket. */
function inheritedFd(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  const fd = Number(value);
  try {
    return fstatSync(fd).isSocket() ? fd : undefined;
  } catch {
    return undefined;
  }
}

export const AF_UNIX = 1;
export const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
const SUN_PATH_MAX = 108;

type Libc = {
  socket(domain: number, type: number, protocol: number): number;
  sendto(fd: number, buf: Uint8Array, len: number, flags: number, addr: Uint8Array, addrlen: number): number;
  close(fd: number): number;
};

let libc: Libc | null | undefined;

async function loadLibc(): Promise<Libc | null> {
  if (libc !== undefined) return libc;
  if (platform() !== "linux") return (libc = null);
  const { dlopen, FFIType } = await import("bun:ffi");
  const symbols = {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  } as const;
  try {
    const s = openLibc((name) => dlopen(name, symbols)).symbols;
    return (libc = {
      socket: (d, t, p) => s.socket(d, t, p),
      sendto: (fd, buf, len, flags, addr, addrlen) => Number(s.sendto(fd, buf, len, flags, addr, addrlen)),
      close: (fd) => s.close(fd),
    });
  } catch {
    // no C library, or bun:ffi refuses (interpreted): notify() reports false
  }
  return (libc = null);
}

/** Encodes a sockaddr_un for `path` ("@name" is an abstract socket). Throws when too long. */
export function sockaddrUnix(path: string): Uint8Array {
  const name = new TextEncoder().encode(path.startsWith("@") ? `\0${path.slice(1)}` : path);
  if (name.length >= SUN_PATH_MAX) throw new Error(`NOTIFY_SOCKET path is too long (${name.length} bytes): ${path}`);
  const abstract = path.startsWith("@");
  const addr = new Uint8Array(2 + name.length + (abstract ? 0 : 1));
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true); // sa_family_t is host order; every Bun target is little-endian
  addr.set(name, 2);
  return addr;
}

/** A channel to the service manager; a no-op when not started by one. */
export interface Notifier {
  /** True when $NOTIFY_SOCKET is set. */
  readonly enabled: boolean;
  /** Sends `state` (e.g. "READY=1\nSTATUS=serving"); false when it could not be delivered. */
  notify(state: string): Promise<boolean>;
  /** Starts WATCHDOG=1 pings every half of $WATCHDOG_USEC (when set for this PID); returns a stop function. */
  startWatchdog(): () => void;
  /** Releases the socket. */
  close(): void;
}

/**
 * Creates a {@link Notifier} from the environment (`env` defaults to process.env). Per
 * sd_notify(3), $WATCHDOG_PID, when set, must be this process's PID for the watchdog to apply.
 */
export function createNotifier(env: Record<string, string | undefined> = process.env): Notifier {
  const socketPath = env.NOTIFY_SOCKET;
  let fd = -1;
  let addr: Uint8Array | undefined;
  // a socket already connected to it, inherited across berth's re-execution (runtimetune.ts)
  // (only together with the mark of that re-execution: a stray variable names no socket of ours)
  let inherited = socketPath && env.BERTH_RUNTIME_TUNED !== undefined ? inheritedFd(env.BERTH_NOTIFY_FD) : undefined;
  const send = async (state: string): Promise<boolean> => {
    if (!socketPath) return false;
    if (inherited !== undefined) {
      try {
        const buf = new TextEncoder().encode(state);
        return writeSync(inherited, buf) === buf.length;
      } catch {
        return false;
      }
    }
    const c = await loadLibc();
    if (!c) return false;
    addr ??= sockaddrUnix(socketPath);
    if (fd < 0) fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    const buf = new TextEncoder().encode(state);
    return c.sendto(fd, buf, buf.length, MSG_NOSIGNAL, addr, addr.length) === buf.length;
  };
  return {
    enabled: Boolean(socketPath),
    notify: send,
    startWatchdog() {
      const usec = Number(env.WATCHDOG_USEC);
      const pid = env.WATCHDOG_PID;
      if (!socketPath || !Number.isFinite(usec) || usec <= 0 || (pid !== undefined && Number(pid) !== process.pid)) return () => {};
      // The timer runs on the event loop: if the loop stalls, the pings stop and systemd restarts us.
      const timer = setInterval(() => void send("WATCHDOG=1"), Math.max(1, Math.floor(usec / 2000)));
      timer.unref();
      void send("WATCHDOG=1");
      return () => clearInterval(timer);
    },
    close() {
      if (fd >= 0 && libc) libc.close(fd);
      fd = -1;
      if (inherited !== undefined) {
        try {
          closeSync(inherited);
        } catch {
          // already closed
        }
        inherited = undefined;
      }
    },
  };
}
