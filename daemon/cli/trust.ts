/**
 * `berth trust keys add|list|rm`: the trust store (public keys, CA certificates) through a
 * running registry's admin API (/api/v1/trust/keys), never by writing into keys_dir behind
 * the daemon's back: the daemon then re-reads the store, recomputes every signature status
 * at once, checks that the caller is an admin and writes the change to the audit trail.
 * Credentials: --user USER (password on the terminal or --password-stdin), or --token-file
 * FILE (the admin token of `[http] admin_token_file`, when [auth] is off).
 */
import { readFileSync } from "node:fs";
import { readPassword } from "./keys";
import { printable } from "../client/output";
import { COMMAND_HELP, usageError } from "./usage";

const USAGE = COMMAND_HELP.trust!;

interface Args {
  sub: "add" | "list" | "rm";
  url: string;
  user?: string;
  tokenFile?: string;
  passwordStdin: boolean;
  replace: boolean;
  ca?: string;
  json: boolean;
  positional: string[];
}

function parse(argv: string[]): Args | string {
  const [group, sub, ...rest] = argv;
  if (group !== "keys") return group === undefined ? "trust needs keys add, list or rm" : `unknown trust command "${group}"`;
  if (sub !== "add" && sub !== "list" && sub !== "rm") return sub === undefined ? "trust keys needs add, list or rm" : `unknown trust keys command "${sub}"`;
  const a: Partial<Args> & { positional: string[] } = { sub, passwordStdin: false, replace: false, json: false, positional: [] };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const value = () => {
      const v = rest[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--url") a.url = value().replace(/\/+$/, "");
    else if (arg === "--user") a.user = value();
    else if (arg === "--token-file") a.tokenFile = value();
    else if (arg === "--ca") a.ca = value();
    else if (arg === "--password-stdin") a.passwordStdin = true;
    else if (arg === "--replace") a.replace = true;
    else if (arg === "--json") a.json = true;
    else if (arg.startsWith("--")) return `unknown argument "${arg}"`;
    else a.positional.push(arg);
  }
  if (!a.url) return "--url is required";
  if (!/^https?:\/\//.test(a.url)) return `--url "${a.url}" must start with http:// or https://`;
  if ((a.user === undefined) === (a.tokenFile === undefined)) return "give one of --user USER or --token-file FILE";
  const want = sub === "add" ? 2 : sub === "rm" ? 1 : 0;
  if (a.positional.length !== want) return sub === "add" ? "trust keys add needs NAME and FILE (a PEM public key or CA certificate)" : sub === "rm" ? "trust keys rm needs NAME" : `unexpected argument "${a.positional[0]}"`;
  return a as Args;
}

/** Runs the command; returns the exit code. */
export async function trustCommand(argv: string[]): Promise<number> {
  let a: Args | string;
  try {
    a = parse(argv);
  } catch (err) {
    return usageError((err as Error).message, USAGE);
  }
  if (typeof a === "string") return usageError(a, USAGE);
  try {
    const headers: Record<string, string> = a.user !== undefined
      ? { Authorization: `Basic ${Buffer.from(`${a.user}:${await readPassword(a.passwordStdin, a.user)}`).toString("base64")}` }
      : { Authorization: `Bearer ${readFileSync(a.tokenFile!, "utf8").split("\n")[0]!.trim()}` };
    const tls = a.ca ? { tls: { ca: readFileSync(a.ca, "utf8") } } : {};
    const base = `${a.url}/api/v1/trust/keys`;
    let res: Response;
    if (a.sub === "add") {
      const [name, file] = a.positional as [string, string];
      const pem = readFileSync(file, "utf8");
      res = await fetch(`${base}?name=${encodeURIComponent(name)}${a.replace ? "&replace=true" : ""}`, { method: "POST", headers: { ...headers, "Content-Type": "application/x-pem-file" }, body: pem, ...tls });
    } else if (a.sub === "list") res = await fetch(base, { headers, ...tls });
    else res = await fetch(`${base}/${encodeURIComponent(a.positional[0]!)}`, { method: "DELETE", headers, ...tls });
    const text = await res.text();
    if (!res.ok) {
      let message = text;
      try {
        message = (JSON.parse(text) as { error?: string }).error ?? text;
      } catch {
        // not JSON: show it as it came
      }
      console.error(`berth: trust keys ${a.sub} failed: ${res.status} ${printable(String(message))}`);
      return 1;
    }
    if (a.sub === "rm") return (console.log(`removed ${a.positional[0]}`), 0);
    const j = JSON.parse(text);
    if (a.json) return (console.log(JSON.stringify(j, null, 2)), 0);
    type Entry = { name: string; kind: string; id: string; subject?: string; notAfter?: string; keyType?: string };
    const entries: Entry[] = a.sub === "add" ? j.installed : j.keys;
    const rows = entries.map((e) => [e.name, e.kind === "key" ? `key (${e.keyType})` : "CA", e.id, e.kind === "ca" ? `${e.subject} until ${e.notAfter}` : ""]);
    const head = ["NAME", "KIND", "ID", "CERTIFICATE"];
    const shown = rows.map((r) => r.map((c) => printable(String(c))));
    const widths = head.map((h, i) => Math.max(h.length, ...shown.map((r) => r[i]!.length)));
    for (const r of [head, ...shown]) console.log(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd());
    for (const p of (a.sub === "list" ? j.problems : []) as { name: string; error: string }[]) console.error(`berth: ${printable(p.name)} is not used: ${printable(p.error)}`);
    return 0;
  } catch (err) {
    console.error(`berth: trust keys ${a.sub}: ${printable((err as Error).message)}`);
    return 1;
  }
}
