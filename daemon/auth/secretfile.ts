/**
 * Files that hold secrets (the token signing key, the API key store): berth creates them
 * 0600, replaces them atomically (temp file in the same directory, fsync, rename, fsync the
 * directory) and refuses to read one that its group or other users can read, naming the file
 * and the command that fixes it.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";

/** A secret file is group/world readable (or not a regular file); the message says how to fix it. */
export class SecretFileError extends Error {}

/**
 * Throws {@link SecretFileError} when `path` is not a regular file or its mode gives any
 * permission to group or others. Returns false when the file does not exist.
 */
export function checkSecretFile(path: string): boolean {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  if (!st.isFile()) throw new SecretFileError(`secret file "${path}" is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, "0");
    throw new SecretFileError(`secret file "${path}" has mode ${mode}, readable beyond its owner; run: chmod 600 ${path}`);
  }
  return true;
}

/** Writes `data` to `path` atomically with mode 0600 (the parent directory is created 0700). */
export function writeSecretFile(path: string, data: string | Uint8Array): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.berth-tmp-${process.pid}-${crypto.randomUUID()}`);
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  const dfd = openSync(dir, "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
