/**
 * Reading secret files (htpasswd, key stores, bind passwords): a file that group or others
 * may read or write is refused, and files berth creates are created 0600.
 */
import { readFileSync, statSync, writeFileSync } from "node:fs";

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

/** Writes a secret file created 0600. */
export function writeSecretFile(path: string, data: string | Uint8Array): void {
  writeFileSync(path, data, { mode: 0o600 });
}
