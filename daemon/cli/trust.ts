/**
 * `berth trust keys add|list|rm`: the trust store (public keys, CA certificates) through a
 * running registry's admin API (/api/v1/trust/keys), never by writing into keys_dir behind
 * the daemon's back: the daemon then re-reads the store, recomputes every signature status
 * at once, checks that the caller is an admin and writes the change to the audit trail.
 * Credentials (client/admin.ts): the stored login (`--registry ALIAS|URL`, `$BERTH_REGISTRY`
 * or the default), or `--url` with `--user USER` (password on the terminal or
 * `--password-stdin`) or `--token-file FILE` (the admin token of `[http] admin_token_file`).
 */
import { readFileSync } from "node:fs";
import { ADMIN_FLAGS, TOKEN_FLAG, connectAdmin, finishAdmin, usesUrl } from "../client/admin";
import { parseArgs } from "../client/args";
import { ClientError, EXIT } from "../client/errors";
import { printable, printJson, table } from "../client/output";
import { COMMAND_HELP } from "./usage";

const USAGE = COMMAND_HELP.trust!;

type Entry = { name: string; kind: string; id: string; subject?: string; notAfter?: string; keyType?: string };

/** Runs the command; returns the exit code. */
export async function trustCommand(argv: string[]): Promise<number> {
  let legacy = usesUrl(argv);
  try {
    const a = parseArgs(argv, ADMIN_FLAGS, TOKEN_FLAG, { bool: ["--replace"] });
    const [group, sub, ...positional] = a.positional;
    if (group !== "keys") throw new ClientError(group === undefined ? "trust needs keys add, list or rm" : `unknown trust command "${group}"`, EXIT.usage);
    if (sub !== "add" && sub !== "list" && sub !== "rm") throw new ClientError(sub === undefined ? "trust keys needs add, list or rm" : `unknown trust keys command "${sub}"`, EXIT.usage);
    const want = sub === "add" ? 2 : sub === "rm" ? 1 : 0;
    if (positional.length !== want) {
      throw new ClientError(sub === "add" ? "trust keys add needs NAME and FILE (a PEM public key or CA certificate)" : sub === "rm" ? "trust keys rm needs NAME" : `unexpected argument "${positional[0]}"`, EXIT.usage);
    }
    const connection = await connectAdmin(a, { withUrl: "credentials" });
    legacy = connection.legacy;
    const { client } = connection;
    const what = `trust keys ${sub} failed`;
    if (sub === "rm") {
      await (await client.ok(`/api/v1/trust/keys/${encodeURIComponent(positional[0]!)}`, what, { method: "DELETE" })).body?.cancel();
      return (console.log(`removed ${printable(positional[0]!)}`), EXIT.ok);
    }
    let j: { installed?: Entry[]; keys?: Entry[]; problems?: { name: string; error: string }[] };
    if (sub === "add") {
      const [name, file] = positional as [string, string];
      let pem: string;
      try {
        pem = readFileSync(file, "utf8");
      } catch (err) {
        throw new ClientError(`cannot read "${file}": ${(err as Error).message}`, EXIT.error);
      }
      const query = `?name=${encodeURIComponent(name)}${a.flags.has("--replace") ? "&replace=true" : ""}`;
      j = await client.json(`/api/v1/trust/keys${query}`, what, { method: "POST", headers: { "Content-Type": "application/x-pem-file" }, body: pem });
    } else j = await client.json("/api/v1/trust/keys", what);
    if (a.flags.has("--json")) return (printJson(j), EXIT.ok);
    const entries = (sub === "add" ? j.installed : j.keys) ?? [];
    const rows = entries.map((e) => [e.name, e.kind === "key" ? `key (${e.keyType})` : "CA", e.id, e.kind === "ca" ? `${e.subject} until ${e.notAfter}` : ""].map(String));
    console.log(table(["NAME", "KIND", "ID", "CERTIFICATE"], rows));
    for (const p of sub === "list" ? (j.problems ?? []) : []) console.error(`berth: ${printable(p.name)} is not used: ${printable(p.error)}`);
    return EXIT.ok;
  } catch (err) {
    return finishAdmin(err, USAGE, legacy);
  }
}
