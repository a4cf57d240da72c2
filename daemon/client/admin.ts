/**
 * How the admin commands (`berth keys`, `berth trust keys`, `berth cve`) reach a registry:
 * the client library's stored login (`--registry ALIAS|URL`, else `$BERTH_REGISTRY`, else the
 * default alias of `berth login`), or the older explicit flags they had before it: `--url
 * URL` with `--user USER` (the password from the terminal or `--password-stdin`) or
 * `--token-file FILE` (the admin token, its first line). `--user`, `--password-stdin` and
 * `--token-file` also override the stored login's credentials; `--ca FILE` overrides its CA.
 * On the stored login the commands exit with the client library's codes (errors.ts); with
 * `--url` every failure but a usage error still exits 1, as scripts written for it expect.
 */
import { readFileSync } from "node:fs";
import { finish, timeoutOf, type Parsed } from "./args";
import { readCredentials, readPassword, resolveRegistry, type RegistryEntry } from "./credentials";
import { ClientError, EXIT, type ExitCode } from "./errors";
import { RegistryClient } from "./http";

/** The flags of every admin command (add {@link TOKEN_FLAG} where the admin token is accepted). */
export const ADMIN_FLAGS = { bool: ["--json", "--password-stdin"], value: ["--registry", "--url", "--user", "--ca", "--timeout"] } as const;

/** `--token-file FILE`, for the commands the admin token ([http] admin_token_file) may drive. */
export const TOKEN_FLAG = { value: ["--token-file"] } as const;

/** What a command needs of its credentials. */
export interface AdminNeeds {
  /** With `--url`: "user" (--user), "credentials" (--user or --token-file), "none" (anonymous allowed). */
  withUrl: "user" | "credentials" | "none";
  /** A user (with a password) is needed on the stored login too: an admin token will not do. */
  user?: boolean;
  /** The timeout when `--timeout` is not given, in ms (default: the client's 30 s). */
  timeoutMs?: number;
}

/** A connected admin command: its client, and whether it runs on the old `--url` flags. */
export interface AdminConnection {
  client: RegistryClient;
  legacy: boolean;
}

const usage = (message: string) => new ClientError(message, EXIT.usage);

/** The admin token in `file`: its first line, trimmed. */
function readToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ClientError(`cannot read the token file "${file}": ${(err as Error).message}`, EXIT.error);
  }
  const token = text.split("\n")[0]!.trim();
  if (!token) throw new ClientError(`the token file "${file}" is empty`, EXIT.usage);
  return token;
}

/** The registry and credentials the arguments name, as a client (see the file's opening for the rules). */
export async function connectAdmin(a: Parsed, needs: AdminNeeds): Promise<AdminConnection> {
  const url = a.values.get("--url")?.replace(/\/+$/, "");
  const user = a.values.get("--user");
  const tokenFile = a.values.get("--token-file");
  const fromStdin = a.flags.has("--password-stdin");
  if (url !== undefined && a.values.has("--registry")) throw usage("give --url or --registry, not both");
  if (user !== undefined && tokenFile !== undefined) throw usage("give one of --user USER or --token-file FILE");
  if (url !== undefined) {
    if (!/^https?:\/\//.test(url)) throw usage(`--url "${url}" must start with http:// or https://`);
    if (needs.withUrl === "user" && user === undefined) throw usage("--user is required with --url");
    if (needs.withUrl === "credentials" && user === undefined && tokenFile === undefined) throw usage("give one of --user USER or --token-file FILE");
  }
  // without --url: the registry (and its login) from the stored credentials
  const stored: RegistryEntry = url !== undefined ? { url } : resolveRegistry(a.values.get("--registry"), readCredentials()).entry;
  const entry: RegistryEntry = { url: stored.url, ...(stored.ca !== undefined && { ca: stored.ca }) };
  if (tokenFile !== undefined) entry.token = readToken(tokenFile);
  else if (user !== undefined || fromStdin || needs.user || (stored.username !== undefined && stored.password === undefined && stored.token === undefined)) {
    const name = user ?? stored.username;
    if (name === undefined) throw usage(`no user for ${stored.url}: pass --user, or run berth login first`);
    entry.username = name;
    // the stored password only for the stored user, and only when standard input is not asked for
    entry.password = !fromStdin && stored.password !== undefined && name === stored.username ? stored.password : await readPassword(fromStdin, name);
  } else {
    if (stored.token !== undefined) entry.token = stored.token;
    if (stored.username !== undefined) entry.username = stored.username;
    if (stored.password !== undefined) entry.password = stored.password;
  }
  const ca = a.values.get("--ca");
  const timeoutMs = a.values.has("--timeout") ? timeoutOf(a) : (needs.timeoutMs ?? timeoutOf(a));
  return { client: new RegistryClient(entry, { timeoutMs, ...(ca !== undefined && { ca }) }), legacy: url !== undefined };
}

/**
 * Prints a failure (as {@link finish}) and returns the exit code: the client library's, or
 * on the old `--url` flags 1 for anything but a usage error.
 */
export function finishAdmin(err: unknown, usageText: string, legacy: boolean): ExitCode {
  const code = finish(err, usageText);
  return legacy && code !== EXIT.usage ? EXIT.error : code;
}

/** Whether `argv` uses the old `--url` flag (for {@link finishAdmin} when parsing itself failed). */
export function usesUrl(argv: readonly string[]): boolean {
  return argv.some((arg) => arg === "--url" || arg.startsWith("--url="));
}
