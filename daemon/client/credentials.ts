/**
 * The client's registry aliases and credentials: one JSON file, by default
 * `$XDG_CONFIG_HOME/berth/credentials.json` (`~/.config/berth/credentials.json`), or
 * `$BERTH_CREDENTIALS`. Written 0600 atomically (temp file, rename) in a 0700 directory; a
 * file readable by group or world is refused, as the daemon refuses such secret files.
 *
 *   { "default": "edge", "registries": { "edge": { "url": "https://10.0.0.2:5000",
 *     "username": "ci", "password": "…", "ca": "/etc/ssl/edge-ca.pem" } } }
 *
 * `password` may be an API key (`berth_…`); `token` is the admin token of
 * `[http] admin_token_file`, sent as Bearer to /api/v1 only. A password not stored is asked
 * for on the terminal without echo, or read from standard input ({@link readPassword}).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { text as readText } from "node:stream/consumers";
import { ClientError, EXIT } from "./errors";

/** One registry as `berth login` stored it. */
export interface RegistryEntry {
  url: string;
  username?: string;
  password?: string;
  /** Admin token (`[http] admin_token_file`), for /api/v1 only. */
  token?: string;
  /** CA certificate file to trust for an https URL. */
  ca?: string;
}

/** The whole file. */
export interface CredentialsFile {
  default?: string;
  registries: Record<string, RegistryEntry>;
}

/** Where the credentials file lives. */
export function credentialsPath(env: Record<string, string | undefined> = process.env): string {
  if (env.BERTH_CREDENTIALS) return env.BERTH_CREDENTIALS;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "berth", "credentials.json");
}

/** Reads the file; an empty one when it does not exist. Throws a ClientError when it is group/world readable or not valid. */
export function readCredentials(path = credentialsPath()): CredentialsFile {
  if (!existsSync(path)) return { registries: {} };
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new ClientError(`credentials file "${path}" is readable by others (mode ${mode.toString(8).padStart(4, "0")}); run chmod 600 "${path}"`, EXIT.error);
  }
  try {
    const j = JSON.parse(readFileSync(path, "utf8")) as CredentialsFile;
    if (typeof j !== "object" || j === null || typeof j.registries !== "object" || j.registries === null) throw new Error("no \"registries\" object");
    return j;
  } catch (err) {
    throw new ClientError(`credentials file "${path}" is not valid: ${(err as Error).message}`, EXIT.error);
  }
}

/** Writes the file 0600 (temp file + rename), creating its directory 0700. */
export function writeCredentials(file: CredentialsFile, path = credentialsPath()): void {
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.tmp`;
  // a fresh file (O_EXCL): whatever sits at the temporary name (a leftover, or a symbolic
  // link someone planted to have the secrets written elsewhere) is removed, not followed
  rmSync(temp, { force: true });
  writeFileSync(temp, JSON.stringify(file, null, 2) + "\n", { mode: 0o600, flag: "wx" });
  chmodSync(temp, 0o600); // whatever the umask did
  renameSync(temp, path);
}

/** The alias a URL gets by default: its host:port. */
export function aliasOf(url: string): string {
  return new URL(url).host;
}

/** Normalises what a user typed as a registry: a URL as it is, a bare host:port as https (http for loopback). */
export function normaliseUrl(text: string): string {
  const t = text.replace(/\/+$/, "");
  if (/^https?:\/\//.test(t)) {
    try {
      new URL(t);
    } catch {
      throw new ClientError(`"${text}" is not a URL`, EXIT.usage);
    }
    return t;
  }
  if (!/^[A-Za-z0-9.\-\[\]:]+$/.test(t)) throw new ClientError(`"${text}" is neither a URL nor a registry alias`, EXIT.usage);
  const loopback = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(t);
  return `${loopback ? "http" : "https"}://${t}`;
}

/**
 * Resolves `--registry` (an alias from the file, or a URL / host:port), else
 * `$BERTH_REGISTRY`, else the file's default. A URL that matches a stored entry's URL uses
 * its credentials. Throws a usage ClientError when nothing names a registry.
 */
export function resolveRegistry(given: string | undefined, file: CredentialsFile, env: Record<string, string | undefined> = process.env): { alias?: string; entry: RegistryEntry } {
  const name = given ?? env.BERTH_REGISTRY ?? file.default;
  if (name === undefined) throw new ClientError("no registry given: pass --registry ALIAS|URL, set BERTH_REGISTRY, or run berth login URL first", EXIT.usage);
  if (Object.hasOwn(file.registries, name)) return { alias: name, entry: file.registries[name]! };
  const url = normaliseUrl(name);
  for (const [alias, entry] of Object.entries(file.registries)) if (entry.url === url) return { alias, entry };
  return { entry: { url } };
}

/** Reads a password (berth login, the admin commands): all of stdin (one trailing newline dropped), or a no-echo terminal prompt. */
export async function readPassword(fromStdin: boolean, user: string): Promise<string> {
  if (fromStdin) return (await readText(process.stdin)).replace(/\r?\n$/, "");
  if (!process.stdin.isTTY) throw new Error("no terminal to ask for the password on; pass it on standard input with --password-stdin");
  process.stderr.write(`Password for ${user}: `);
  const stdin = process.stdin;
  stdin.setRawMode(true);
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let text = "";
      const onData = (chunk: Buffer) => {
        for (const ch of chunk.toString("utf8")) {
          if (ch === "\r" || ch === "\n") return done(() => resolve(text));
          if (ch === "\u0003") return done(() => reject(new Error("interrupted")));
          if (ch === "\u007f" || ch === "\b") text = text.slice(0, -1);
          else text += ch;
        }
      };
      const done = (then: () => void) => {
        stdin.off("data", onData);
        then();
      };
      stdin.on("data", onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write("\n");
  }
}
