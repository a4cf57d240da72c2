/**
 * `berth cve`: vulnerability results and the vulnerability database, through a running
 * registry's API (/api/v1/cve), never by touching its files. `berth cve db import FILE`
 * streams the file to the registry (which verifies it and swaps it in); `berth cve db
 * status` shows the database in service; `berth cve REF` shows an image's findings. The
 * registry and credentials: the stored login or `--url` and its flags (client/admin.ts).
 */
import { createReadStream, statSync } from "node:fs";
import { Readable } from "node:stream";
import { ADMIN_FLAGS, TOKEN_FLAG, connectAdmin, finishAdmin, usesUrl } from "../client/admin";
import { parseArgs } from "../client/args";
import { ClientError, EXIT } from "../client/errors";
import { printable, printJson, table } from "../client/output";
import { COMMAND_HELP } from "./usage";

const USAGE = COMMAND_HELP.cve!;

/** How long an import may take without `--timeout`: the upload and the registry's check of the file. */
const IMPORT_TIMEOUT_MS = 3_600_000;

/** Splits "repo:tag" / "repo@sha256:…" (a port in a registry host is not a tag). */
export function splitReference(ref: string): { repo: string; reference: string } | undefined {
  const at = ref.indexOf("@");
  if (at > 0) return { repo: ref.slice(0, at), reference: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(":");
  if (colon > 0 && !ref.slice(colon).includes("/")) return { repo: ref.slice(0, colon), reference: ref.slice(colon + 1) };
  return ref ? { repo: ref, reference: "latest" } : undefined;
}

/** The positional arguments checked: an image reference, `db import FILE` or `db status`. */
function checkPositional([first, second, ...rest]: string[]): void {
  if (first === undefined) throw new ClientError("cve needs an image reference, or db import FILE / db status", EXIT.usage);
  if (first === "db") {
    if (second === "import" && rest.length === 1) return;
    if (second === "status" && rest.length === 0) return;
    throw new ClientError(second === "import" ? "cve db import needs one FILE" : `unknown cve db command "${second ?? ""}"; use import FILE or status`, EXIT.usage);
  }
  if (second !== undefined) throw new ClientError(`unexpected argument "${second}"`, EXIT.usage);
}

type Status = { present: boolean; schemaVersion?: string; built?: string; imported?: string; bytes?: number; checksum?: string };
type Finding = { id: string; package: string; version: string; fixedIn?: string; fixState: string; severity: string };

/** Runs the command; returns the exit code. */
export async function cveCommand(argv: string[]): Promise<number> {
  let legacy = usesUrl(argv);
  try {
    const a = parseArgs(argv, ADMIN_FLAGS, TOKEN_FLAG);
    checkPositional(a.positional);
    const [first, second, file] = a.positional as [string, string?, string?];
    const ref = first === "db" ? undefined : splitReference(first);
    if (first !== "db" && !ref) throw new ClientError(`"${first}" is not an image reference`, EXIT.usage);
    const importing = first === "db" && second === "import";
    const connection = await connectAdmin(a, { withUrl: "none", ...(importing && { timeoutMs: IMPORT_TIMEOUT_MS }) });
    legacy = connection.legacy;
    const { client } = connection;
    // OS names, package names and versions come from the image's own files: shown, never obeyed by the terminal
    const p = (v: unknown) => printable(String(v));
    if (first === "db") {
      let s: Status;
      if (importing) {
        const size = statSync(file!, { throwIfNoEntry: false })?.size;
        if (size === undefined) throw new ClientError(`"${file}" does not exist`, EXIT.error);
        const body = Readable.toWeb(createReadStream(file!)) as ReadableStream<Uint8Array>;
        const init = { method: "PUT", headers: { "Content-Type": "application/octet-stream", "Content-Length": String(size) }, body, duplex: "half" };
        const j = await client.json<{ status: Status }>("/api/v1/cve/db", "cve failed", init as RequestInit);
        if (a.flags.has("--json")) return (printJson(j), EXIT.ok);
        s = j.status;
      } else {
        s = await client.json<Status>("/api/v1/cve/db", "cve failed");
        if (a.flags.has("--json")) return (printJson(s), EXIT.ok);
      }
      if (!s.present) return (console.log("no vulnerability database imported"), EXIT.ok);
      console.log(p(`${importing ? "imported: " : ""}Grype schema ${s.schemaVersion}, built ${s.built}, imported ${s.imported}, ${s.bytes} bytes, checksum ${s.checksum ?? "not checked (since restart)"}`));
      return EXIT.ok;
    }
    type Image = { repo: string; digest: string; os?: string; packages: number; scannedAt: string; dbBuilt: string; count: number; maxSeverity: string; counts: Record<string, number>; error?: string; findings: Finding[] };
    const j = await client.json<Image>(`/api/v1/cve/image?repo=${encodeURIComponent(ref!.repo)}&reference=${encodeURIComponent(ref!.reference)}`, "cve failed");
    if (a.flags.has("--json")) return (printJson(j), EXIT.ok);
    console.log(p(`${j.repo}@${j.digest}  ${j.os ?? "unknown OS"}, ${j.packages} packages, scanned ${j.scannedAt} (database built ${j.dbBuilt})`));
    console.log(p(`${j.count} vulnerabilities, worst ${j.maxSeverity}: ${Object.entries(j.counts).map(([k, v]) => `${k} ${v}`).join(", ")}`));
    if (j.error) console.log(`note: ${p(j.error)}`);
    const rows = j.findings.map((f) => [String(f.severity).toUpperCase(), f.id, f.package, f.version, f.fixedIn ?? `(${f.fixState})`].map(String));
    console.log(table(["SEVERITY", "ID", "PACKAGE", "INSTALLED", "FIXED IN"], rows));
    return EXIT.ok;
  } catch (err) {
    return finishAdmin(err, USAGE, legacy);
  }
}
