/**
 * `berth login` and `berth logout`: registry aliases with their credentials in the client's
 * credentials file (client/credentials.ts, 0600). A login is checked against the registry
 * before anything is stored: credentials it refuses are not written (exit 4).
 */
import { text } from "node:stream/consumers";
import { ClientError, EXIT } from "../client/errors";
import { aliasOf, credentialsPath, normaliseUrl, readCredentials, readPassword, writeCredentials, type RegistryEntry } from "../client/credentials";
import { parseArgs, timeoutOf } from "../client/args";
import { RegistryClient } from "../client/http";

/** `berth login URL [--alias NAME] [--user USER] [--password-stdin | --token-stdin] [--ca FILE] [--default]`. */
export async function loginCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, { bool: ["--password-stdin", "--token-stdin", "--default", "--json"], value: ["--alias", "--user", "--ca", "--timeout"] });
  if (a.positional.length !== 1) throw new ClientError(a.positional.length === 0 ? "login needs the registry's URL (or host:port)" : `unexpected argument "${a.positional[1]}"`, EXIT.usage);
  const file = readCredentials();
  const given = a.positional[0]!;
  // an existing alias may be logged into again without repeating its URL
  const known = Object.hasOwn(file.registries, given) ? file.registries[given] : undefined;
  const url = known ? known.url : normaliseUrl(given);
  const alias = a.values.get("--alias") ?? (known ? given : aliasOf(url));
  if (!/^[A-Za-z0-9][A-Za-z0-9._:\-\[\]]*$/.test(alias)) throw new ClientError(`alias "${alias}" may hold only letters, digits and . _ : -`, EXIT.usage);
  const entry: RegistryEntry = { url };
  const ca = a.values.get("--ca") ?? known?.ca;
  if (ca !== undefined) entry.ca = ca;
  if (a.flags.has("--password-stdin") && a.flags.has("--token-stdin")) throw new ClientError("--password-stdin and --token-stdin exclude each other", EXIT.usage);
  if (a.flags.has("--token-stdin")) {
    entry.token = (await text(process.stdin)).trim();
    if (!entry.token) throw new ClientError("no token on standard input", EXIT.usage);
  } else {
    const user = a.values.get("--user") ?? known?.username;
    if (user === undefined) throw new ClientError("login needs --user USER (or --token-stdin for the admin token)", EXIT.usage);
    entry.username = user;
    entry.password = await readPassword(a.flags.has("--password-stdin"), `${user}@${alias}`).catch((err: Error) => {
      throw new ClientError(err.message, EXIT.usage);
    });
  }
  const client = new RegistryClient(entry, { timeoutMs: timeoutOf(a) });
  // checked where these credentials will be used: /v2 (a token when the registry issues them), or the admin API for a token
  const res = await client.request(entry.token !== undefined ? "/api/v1/info" : "/v2/");
  await res.body?.cancel();
  if (res.status === 401 || res.status === 403) throw new ClientError(`${url} refused the credentials (${res.status}); nothing stored`, EXIT.denied, res.status);
  if (!res.ok) throw new ClientError(`${url} answered ${res.status} to ${entry.token !== undefined ? "/api/v1/info" : "/v2/"}; is it a registry? Nothing stored`, EXIT.error, res.status);
  file.registries[alias] = entry;
  if (a.flags.has("--default") || file.default === undefined || !Object.hasOwn(file.registries, file.default)) file.default = alias;
  writeCredentials(file);
  console.error(`logged in to ${url} as "${alias}"${file.default === alias ? " (default)" : ""}; credentials in ${credentialsPath()}`);
  return EXIT.ok;
}

/** `berth logout [ALIAS]` (default: the default alias). */
export async function logoutCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, { bool: ["--json"] });
  if (a.positional.length > 1) throw new ClientError(`unexpected argument "${a.positional[1]}"`, EXIT.usage);
  const file = readCredentials();
  const alias = a.positional[0] ?? file.default;
  if (alias === undefined) throw new ClientError("logout needs an ALIAS: no default registry is set", EXIT.usage);
  if (!Object.hasOwn(file.registries, alias)) throw new ClientError(`no registry "${alias}" in ${credentialsPath()}`, EXIT.notFound);
  delete file.registries[alias];
  if (file.default === alias) {
    const rest = Object.keys(file.registries);
    if (rest.length > 0) file.default = rest[0];
    else delete file.default;
  }
  writeCredentials(file);
  console.error(`logged out of "${alias}"`);
  return EXIT.ok;
}
