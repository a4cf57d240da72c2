/**
 * `berth repos`, `berth images [REPO]`, `berth inspect REF`, `berth rm REF` and
 * `berth search TEXT`: a registry's content through its public APIs (client/registry.ts).
 * Human tables by default, `--json` for scripts; exit codes as client/errors.ts says.
 */
import { COMMON, connect, parseArgs } from "../client/args";
import { ClientError, EXIT } from "../client/errors";
import { blobJson, catalog, deleteManifest, graphql, imageSize, manifest, parseRef, platforms, refPart, tags } from "../client/registry";
import { bytes, printable, printJson, table } from "../client/output";
import type { RegistryClient } from "../client/http";

const short = (digest: string) => digest.replace(/^(sha256:)?([0-9a-f]{12})[0-9a-f]*$/, "$2");

/** Runs `task` over `items`, `limit` at a time, keeping the order of the results. */
async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await task(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** `berth repos`. */
export async function reposCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, COMMON);
  if (a.positional.length > 0) throw new ClientError(`unexpected argument "${a.positional[0]}"`, EXIT.usage);
  const { client } = connect(a);
  const repos = await catalog(client);
  if (a.flags.has("--json")) printJson({ repositories: repos });
  else if (repos.length === 0) console.error("no repositories");
  else console.log(repos.map(printable).join("\n"));
  return EXIT.ok;
}

/** One row of `berth images`. */
interface ImageRow {
  repo: string;
  tag: string;
  digest: string;
  mediaType: string;
  size: number;
  platforms: string[];
}

async function imagesOf(client: RegistryClient, repo: string): Promise<ImageRow[]> {
  const list = await tags(client, repo);
  return mapLimit(list, 4, async (tag) => {
    const m = await manifest(client, repo, tag);
    return { repo, tag, digest: m.digest, mediaType: m.mediaType, size: imageSize(m), platforms: platforms(m) };
  });
}

/** `berth images [REPO]`. */
export async function imagesCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, COMMON);
  if (a.positional.length > 1) throw new ClientError(`unexpected argument "${a.positional[1]}"`, EXIT.usage);
  const { client } = connect(a);
  const repos = a.positional.length === 1 ? [parseRef(a.positional[0]!).repo] : await catalog(client);
  const rows = (await mapLimit(repos, 2, (r) => imagesOf(client, r))).flat();
  if (a.flags.has("--json")) return (printJson({ images: rows }), EXIT.ok);
  if (rows.length === 0) return (console.error("no images"), EXIT.ok);
  console.log(table(["REPOSITORY", "TAG", "DIGEST", "SIZE", "PLATFORMS"], rows.map((r) => [r.repo, r.tag, short(r.digest), bytes(r.size), r.platforms.join(",") || "-"])));
  return EXIT.ok;
}

/** The image config fields `inspect` shows. */
interface ImageConfig {
  created?: string;
  os?: string;
  architecture?: string;
  variant?: string;
  config?: { Labels?: Record<string, string> | null; Entrypoint?: string[] | null; Cmd?: string[] | null };
  history?: { created_by?: string; empty_layer?: boolean }[];
}

/** `berth inspect REF`. */
export async function inspectCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, COMMON);
  if (a.positional.length !== 1) throw new ClientError(a.positional.length === 0 ? "inspect needs a REF (REPO[:TAG] or REPO@DIGEST)" : `unexpected argument "${a.positional[1]}"`, EXIT.usage);
  const ref = parseRef(a.positional[0]!);
  const { client } = connect(a);
  const m = await manifest(client, ref.repo, refPart(ref));
  const d = m.doc;
  let config: ImageConfig | undefined;
  const isImage = d.config !== undefined && /image\.config|container\.image/.test(d.config.mediaType ?? "application/vnd.oci.image.config.v1+json");
  if (isImage) config = await blobJson<ImageConfig>(client, ref.repo, d.config!.digest);
  const out = {
    repo: ref.repo,
    reference: refPart(ref),
    digest: m.digest,
    mediaType: m.mediaType,
    size: imageSize(m),
    ...(d.manifests && { manifests: d.manifests.map((x) => ({ digest: x.digest, size: x.size, mediaType: x.mediaType ?? "", platform: x.platform ?? null })) }),
    ...(d.config && { config: { digest: d.config.digest, mediaType: d.config.mediaType ?? "", size: d.config.size } }),
    ...(config && { os: config.os ?? "", architecture: config.architecture ?? "", created: config.created ?? null, labels: config.config?.Labels ?? {}, history: (config.history ?? []).map((h) => h.created_by ?? "") }),
    ...(d.layers && { layers: d.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType ?? "" })) }),
    annotations: d.annotations ?? {},
    ...(d.subject && { subject: d.subject.digest }),
  };
  if (a.flags.has("--json")) return (printJson(out), EXIT.ok);
  const lines: [string, string][] = [
    ["Reference", `${ref.repo}:${refPart(ref)}`],
    ["Digest", m.digest],
    ["Media type", m.mediaType],
    ["Size", `${bytes(out.size)} (${out.size} bytes)`],
  ];
  if (config) lines.push(["Platform", [config.os, config.architecture, config.variant].filter(Boolean).join("/")], ["Created", config.created ?? "-"]);
  if (d.subject) lines.push(["Subject", d.subject.digest]);
  console.log(lines.map(([k, v]) => `${(k + ":").padEnd(12)}${printable(v)}`).join("\n"));
  if (out.manifests) console.log(`\nManifests:\n${table(["PLATFORM", "DIGEST", "SIZE"], out.manifests.map((x) => [x.platform ? [x.platform.os, x.platform.architecture, x.platform.variant].filter(Boolean).join("/") : "-", x.digest, bytes(x.size)]))}`);
  if (out.layers) console.log(`\nLayers:\n${table(["DIGEST", "SIZE", "MEDIA TYPE"], out.layers.map((l) => [l.digest, bytes(l.size), l.mediaType]))}`);
  const labels = Object.entries(out.labels ?? {});
  if (labels.length > 0) console.log(`\nLabels:\n${labels.map(([k, v]) => `  ${printable(k)}=${printable(v)}`).join("\n")}`);
  const annotations = Object.entries(out.annotations);
  if (annotations.length > 0) console.log(`\nAnnotations:\n${annotations.map(([k, v]) => `  ${printable(k)}=${printable(v)}`).join("\n")}`);
  return EXIT.ok;
}

