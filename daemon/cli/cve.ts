/**
 * `berth cve`: vulnerability results and the vulnerability database, through a running
 * registry's API (/api/v1/cve), never by touching its files. `berth cve db import FILE`
 * streams the file to the registry (which verifies it and swaps it in); `berth cve db
 * status` shows the database in service; `berth cve REF` shows an image's findings.
 */
import { createReadStream, readFileSync, statSync } from "node:fs";
import { Readable } from "node:stream";
import { text as readText } from "node:stream/consumers";
import { COMMAND_HELP, usageError } from "./usage";
import { printable } from "../client/output";

const USAGE = COMMAND_HELP.cve!;

interface Args {
  url?: string;
  user?: string;
  passwordStdin: boolean;
  tokenFile?: string;
  ca?: string;
  json: boolean;
  positional: string[];
}

function parse(argv: string[]): Args | string {
  const a: Args = { passwordStdin: false, json: false, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--url") a.url = value().replace(/\/+$/, "");
    else if (arg === "--user") a.user = value();
    else if (arg === "--token-file") a.tokenFile = value();
    else if (arg === "--ca") a.ca = value();
    else if (arg === "--password-stdin") a.passwordStdin = true;
    else if (arg === "--json") a.json = true;
    else if (arg.startsWith("--")) return `unknown argument "${arg}"`;
    else a.positional.push(arg);
  }
  if (!a.url) return "--url is required";
  if (!/^https?:\/\//.test(a.url)) return `--url "${a.url}" must start with http:// or https://`;
  if (a.user !== undefined && !a.passwordStdin) return "--user needs --password-stdin (the password is read from standard input)";
  const [first, second] = a.positional;
  if (first === undefined) return "cve needs an image reference, or db import FILE / db status";
  if (first === "db") {
    if (second === "import" && a.positional.length === 3) return a;
    if (second === "status" && a.positional.length === 2) return a;
    return second === "import" ? "cve db import needs one FILE" : `unknown cve db command "${second ?? ""}"; use import FILE or status`;
  }
  if (a.positional.length !== 1) return `unexpected argument "${a.positional[1]}"`;
  return a;
}

/** Splits "repo:tag" / "repo@sha256:…" (a port in a registry host is not a tag). */
export function splitReference(ref: string): { repo: string; reference: string } | undefined {
  const at = ref.indexOf("@");
  if (at > 0) return { repo: ref.slice(0, at), reference: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(":");
  if (colon > 0 && !ref.slice(colon).includes("/")) return { repo: ref.slice(0, colon), reference: ref.slice(colon + 1) };
  return ref ? { repo: ref, reference: "latest" } : undefined;
}

function errorText(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: string; errors?: { message: string; detail?: unknown }[] };
    return j.error ?? j.errors?.map((e) => e.detail ?? e.message).join("; ") ?? text;
  } catch {
    return text;
  }
}

/** Runs the command; returns the exit code. */
export async function cveCommand(argv: string[]): Promise<number> {
  let a: Args | string;
  try {
    a = parse(argv);
  } catch (err) {
    return usageError((err as Error).message, USAGE);
  }
  if (typeof a === "string") return usageError(a, USAGE);
  try {
    const headers: Record<string, string> = {};
    if (a.user !== undefined) headers.Authorization = `Basic ${Buffer.from(`${a.user}:${(await readText(process.stdin)).replace(/\r?\n$/, "")}`).toString("base64")}`;
    else if (a.tokenFile) headers.Authorization = `Bearer ${readFileSync(a.tokenFile, "utf8").trim()}`;
    const tls = a.ca ? { tls: { ca: readFileSync(a.ca, "utf8") } } : {};
    const [first, second, third] = a.positional;
    let res: Response;
    if (first === "db" && second === "import") {
      const size = statSync(third!, { throwIfNoEntry: false })?.size;
      if (size === undefined) return (console.error(`berth: "${third}" does not exist`), 1);
      const body = Readable.toWeb(createReadStream(third!)) as ReadableStream<Uint8Array>;
      res = await fetch(`${a.url}/api/v1/cve/db`, { method: "PUT", headers: { ...headers, "Content-Type": "application/octet-stream", "Content-Length": String(size) }, body, duplex: "half", ...tls } as RequestInit);
    } else if (first === "db") {
      res = await fetch(`${a.url}/api/v1/cve/db`, { headers, ...tls });
    } else {
      const ref = splitReference(first!);
      if (!ref) return usageError(`"${first}" is not an image reference`, USAGE);
      res = await fetch(`${a.url}/api/v1/cve/image?repo=${encodeURIComponent(ref.repo)}&reference=${encodeURIComponent(ref.reference)}`, { headers, ...tls });
    }
    const text = await res.text();
    if (!res.ok) return (console.error(`berth: cve failed: ${res.status} ${printable(String(errorText(text)))}`), 1);
    const j = JSON.parse(text);
    // OS names, package names and versions come from the image's own files: shown, never obeyed by the terminal
    const p = (v: unknown) => printable(String(v));
    if (a.json) return (console.log(JSON.stringify(j, null, 2)), 0);
    if (first === "db") {
      const s = second === "import" ? j.status : j;
      if (!s.present) return (console.log("no vulnerability database imported"), 0);
      console.log(p(`${second === "import" ? "imported: " : ""}Grype schema ${s.schemaVersion}, built ${s.built}, imported ${s.imported}, ${s.bytes} bytes, checksum ${s.checksum ?? "not checked (since restart)"}`));
      return 0;
    }
    console.log(p(`${j.repo}@${j.digest}  ${j.os ?? "unknown OS"}, ${j.packages} packages, scanned ${j.scannedAt} (database built ${j.dbBuilt})`));
    console.log(p(`${j.count} vulnerabilities, worst ${j.maxSeverity}: ${Object.entries(j.counts as Record<string, number>).map(([k, v]) => `${k} ${v}`).join(", ")}`));
    if (j.error) console.log(`note: ${p(j.error)}`);
    type F = { id: string; package: string; version: string; fixedIn?: string; fixState: string; severity: string };
    const rows = (j.findings as F[]).map((f) => [String(f.severity).toUpperCase(), f.id, f.package, f.version, f.fixedIn ?? `(${f.fixState})`].map(p));
    const head = ["SEVERITY", "ID", "PACKAGE", "INSTALLED", "FIXED IN"];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const r of [head, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
    return 0;
  } catch (err) {
    console.error(`berth: cve failed: ${printable((err as Error).message)}`);
    return 1;
  }
}
