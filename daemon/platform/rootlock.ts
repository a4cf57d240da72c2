/**
 * One process per storage root: an exclusive flock(2) on `<root>/.berth/lock`, taken before
 * anything under the root is read or changed, held for the life of the process and released
 * by the kernel when the process dies (even by SIGKILL), so a stale lock cannot exist.
 *
 * The holder writes its PID into the file so that a second process can name it. On a full
 * disk nothing here needs space: an existing lock file is opened without writing, the PID is
 * written over the old one in place (and the file emptied if even that fails), and a reader
 * that finds no PID says "another process". When the lock file cannot be created at all
 * (a root from an older berth on a full disk), the `.berth` directory itself is locked; every
 * holder locks the directory too, so the two forms exclude each other.
 *
 * flock comes from libc through bun:ffi (Bun has no binding for it), or from flock(1) where
 * bun:ffi is missing (the Node.js build), behind {@link Flock} so that a caller can supply its own.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { platform } from "node:os";
import { join } from "node:path";
import { openLibc } from "./libc";

/** Tries an exclusive, non-blocking lock on `fd`: "locked", "busy" (held elsewhere), or throws. */
export type Flock = (fd: number) => "locked" | "busy";

/** Thrown when another process holds the root; the message names it. */
export class RootInUseError extends Error {
  constructor(
    readonly root: string,
    /** The holder's PID when it could be read. */
    readonly holder: number | undefined,
  ) {
    super(
      `Storage root "${root}" is in use by ${holder ? `berth process ${holder}` : "another process"} ` +
        `(it holds ${join(root, ".berth", "lock")}); stop that process or give this one another [storage] root`,
    );
    this.name = "RootInUseError";
  }
}

/** A held root lock; release() (or the process's death) frees it. */
export interface RootLock {
  readonly path: string;
  release(): void;
}

const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;
const O_CLOEXEC = 0o2000000;
/** The PID is written padded to this width so that a later holder overwrites it in place. */
const PID_WIDTH = 16;

let ffiFlock: Flock | null | undefined;

/**
 * flock(2) through libc with bun:ffi; where bun:ffi is missing (the Node.js build) or cannot
 * call (Bun interpreting, without its JIT), through util-linux's flock(1); null where neither
 * works (then no locking).
 */
async function libcFlock(): Promise<Flock | null> {
  if (ffiFlock !== undefined) return ffiFlock;
  if (platform() !== "linux") return (ffiFlock = null);
  let ffi: typeof import("bun:ffi");
  try {
    ffi = await import("bun:ffi");
  } catch {
    return (ffiFlock = flockCommand());
  }
  const { dlopen, FFIType, read } = ffi;
  const symbols = {
    flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  } as const;
  try {
    const s = openLibc((name) => dlopen(name, symbols)).symbols;
    return (ffiFlock = (fd) => {
      if (s.flock(fd, LOCK_EX | LOCK_NB) === 0) return "locked";
      const where = s.__errno_location();
      const errno = where ? read.i32(where, 0) : 0;
      if (errno === EWOULDBLOCK) return "busy";
      throw new Error(`flock failed on descriptor ${fd} (errno ${errno})`);
    });
  } catch (err) {
    // bun:ffi needs the engine's JIT: interpreted (`[memory] jit = "off"`) it refuses every
    // library, and flock(1) takes the lock as in the Node.js build
    // (and without flock(1) there is no lock to take: refuse, never run unlocked)
    if (/requires the JIT/i.test((err as Error).message)) return (ffiFlock = flockCommand() ?? noLockWithoutJit);
  }
  return (ffiFlock = null);
}

/** The lock of an interpreted Bun on a system without util-linux's flock(1): none to take, so it refuses. */
const noLockWithoutJit: Flock = () => {
  throw new Error('cannot lock the storage root: the interpreted engine ([memory] jit = "off") has no FFI for flock(2) and util-linux\'s flock(1) is not installed; install util-linux, or set [memory] jit = "baseline"');
};

/**
 * flock(2) through the flock(1) command: the child is handed our descriptor as its fd 3 and
 * locks it. A flock belongs to the open file description, which the child shares, so the
 * lock outlives the child and is held until this process closes the descriptor or dies,
 * exactly as if it had called flock(2) itself. Null when the command is not installed.
 */
export function flockCommand(command = "flock"): Flock | null {
  const BUSY = 75;
  const probe = spawnSync(command, ["--version"], { stdio: "ignore" });
  if (probe.error || probe.status !== 0) return null;
  return (fd) => {
    const run = spawnSync(command, ["--nonblock", "--conflict-exit-code", String(BUSY), "3"], { stdio: ["ignore", "ignore", "pipe", fd] });
    if (run.status === 0) return "locked";
    if (run.status === BUSY) return "busy";
    throw new Error(`flock failed on descriptor ${fd}: ${run.error?.message ?? run.stderr.toString().trim()}`);
  };
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** The PID recorded in the lock file, if one can be read. */
function readHolder(path: string): number | undefined {
  try {
    const pid = Number.parseInt(fs.readFileSync(path, "utf8").trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock of storage root `root`, creating `root/.berth` if needed. Throws
 * {@link RootInUseError} when another process holds it, and the file-system error when the
 * root cannot be opened at all. `flock` defaults to libc's (a no-op lock where there is none).
 */
export async function lockRoot(root: string, flock?: Flock): Promise<RootLock> {
  const lockFn = flock ?? (await libcFlock()) ?? (() => "locked" as const);
  const dir = join(root, ".berth");
  const path = join(dir, "lock");
  fs.mkdirSync(dir, { recursive: true });
  const fds: number[] = [];
  const closeAll = () => {
    for (const fd of fds.splice(0)) fs.closeSync(fd);
  };
  try {
    // The directory first: it needs no space, and it is what a holder without a file locks.
    const dirFd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | O_CLOEXEC);
    fds.push(dirFd);
    let fileFd: number | undefined;
    try {
      fileFd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT | O_CLOEXEC, 0o644);
      fds.push(fileFd);
    } catch (err) {
      if (code(err) !== "ENOSPC" && code(err) !== "EDQUOT" && code(err) !== "EROFS") throw err;
    }
    if (lockFn(dirFd) === "busy" || (fileFd !== undefined && lockFn(fileFd) === "busy")) {
      throw new RootInUseError(root, readHolder(path));
    }
    if (fileFd !== undefined) recordPid(fileFd);
  } catch (err) {
    closeAll();
    throw err;
  }
  return { path, release: closeAll };
}

/** Writes this process's PID over the old one in place; empties the file if that fails. */
function recordPid(fd: number): void {
  const text = `${String(process.pid).padEnd(PID_WIDTH - 1, " ")}\n`;
  try {
    fs.writeSync(fd, text, 0);
    fs.ftruncateSync(fd, text.length);
  } catch {
    try {
      fs.ftruncateSync(fd, 0); // a stale PID would name the wrong process; truncating needs no space
    } catch {
      // nothing more to do: readers then say "another process"
    }
  }
}
