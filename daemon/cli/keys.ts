/**
 * `berth keys create|list|revoke`: API keys through a running registry's admin API, never by
 * touching the key store file (the daemon owns it). The registry and user come from the
 * client's stored login (`berth login`; `--registry ALIAS|URL`, `$BERTH_REGISTRY` or the
 * default), or from `--url` and `--user` (client/admin.ts). The password comes from the
 * stored login (for its own user), a terminal prompt without echo, or standard input with
 * `--password-stdin`; never from an argument.
 */
import { parseDuration } from "../config/schema";
import { ADMIN_FLAGS, connectAdmin, finishAdmin, usesUrl } from "../client/admin";
import { parseArgs } from "../client/args";
import { ClientError, EXIT } from "../client/errors";
import { printable, printJson, table } from "../client/output";
import { COMMAND_HELP } from "./usage";

const USAGE = COMMAND_HELP.keys!;

type Scope = { repos: string[]; actions: string[] };

/** `--scope GLOB:ACTIONS`. */
function parseScope(v: string): Scope {
  const at = v.lastIndexOf(":");
  if (at <= 0 || at === v.length - 1) throw new ClientError(`--scope "${v}" is not GLOB:ACTIONS (e.g. 'factory/*:pull,push')`, EXIT.usage);
  return { repos: [v.slice(0, at)], actions: v.slice(at + 1).split(",") };
}

const when = (iso: string | null) => (iso === null ? "never" : iso.replace(/\.\d{3}Z$/, "Z"));

/** Runs the command; returns the exit code. */
export async function keysCommand(argv: string[]): Promise<number> {
  let legacy = usesUrl(argv);
  try {
    // --scope may repeat: its values are collected apart, the rest parsed as every admin command's
    const scopes: Scope[] = [];
    const rest: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] === "--scope") {
        const v = argv[++i];
        if (v === undefined) throw new ClientError("--scope needs a value", EXIT.usage);
        scopes.push(parseScope(v));
      } else if (argv[i]!.startsWith("--scope=")) scopes.push(parseScope(argv[i]!.slice("--scope=".length)));
      else rest.push(argv[i]!);
    }
    const a = parseArgs(rest, ADMIN_FLAGS, { value: ["--label", "--expires"] });
    const [sub, ...positional] = a.positional;
    if (sub !== "create" && sub !== "list" && sub !== "revoke") throw new ClientError(sub === undefined ? "keys needs create, list or revoke" : `unknown keys command "${sub}"`, EXIT.usage);
    const expiresText = a.values.get("--expires");
    const expires = expiresText === undefined ? undefined : parseDuration(expiresText);
    if (expiresText !== undefined && (expires === undefined || expires <= 0)) throw new ClientError(`--expires "${expiresText}" is not a duration such as 90d or 12h`, EXIT.usage);
    if (sub === "create" && !a.values.has("--label")) throw new ClientError("keys create needs --label", EXIT.usage);
    if (sub === "revoke" && positional.length !== 1) throw new ClientError("keys revoke needs one key ID", EXIT.usage);
    if (sub !== "revoke" && positional.length > 0) throw new ClientError(`unexpected argument "${positional[0]}"`, EXIT.usage);
    const connection = await connectAdmin(a, { withUrl: "user", user: true });
    legacy = connection.legacy;
    const { client } = connection;
    const what = `${sub} failed`;
    if (sub === "revoke") {
      await (await client.ok(`/api/v1/keys/${encodeURIComponent(positional[0]!)}`, what, { method: "DELETE" })).body?.cancel();
      return (console.log(`revoked ${printable(positional[0]!)}`), EXIT.ok);
    }
    if (sub === "create") {
      const body = { label: a.values.get("--label"), ...(expires !== undefined && { expires_in: expires }), ...(scopes.length > 0 && { scopes }) };
      const j = await client.json<{ id: string; key: string; label: string; expires: string | null }>("/api/v1/keys", what, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      if (a.flags.has("--json")) return (printJson(j), EXIT.ok);
      console.log(j.key);
      console.error(`key ${printable(String(j.id))} ("${printable(String(j.label))}", expires ${when(j.expires)}): shown once, store it now; use it as the password with any user name`);
      return EXIT.ok;
    }
    type Row = { id: string; owner: string; label: string; expires: string | null; lastUsed: string | null; scopes: Scope[] };
    const j = await client.json<{ keys: Row[] }>("/api/v1/keys", what);
    if (a.flags.has("--json")) return (printJson(j), EXIT.ok);
    const rows = j.keys.map((k) => [k.id, k.owner, when(k.expires), when(k.lastUsed), k.scopes.map((s) => `${s.repos.join(",")}:${s.actions.join(",")}`).join(" ") || "(owner's rights)", k.label].map(String));
    console.log(table(["ID", "OWNER", "EXPIRES", "LAST USED", "SCOPES", "LABEL"], rows));
    return EXIT.ok;
  } catch (err) {
    return finishAdmin(err, USAGE, legacy);
  }
}
