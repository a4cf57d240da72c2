/**
 * The kernel's I/O accounting of a process (`/proc/<pid>/io`, Linux): bytes and system
 * calls of reads and writes, and bytes that reached (or were queued for) the block layer.
 * Undefined where the file does not exist (not Linux, or no permission).
 */
import { readFileSync } from "node:fs";

/** Fields of /proc/<pid>/io. */
export interface ProcIo {
  rchar: number;
  wchar: number;
  syscr: number;
  syscw: number;
  read_bytes: number;
  write_bytes: number;
  cancelled_write_bytes: number;
}

/** Reads /proc/<pid>/io (default: this process). */
export function readProcIo(pid: number | "self" = "self"): ProcIo | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/io`, "utf8");
  } catch {
    return undefined;
  }
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = /^(\w+):\s*(\d+)$/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out as unknown as ProcIo;
}