/** Asks "question [y/N]" on the terminal; true for y/yes. */
async function confirm(question: string): Promise<boolean> {
  process.stderr.write(`${question} [y/N] `);
  for await (const line of console) return /^\s*y(es)?\s*$/i.test(line);
  return false;
}

/** `berth rm REF [--yes]`. */
export async function rmCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, COMMON, { bool: ["--yes"] });
  if (a.positional.length !== 1) throw new ClientError(a.positional.length === 0 ? "rm needs a REF (REPO:TAG or REPO@DIGEST)" : `unexpected argument "${a.positional[1]}"`, EXIT.usage);
  const ref = parseRef(a.positional[0]!);
  if (ref.tag === undefined && ref.digest === undefined) throw new ClientError(`rm needs an explicit tag or digest: "${a.positional[0]}" names neither`, EXIT.usage);
  const { client } = connect(a);
  const what = ref.digest ? `${ref.repo}@${ref.digest}` : `${ref.repo}:${ref.tag}`;
  if (!a.flags.has("--yes")) {
    if (!process.stdin.isTTY) throw new ClientError(`rm asks for confirmation on a terminal; pass --yes to delete ${what} without asking`, EXIT.usage);
    if (!(await confirm(`Delete ${what} from ${client.url}?`))) return (console.error("nothing deleted"), EXIT.error);
  }
  await deleteManifest(client, ref.repo, refPart(ref));
  if (a.flags.has("--json")) printJson({ deleted: what });
  else console.error(`deleted ${what}`);
  return EXIT.ok;
}

const GLOBAL_SEARCH = `query ($q: String!) {
  GlobalSearch(query: $q, requestedPage: { limit: 100, offset: 0 }) {
    Repos { Name LastUpdated Size NewestImage { Tag Digest } }
    Images { RepoName Tag Digest Size LastUpdated }
  }
}`;

/** What GlobalSearch answers (the fields asked for). */
interface GlobalSearchResult {
  GlobalSearch: {
    Repos?: { Name: string; LastUpdated?: string | null; Size?: string | null; NewestImage?: { Tag?: string; Digest?: string } | null }[] | null;
    Images?: { RepoName: string; Tag: string; Digest?: string; Size?: string | null; LastUpdated?: string | null }[] | null;
  };
}

/** `berth search TEXT`: GlobalSearch through the zot-compatible search API. */
export async function searchCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, COMMON);
  if (a.positional.length !== 1) throw new ClientError(a.positional.length === 0 ? "search needs a TEXT" : `search takes one TEXT (quote it), got ${a.positional.length}`, EXIT.usage);
  const { client } = connect(a);
  const data = await graphql<GlobalSearchResult>(client, GLOBAL_SEARCH, { q: a.positional[0] });
  const repos = data.GlobalSearch.Repos ?? [];
  const images = data.GlobalSearch.Images ?? [];
  if (a.flags.has("--json")) return (printJson({ repositories: repos, images }), EXIT.ok);
  if (repos.length + images.length === 0) return (console.error(`nothing matches "${a.positional[0]}"`), EXIT.ok);
  if (repos.length > 0) console.log(table(["REPOSITORY", "NEWEST TAG", "SIZE", "LAST UPDATED"], repos.map((r) => [r.Name, r.NewestImage?.Tag ?? "-", r.Size ? bytes(Number(r.Size)) : "-", r.LastUpdated ?? "-"])));
  if (images.length > 0) console.log((repos.length > 0 ? "\n" : "") + table(["REPOSITORY", "TAG", "DIGEST", "SIZE"], images.map((i) => [i.RepoName, i.Tag, i.Digest ? short(i.Digest) : "-", i.Size ? bytes(Number(i.Size)) : "-"])));
  return EXIT.ok;
}
