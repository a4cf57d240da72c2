/**
 * `berth keys create|list|revoke`: API keys through a running registry's admin API, never by
 * touching the key store file (the daemon owns it). The registry and user are `--url` and
 * `--user`, or come from the client's stored credentials (`berth login`; `--registry ALIAS|URL`,
 * `$BERTH_REGISTRY` or the default). The password comes from the stored login (for its own
 * user), a terminal prompt without echo, or standard input with `--password-stdin`; never
 * from an argument.
 */
import { readFileSync } from "node:fs";
import { text } from "node:stream/consumers";
import { parseDuration } from "../config/schema";
import { readCredentials, resolveRegistry, type RegistryEntry } from "../client/credentials";
import { ClientError } from "../client/errors";
import { printable } from "../client/output";
import { COMMAND_HELP, usageError } from "./usage";

const USAGE = COMMAND_HELP.keys!;

interface Args {
  sub: string;
  url?: string;
  registry?: string;
  user?: string;
  label?: string;
  expires?: number;
  scopes: { repos: string[]; actions: string[] }[];
  passwordStdin: boolean;
  ca?: string;
  json: boolean;
  positional: string[];
}

function parse(argv: string[]): Args | string {
  const [sub, ...rest] = argv;
  if (sub !== "create" && sub !== "list" && sub !== "revoke") return sub === undefined ? "keys needs create, list or revoke" : `unknown keys command "${sub}"`;
  const a: Args = { sub, scopes: [], passwordStdin: false, json: false, positional: [] };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const value = () => {
      const v = rest[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--url") a.url = value().replace(/\/+$/, "");
    else if (arg === "--registry") a.registry = value();
    else if (arg === "--user") a.user = value();
    else if (arg === "--label") a.label = value();
    else if (arg === "--ca") a.ca = value();
    else if (arg === "--password-stdin") a.passwordStdin = true;
    else if (arg === "--json") a.json = true;
    else if (arg === "--expires") {
      const v = value();
      const s = parseDuration(v);
      if (s === undefined || s <= 0) return `--expires "${v}" is not a duration such as 90d or 12h`;
      a.expires = s;
    } else if (arg === "--scope") {
      const v = value();
      const at = v.lastIndexOf(":");
      if (at <= 0 || at === v.length - 1) return `--scope "${v}" is not GLOB:ACTIONS (e.g. 'factory/*:pull,push')`;
      a.scopes.push({ repos: [v.slice(0, at)], actions: v.slice(at + 1).split(",") });
    } else if (arg.startsWith("--")) return `unknown argument "${arg}"`;
    else a.positional.push(arg);
  }
  if (a.url !== undefined && a.registry !== undefined) return "give --url or --registry, not both";
  if (a.url !== undefined && !/^https?:\/\//.test(a.url)) return `--url "${a.url}" must start with http:// or https://`;
  if (a.url !== undefined && a.user === undefined) return "--user is required with --url";
  if (a.sub === "create" && a.label === undefined) return "keys create needs --label";
  if (a.sub === "revoke" && a.positional.length !== 1) return "keys revoke needs one key ID";
  if (a.sub !== "revoke" && a.positional.length > 0) return `unexpected argument "${a.positional[0]}"`;
  return a;
}

/** Reads a password (exported for berth login): all of stdin (one trailing newline dropped), or a no-echo terminal prompt. */
export async function readPassword(fromStdin: boolean, user: string): Promise<string> {
  if (fromStdin) return (await text(process.stdin)).replace(/\r?\n$/, "");
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

const when = (iso: string | null) => (iso === null ? "never" : iso.replace(/\.\d{3}Z$/, "Z"));

/** Runs the command; returns the exit code. */
export async function keysCommand(argv: string[]): Promise<number> {
  let a: Args | string;
  try {
    a = parse(argv);
  } catch (err) {
    return usageError((err as Error).message, USAGE);
  }
  if (typeof a === "string") return usageError(a, USAGE);
  try {
    // without --url: the registry (and its login) from the stored credentials
    const stored: RegistryEntry = a.url !== undefined ? { url: a.url } : resolveRegistry(a.registry, readCredentials()).entry;
    const user = a.user ?? stored.username;
    if (user === undefined) return usageError(`no user for ${stored.url}: pass --user, or run berth login first`, USAGE);
    const password = !a.passwordStdin && stored.password !== undefined && user === stored.username ? stored.password : await readPassword(a.passwordStdin, user);
    const headers: Record<string, string> = { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` };
    const ca = a.ca ?? stored.ca;
    const tls = ca ? { tls: { ca: readFileSync(ca, "utf8") } } : {};
    const base = `${stored.url.replace(/\/+$/, "")}/api/v1/keys`;
    let res: Response;
    if (a.sub === "create") {
      const body = { label: a.label, ...(a.expires !== undefined && { expires_in: a.expires }), ...(a.scopes.length > 0 && { scopes: a.scopes }) };
      res = await fetch(base, { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body), ...tls });
    } else if (a.sub === "list") res = await fetch(base, { headers, ...tls });
    else res = await fetch(`${base}/${encodeURIComponent(a.positional[0]!)}`, { method: "DELETE", headers, ...tls });
    const text = await res.text();
    if (!res.ok) {
      let message = text;
      try {
        const j = JSON.parse(text) as { error?: string; errors?: { message: string; detail?: unknown }[] };
        message = j.error ?? j.errors?.map((e) => e.detail ?? e.message).join("; ") ?? text;
      } catch {
        // not JSON: show it as it came
      }
      console.error(`berth: ${a.sub} failed: ${res.status} ${printable(String(message))}`);
      return 1;
    }
    if (a.sub === "revoke") return (console.log(`revoked ${a.positional[0]}`), 0);
    const j = JSON.parse(text);
    if (a.json) return (console.log(JSON.stringify(j, null, 2)), 0);
    if (a.sub === "create") {
      console.log(j.key);
      console.error(`key ${printable(String(j.id))} ("${printable(String(j.label))}", expires ${when(j.expires)}): shown once, store it now; use it as the password with any user name`);
      return 0;
    }
    type Row = { id: string; owner: string; label: string; expires: string | null; lastUsed: string | null; scopes: { repos: string[]; actions: string[] }[] };
    const rows = (j.keys as Row[]).map((k) => [k.id, k.owner, when(k.expires), when(k.lastUsed), k.scopes.map((s) => `${s.repos.join(",")}:${s.actions.join(",")}`).join(" ") || "(owner's rights)", k.label]);
    const head = ["ID", "OWNER", "EXPIRES", "LAST USED", "SCOPES", "LABEL"];
    const shown = rows.map((r) => r.map((c) => printable(String(c))));
    const widths = head.map((h, i) => Math.max(h.length, ...shown.map((r) => r[i]!.length)));
    for (const r of [head, ...shown]) console.log(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  "));
    return 0;
  } catch (err) {
    console.error(`berth: keys ${a.sub}: ${printable((err as Error).message)}`);
    return err instanceof ClientError ? err.exit : 1;
  }
}
