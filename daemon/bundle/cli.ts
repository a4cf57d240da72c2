/**
 * `berth bundle export|import|have`: air-gap bundles through a running registry (client
 * commands: --registry ALIAS|URL, credentials of `berth login`, exit codes of
 * client/errors.ts). export writes an oci-archive (format.ts), import loads one, have prints
 * the target's inventory for an incremental export.
 */
import { readFileSync } from "node:fs";
import { COMMON, connect, parseArgs } from "../client/args";
import { ClientError, EXIT } from "../client/errors";
import { bytes, parseSize, printJson, ProgressBar, table } from "../client/output";
import { parseHave } from "./format";

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
    const a = parseArgs(rest, COMMON, { bool: ["--dry-run"], value: ["--repo", "--rate"] });
    if (a.positional.length !== 1) throw new ClientError(a.positional.length === 0 ? "bundle import needs a FILE" : `unexpected argument "${a.positional[1]}"`, EXIT.usage);
    const rateText = a.values.get("--rate");
    const rate = rateText === undefined ? undefined : parseSize(rateText);
    if (rateText !== undefined && !rate) throw new ClientError(`--rate "${rateText}" is not a size per second (e.g. 20MiB)`, EXIT.usage);
    const repo = a.values.get("--repo");
    const { client } = connect(a);
    const { importBundle } = await import("./import");
    const { httpTarget } = await import("./remote");
    const r = await importBundle(httpTarget(client), a.positional[0]!, { dryRun: a.flags.has("--dry-run"), progress: new ProgressBar("import"), ...(repo && { repo }), ...(rate && { rateBytes: rate }) });
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

function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new ClientError(`cannot read "${file}": ${(err as Error).message}`, EXIT.usage);
  }
}
