/**
 * `berth bundle export|import|have`: air-gap bundles through a running registry (client
 * commands: --registry ALIAS|URL, credentials of `berth login`, exit codes of
 * client/errors.ts). export writes an oci-archive (format.ts), import loads one, have prints
 * the target's inventory for an incremental export.
 */
import { readFileSync } from "node:fs";
import { COMMON, connect, type Parsed, parseArgs } from "../client/args";
import { ClientError, EXIT } from "../client/errors";
import { bytes, parseSize, printJson, ProgressBar, table } from "../client/output";
import { runTask } from "../client/registry";
import { parseHave } from "./format";
import type { ImportOptions, ImportReport } from "./import";

/** Runs `berth bundle SUB …`; resolves to the exit code (failures are thrown as ClientError). */
export async function bundleCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "export") {
    const a = parseArgs(rest, COMMON, { bool: ["--all", "--no-signatures"], value: ["--output", "-o", "--have", "--platform"] });
    const file = a.values.get("--output") ?? a.values.get("-o");
    if (!file) throw new ClientError("bundle export needs --output FILE", EXIT.usage);
    const platform = a.values.get("--platform");
    if (platform !== undefined && !/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/.test(platform)) throw new ClientError(`--platform "${platform}" is not OS/ARCH[/VARIANT]`, EXIT.usage);
    const haveFile = a.values.get("--have");
    const have = haveFile === undefined ? undefined : parseHave(readText(haveFile), haveFile);
    if (a.flags.has("--all") === a.positional.length > 0) throw new ClientError(a.flags.has("--all") ? "--all takes no references" : "bundle export needs REPO[:TAG] references or --all", EXIT.usage);
    const { client } = connect(a);
    const { exportBundle } = await import("./export");
    const r = await exportBundle(client, file, { refs: a.positional, all: a.flags.has("--all"), noSignatures: a.flags.has("--no-signatures"), progress: new ProgressBar("export"), ...(platform && { platform }), ...(have && { have }) });
    if (a.flags.has("--json")) return (printJson(r), EXIT.ok);
    console.log(table(["REPOSITORY", "TAG", "DIGEST"], r.entries.map((e) => [e.repo, e.tag ?? "-", e.digest])));
    console.log(`${file}: ${r.entries.length} entries, ${r.manifests} manifests, ${r.blobs} blobs, ${bytes(r.bytes)}${r.skippedBlobs ? `; ${r.skippedBlobs} blobs (${bytes(r.skippedBytes)}) left out, the target holds them` : ""}`);
    return EXIT.ok;
  }
  if (sub === "import") {
    const a = parseArgs(rest, COMMON, { bool: ["--dry-run", "--on-device"], value: ["--repo", "--rate", "--config"] });
    if (a.flags.has("--on-device")) return onDevice(a);
    if (a.positional.length !== 1) throw new ClientError(a.positional.length === 0 ? "bundle import needs a FILE" : `unexpected argument "${a.positional[1]}"`, EXIT.usage);
    const rateText = a.values.get("--rate");
    const rate = rateText === undefined ? undefined : parseSize(rateText);
    if (rateText !== undefined && !rate) throw new ClientError(`--rate "${rateText}" is not a size per second (e.g. 20MiB)`, EXIT.usage);
    const repo = a.values.get("--repo");
    const options = { dryRun: a.flags.has("--dry-run"), progress: new ProgressBar("import"), ...(repo && { repo }), ...(rate && { rateBytes: rate }) };
    const configPath = a.values.get("--config");
    let r: ImportReport;
    if (configPath !== undefined) {
      // offline, on the root of a stopped daemon (its lock refuses a running one)
      if (a.values.has("--registry")) throw new ClientError("bundle import takes --registry (a running daemon) or --config (offline, on its storage root), not both", EXIT.usage);
      r = await offline(configPath, a.positional[0]!, options);
    } else {
      const { client } = connect(a);
      const { importBundle } = await import("./import");
      const { httpTarget } = await import("./remote");
      r = await importBundle(httpTarget(client), a.positional[0]!, options);
    }
    if (a.flags.has("--json")) return (printJson(r), EXIT.ok);
    console.log(table(["REPOSITORY", "TAG", "DIGEST", "CHANGE", "BLOBS"], r.entries.map((e) => [e.repo, e.tag ?? "-", e.digest, e.state === "update" ? `update (was ${e.was})` : e.state, e.state === "unchanged" ? "-" : `${e.blobs} (${bytes(e.bytes)})`])));
    const changed = r.entries.filter((e) => e.state !== "unchanged").length;
    if (r.dryRun) console.log(`dry run: ${changed} of ${r.entries.length} entries would change; nothing was written`);
    else console.log(`imported: ${changed} of ${r.entries.length} entries changed, ${r.blobsUploaded} blobs (${bytes(r.bytesUploaded)}) and ${r.manifestsPut} manifests written`);
    return EXIT.ok;
  }
  if (sub === "have") {
    const a = parseArgs(rest, COMMON);
    const { client } = connect(a);
    const { inventory } = await import("./have");
    console.log(JSON.stringify(await inventory(client, a.positional)));
    return EXIT.ok;
  }
  throw new ClientError(sub === undefined ? "bundle needs export, import or have" : `unknown bundle command "${sub}"`, EXIT.usage);
}

/** `berth bundle import --on-device PATH`: the daemon imports a file on its own device (admin API), followed as a task. */
async function onDevice(a: Parsed): Promise<number> {
  if (a.positional.length !== 1) throw new ClientError("bundle import --on-device needs the PATH of the bundle on the registry's device", EXIT.usage);
  const { client } = connect(a);
  const q = new URLSearchParams({ path: a.positional[0]! });
  if (a.flags.has("--dry-run")) q.set("dry_run", "true");
  const repo = a.values.get("--repo");
  if (repo) q.set("repo", repo);
  const task = await runTask(client, `/api/v1/bundle/import?${q}`, "bundle import", new ProgressBar("import"));
  if (a.flags.has("--json")) return (printJson(task.result), EXIT.ok);
  const r = task.result as ImportReport;
  console.log(`${r.dryRun ? "dry run: " : ""}${r.entries.filter((e) => e.state !== "unchanged").length} of ${r.entries.length} entries ${r.dryRun ? "would change" : "changed"}, ${r.blobsUploaded} blobs (${bytes(r.bytesUploaded)}) and ${r.manifestsPut} manifests written`);
  return EXIT.ok;
}

/** Loads the configuration and imports on its root, offline. */
async function offline(configPath: string, file: string, options: ImportOptions): Promise<ImportReport> {
  const { ConfigError, loadConfig } = await import("../config/load");
  const { createLogger } = await import("../log");
  let config;
  try {
    config = loadConfig(configPath);
  } catch (err) {
    if (err instanceof ConfigError) throw new ClientError(err.message, EXIT.error);
    throw err;
  }
  const log = createLogger(config.log.level === "info" ? "warn" : config.log.level, config.log.format);
  const { importOffline } = await import("./local");
  return importOffline(config, file, options, log);
}

function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new ClientError(`cannot read "${file}": ${(err as Error).message}`, EXIT.usage);
  }
}
