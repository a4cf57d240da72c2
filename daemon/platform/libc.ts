/**
 * The C library, for the few calls Bun has no binding for (flock, sd_notify's datagram,
 * execve), through bun:ffi. One list of where it may be, for every caller: the library this
 * process has mapped (from /proc/self/maps: right for any libc and architecture), then the
 * usual names of glibc and musl.
 */
import { readFileSync } from "node:fs";

/** The path of the C library mapped into this process (glibc or musl), from /proc/self/maps. */
export function libcPath(maps?: string): string | undefined {
  try {
    maps ??= readFileSync("/proc/self/maps", "utf8");
  } catch {
    return undefined;
  }
  for (const line of maps.split("\n")) {
    const path = line.slice(line.indexOf("/")).trim();
    if (line.includes("/") && /\/(libc\.so\.6|libc\.musl-[^/]*\.so\.1|ld-musl-[^/]*\.so\.1)$/.test(path)) return path;
  }
  return undefined;
}

/** Where to look for the C library, in order: the mapped one, then glibc's and musl's usual names. */
export function libcCandidates(): string[] {
  const mapped = libcPath();
  // glibc names its shared object libc.so.6; musl's is libc.so (also reachable as the loader)
  return [...(mapped ? [mapped] : []), "libc.so.6", "libc.so", "/lib/ld-musl-aarch64.so.1", "/lib/ld-musl-x86_64.so.1"];
}

/**
 * `open(path)` for the first candidate it succeeds on (a bun:ffi `dlopen` with the caller's
 * symbols). Throws the last error when none does; an error that no other library would
 * change ("requires the JIT") is thrown at once.
 */
export function openLibc<T>(open: (path: string) => T): T {
  let last: unknown = new Error("no C library found");
  for (const name of libcCandidates()) {
    try {
      return open(name);
    } catch (err) {
      if (/requires the JIT/i.test((err as Error).message)) throw err;
      last = err;
    }
  }
  throw last;
}
