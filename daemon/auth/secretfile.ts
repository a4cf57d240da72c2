/**
 * Secret files (htpasswd, the token signing key, the API key store, bind passwords): a file
 * that group or others may read or write is refused, naming the file and the command that
 * fixes it; files berth creates are created 0600 and replaced atomically (temp file in the
 * same directory, fsync, rename, fsync the directory).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";

/** Thrown when a secret file cannot be used; the message says why and how to fix it. */
export class SecretFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SecretFileError";
  }
}

/** Throws when `path` is open to group or others (mode & 0o066). */
export function checkSecretMode(path: string, mode: number): void {
  if ((mode & 0o066) !== 0) {
    throw new SecretFileError(`"${path}" is readable or writable by group or others (mode ${(mode & 0o777).toString(8)}); run chmod 600 "${path}"`);
  }
}

/** Reads a secret file as text after checking its mode. */
export function readSecretFile(path: string): string {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new SecretFileError(`cannot read "${path}" (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  checkSecretMode(path, st.mode);
  return readFileSync(path, "utf8");
}

/**
 * For files berth itself creates (signing key, API key store): false when `path` does not
 * exist; throws {@link SecretFileError} when it is not a regular file or gives any permission
 * to group or others (berth made it 0600, so anything else was changed by hand).
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
    throw new SecretFileError(`secret file "${path}" has mode ${mode}, open beyond its owner; run: chmod 600 ${path}`);
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
