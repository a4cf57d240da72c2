/**
 * `berth status`, `berth sync status|run` and the online `berth gc|scrub --registry R`:
 * a running daemon through its admin API (/api/v1), as an admin (credentials of the alias:
 * Basic, an API key, or the admin token). Long actions run as tasks (`?async=true`) that
 * the command follows with a progress bar on a terminal and silently in a pipe.
 */
import { COMMON, connect, parseArgs } from "../client/args";
import { ClientError, EXIT } from "../client/errors";
import { bytes, duration, printable, printJson, ProgressBar, table } from "../client/output";
import { runTask } from "../client/registry";

/** `berth gc|scrub --registry R [--dry-run]`: one pass on the running daemon, followed as a task. */
export async function onlinePassCommand(kind: "gc" | "scrub", argv: string[]): Promise<number> {
  const a = parseArgs(argv, COMMON, { bool: kind === "gc" ? ["--dry-run"] : [] });
  if (a.positional.length > 0) throw new ClientError(`unexpected argument "${a.positional[0]}"`, EXIT.usage);
  const { client } = connect(a);
  const path = kind === "gc" ? `/api/v1/storage/gc${a.flags.has("--dry-run") ? "?dry_run=true" : ""}` : "/api/v1/storage/scrub";
  const task = await runTask(client, path, kind, new ProgressBar(kind === "gc" ? "gc" : "scrub"));
  if (a.flags.has("--json")) return (printJson(task), EXIT.ok);
  const r = (task.result ?? {}) as Record<string, unknown>;
  if (kind === "scrub") {
    const q = (r.quarantined as unknown[] | undefined) ?? [];
    console.log(`scrub: ${r.blobsChecked ?? 0} blobs (${bytes(Number(r.bytesChecked ?? 0))}) checked, ${q.length} quarantined${r.aborted ? " (aborted)" : ""}`);
    return EXIT.ok;
  }
  const count = (v: unknown) => (Array.isArray(v) ? v.length : typeof v === "number" ? v : 0);
  const freed = Number(r.bytesFreed ?? r.freedBytes ?? 0);
  const parts = ["manifests", "blobs", "pool", "uploads"].filter((k) => k in r).map((k) => `${count(r[k])} ${k}`);
  console.log(`gc${r.dryRun ? " (dry run, nothing changed)" : ""}: ${parts.join(", ") || "done"}${freed ? `, ${bytes(freed)} freed` : ""}`);
  return EXIT.ok;
}

/** One upstream as /api/v1/sync shows it (the fields the table reads). */
interface Upstream {
  name: string;
  preferredUrl?: string;
  /** The circuit breaker's state: "up", "down", "probing"… */
  state?: string;
  lastError?: string | null;
  lastRun?: { at?: string; error?: string } | null;
}

/** `berth sync status` and `berth sync run NAME [--wait]`. */
export async function syncCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== "status" && sub !== "run") throw new ClientError(sub === undefined ? "sync needs status or run" : `unknown sync command "${sub}"`, EXIT.usage);
  const a = parseArgs(rest, COMMON, { bool: sub === "run" ? ["--wait"] : [] });
  const { client } = connect(a);
  if (sub === "status") {
    if (a.positional.length > 0) throw new ClientError(`unexpected argument "${a.positional[0]}"`, EXIT.usage);
    const view = await client.json<{ registries?: Upstream[]; fetches?: unknown[]; pins?: unknown[] }>("/api/v1/sync", "sync status");
    if (a.flags.has("--json")) return (printJson(view), EXIT.ok);
    const ups = view.registries ?? [];
    if (ups.length === 0) console.log("no upstreams configured ([[sync.registries]])");
    else console.log(table(["UPSTREAM", "URL", "STATE", "LAST RUN"], ups.map((u) => [u.name, u.preferredUrl ?? "-", `${u.state ?? "-"}${u.state !== "up" && u.lastError ? ` (${u.lastError})` : ""}`, u.lastRun?.at ? `${u.lastRun.at}${u.lastRun.error ? ` failed: ${u.lastRun.error}` : ""}` : "never"])));
    console.log(`fetches in flight: ${view.fetches?.length ?? 0}, pins: ${view.pins?.length ?? 0}`);
    return EXIT.ok;
  }
  if (a.positional.length !== 1) throw new ClientError(a.positional.length === 0 ? "sync run needs the NAME of an upstream" : `unexpected argument "${a.positional[1]}"`, EXIT.usage);
  const name = a.positional[0]!;
  const path = `/api/v1/sync/${encodeURIComponent(name)}/run`;
  if (!a.flags.has("--wait")) {
    const j = await client.json<unknown>(path, `sync run "${name}"`, { method: "POST" });
    if (a.flags.has("--json")) printJson(j);
    else console.error(`sync of "${name}" queued`);
    return EXIT.ok;
  }
  const task = await runTask(client, path, `sync run "${name}"`, new ProgressBar(`sync ${name}`));
  if (a.flags.has("--json")) printJson(task);
  else {
    const r = ((task.result as { report?: Record<string, number> } | null)?.report ?? {}) as Record<string, number>;
    console.log(`sync of "${name}" done: ${r.images ?? 0} images, ${r.unchanged ?? 0} unchanged, ${r.failed ?? 0} failed, ${r.gone ?? 0} gone`);
  }
  return EXIT.ok;
}

/** `berth status`: version, readiness, memory, storage and sync at a glance. */
export async function statusCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, COMMON);
  if (a.positional.length > 0) throw new ClientError(`unexpected argument "${a.positional[0]}"`, EXIT.usage);
  const { client } = connect(a);
  const info = await client.json<Record<string, unknown>>("/api/v1/info", "status");
  // storage and sync are optional parts: a 404 means "not running", not a failure
  const optional = async (path: string) => {
    const res = await client.request(path);
    if (res.status === 404) return (await res.body?.cancel(), null);
    if (!res.ok) throw new ClientError(`${path}: ${res.status}`, res.status === 401 || res.status === 403 ? EXIT.denied : EXIT.error, res.status);
    return (await res.json()) as Record<string, unknown>;
  };
  const [storage, sync] = await Promise.all([optional("/api/v1/storage"), optional("/api/v1/sync")]);
  if (a.flags.has("--json")) return (printJson({ url: client.url, info, storage, sync }), EXIT.ok);
  const quota = (storage?.quota ?? null) as { usedBytes?: number; freeBytes?: number; maxBytes?: number } | null;
  const ups = ((sync?.registries as Upstream[] | undefined) ?? []);
  const lines: [string, string][] = [
    ["Registry", client.url],
    ["Version", String(info.version)],
    ["Ready", info.ready ? "yes" : "no (start-up recovery running)"],
    ["Uptime", duration(Number(info.uptimeSeconds))],
    ["Memory", bytes(Number(info.rssBytes))],
    ["Uploads", String(info.uploadsInFlight)],
  ];
  if (quota && typeof quota.usedBytes === "number") {
    lines.push(["Storage", `${bytes(quota.usedBytes)} used${quota.maxBytes ? ` of ${bytes(quota.maxBytes)}` : ""}${typeof quota.freeBytes === "number" ? `, ${bytes(quota.freeBytes)} free on disk` : ""}`]);
  }
  lines.push(["Upstreams", ups.length === 0 ? "none" : ups.map((u) => `${u.name} (${u.state ?? "?"})`).join(", ")]);
  console.log(lines.map(([k, v]) => `${(k + ":").padEnd(11)}${printable(v)}`).join("\n"));
  return EXIT.ok;
}
