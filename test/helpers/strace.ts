/**
 * Reads an `strace -f -yy -o FILE` trace into events and answers durability questions about
 * it by path, not by exact syscall sequence, so that it holds whatever thread of Bun's pool
 * runs an operation: a call split by another thread into `<unfinished ...>` and
 * `<... resumed>` becomes one event that starts at the first line and ends at the second.
 * Event order is the order strace saw the calls enter and return, which is a real order for
 * calls that do not overlap.
 */
import { dirname } from "node:path";

/** One traced system call. */
export interface TraceEvent {
  pid: number;
  name: string;
  /** Arguments and result as strace printed them (both halves of a split call joined). */
  text: string;
  /** Index of the line where the call entered, and where it returned. */
  start: number;
  end: number;
  /** Path of the first argument when it is a descriptor (`-y`), e.g. the file fsync'ed. */
  fdPath?: string;
  /** The path a successful openat returned a descriptor for. */
  opened?: string;
  /** Quoted string arguments in order (paths of link, rename, unlink, mkdir). */
  strings: string[];
  ok: boolean;
}

/** Syscalls that push file data or a directory to stable storage. */
export const SYNCS = new Set(["fsync", "fdatasync", "sync_file_range"]);
/** Syscalls that write to a descriptor. */
export const WRITES = new Set(["write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg"]);

const LINE = /^(\d+)\s+(.*)$/;

/** Parses the text of a trace written with `-f -yy`. */
export function parseTrace(text: string): TraceEvent[] {
  const events: TraceEvent[] = [];
  const open = new Map<number, { name: string; head: string; start: number }>();
  const lines = text.split("\n");
  lines.forEach((raw, index) => {
    const m = LINE.exec(raw);
    if (!m) return;
    const pid = Number(m[1]);
    const body = m[2]!;
    if (body.startsWith("+++") || body.startsWith("---")) return;
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(body);
    if (resumed) {
      const head = open.get(pid);
      open.delete(pid);
      if (head) events.push(makeEvent(pid, head.name, head.head + resumed[2]!, head.start, index));
      return;
    }
    const call = /^(\w+)\((.*)$/.exec(body);
    if (!call) return;
    if (body.endsWith("<unfinished ...>")) {
      open.set(pid, { name: call[1]!, head: call[2]!.slice(0, -"<unfinished ...>".length), start: index });
      return;
    }
    events.push(makeEvent(pid, call[1]!, call[2]!, index, index));
  });
  return events;
}

function makeEvent(pid: number, name: string, text: string, start: number, end: number): TraceEvent {
  const fd = /^(\d+)<([^>]*)>/.exec(text);
  const result = /\)\s+= (-?\d+)(?:<([^>]*)>)?/.exec(text);
  const ok = result !== null && !result[1]!.startsWith("-");
  const strings = [...text.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((s) => s[1]!);
  return { pid, name, text, start, end, fdPath: fd?.[2], opened: name === "openat" && ok ? result?.[2] : undefined, strings, ok };
}

/** Source and target of a successful link or rename event. */
export function twoPaths(e: TraceEvent): { src: string; dst: string } {
  return { src: e.strings[0]!, dst: e.strings[1]! };
}

/** Successful events called one of `names`. */
export function calls(events: TraceEvent[], ...names: string[]): TraceEvent[] {
  return events.filter((e) => e.ok && names.includes(e.name));
}

/** Sync events (fsync, fdatasync, sync_file_range) on a descriptor of `path`. */
export function syncsOf(events: TraceEvent[], path: string): TraceEvent[] {
  return events.filter((e) => e.ok && SYNCS.has(e.name) && e.fdPath === path);
}

/** Writes of data to a descriptor of `path`. */
export function writesTo(events: TraceEvent[], path: string): TraceEvent[] {
  return events.filter((e) => e.ok && WRITES.has(e.name) && e.fdPath === path);
}

/** The events entered after `after` returned and returned before `before` entered. */
export function between(events: TraceEvent[], after: number, before: number): TraceEvent[] {
  return events.filter((e) => e.start > after && e.end < before);
}

/** Directory fsyncs of the directory holding `path`, entered after `after` and returned before `before`. */
export function dirSyncsAfter(events: TraceEvent[], path: string, after: number, before: number): TraceEvent[] {
  return between(syncsOf(events, dirname(path)), after, before);
}

/** HTTP responses the daemon wrote on TCP sockets, in order, with their status codes. */
export function responses(events: TraceEvent[]): { status: number; event: TraceEvent }[] {
  const out: { status: number; event: TraceEvent }[] = [];
  for (const e of events) {
    if (!e.ok || !WRITES.has(e.name) || !e.fdPath?.startsWith("TCP:")) continue;
    const m = /"HTTP\/1\.1 (\d{3}) /.exec(e.text);
    if (m) out.push({ status: Number(m[1]), event: e });
  }
  return out;
}
