/**
 * zot's result shapes built from search's index: `ImageSummary`, `ManifestSummary`,
 * `RepoSummary`, `Referrer`, `ImageVulnerabilitySummary`. Cheap fields are plain values;
 * fields that cost a read (history, layers, annotations, referrers, signatures,
 * vulnerabilities) are functions, which graphql-js calls only when the query selects them.
 */
import { GraphQLError } from "graphql";
import type { Descriptor } from "../oci/manifest";
import type { Catalog, ManifestDetail, ManifestLite, RepoLite } from "./catalog";
import type { CveRecord, Severity, TrustProvider, VulnerabilityProvider, VulnSummary } from "./providers";

/** What one pull/push statistic says (meta/usage.ts `UsageEntry`). */
export interface UsageReader {
  get(repo: string, ref: string): { pushedAt?: number; pulledAt?: number; pulls: number } | undefined;
}

/** Everything a query needs, per request. */
export interface SearchContext {
  catalog: Catalog;
  referrers(repo: string, digest: string): Descriptor[];
  usage: UsageReader;
  trust: TrustProvider;
  vulns: VulnerabilityProvider;
  /** True when the caller may pull from `repo` (access policy); nothing else is ever shown. */
  visible(repo: string): boolean;
  /** True when the caller may delete in `repo` (`IsDeletable`). */
  deletable(repo: string): boolean;
  /** Counts work; throws a GraphQL error past the query's work or time bound. */
  work(units: number): void;
  /** Most results one page returns (`limit: 0` means all, up to this). */
  maxResults: number;
}

const SEVERITIES: readonly (Severity | "NONE")[] = ["NONE", "UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"];

/** RFC 3339 of a time in ms, or null; whole seconds without a fraction, as Go (zot) writes them. */
export function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString().replace(".000Z", "Z");
}

/** The image manifests an image stands for: itself, or an index's children known in the repository. */
export function platformsOf(repo: RepoLite, m: ManifestLite): ManifestLite[] {
  if (m.kind === "image") return [m];
  const out: ManifestLite[] = [];
  for (const d of m.children ?? []) {
    const c = repo.manifests.get(d);
    if (c && c.kind === "image") out.push(c);
  }
  return out;
}

/** Pulls of a tag and of a digest (by-digest pulls are counted on the digest). */
export function downloads(ctx: SearchContext, repo: string, tag: string | undefined, digest: string): number {
  return (tag !== undefined ? (ctx.usage.get(repo, tag)?.pulls ?? 0) : 0) + (ctx.usage.get(repo, digest)?.pulls ?? 0);
}

const ANNOTATION = "org.opencontainers.image.";

/** zot's ImageSummary for `tag` of `repo` pointing at `m`; `only` keeps only those manifests (digest searches). */
export function imageSummary(ctx: SearchContext, repo: RepoLite, tag: string, m: ManifestLite, only?: ReadonlySet<string>): Record<string, unknown> {
  ctx.work(1);
  const manifests = platformsOf(repo, m).filter((x) => !only || only.has(x.digest) || only.has(m.digest));
  let facts: Record<string, string> | undefined;
  // annotations of the manifest (an index's own, then its first image's), then the config's labels
  const annotation = (key: string): string => {
    if (!facts) {
      const own = detailOf(ctx, repo.name, m.digest);
      const first = manifests[0] && manifests[0] !== m ? detailOf(ctx, repo.name, manifests[0].digest) : own;
      facts = { ...first.labels, ...first.annotations, ...own.annotations };
    }
    return facts[ANNOTATION + key] ?? "";
  };
  const use = ctx.usage.get(repo.name, m.digest);
  const tagUse = ctx.usage.get(repo.name, tag);
  const pulled = Math.max(use?.pulledAt ?? 0, tagUse?.pulledAt ?? 0);
  const trust = once(() => ctx.trust.trustOf(repo.name, m.digest));
  return {
    RepoName: repo.name,
    Tag: tag,
    Digest: m.digest,
    MediaType: m.mediaType,
    Manifests: () => manifests.map((x) => manifestSummary(ctx, repo, x)),
    Size: String(m.totalSize),
    DownloadCount: downloads(ctx, repo.name, tag, m.digest),
    LastPullTimestamp: pulled > 0 ? iso(pulled) : null,
    PushTimestamp: iso(use?.pushedAt),
    PushedBy: null,
    TaggedTimestamp: iso(tagUse?.pushedAt ?? use?.pushedAt),
    LastUpdated: iso(m.created),
    Description: () => annotation("description"),
    IsSigned: async () => (await trust()).isSigned,
    SignatureInfo: async () => signatures(await trust()),
    Licenses: () => annotation("licenses"),
    Labels: "",
    Title: () => annotation("title"),
    Source: () => annotation("source"),
    Documentation: () => annotation("documentation"),
    Vendor: () => annotation("vendor"),
    Authors: () => annotation("authors"),
    Vulnerabilities: () => combinedVulns(ctx, repo.name, manifests),
    Referrers: () => referrers(ctx, repo.name, m.digest),
    IsDeletable: ctx.deletable(repo.name),
    ArtifactType: m.artifactType ?? "",
  };
}

/** Characters of stored text that cost one unit of work to read and return. */
const TEXT_PER_UNIT = 64;

/**
 * The heavy fields of a manifest, charged to the query by their size: a pusher controls
 * them (a description of megabytes, thousands of layers), and a page repeats them per tag.
 */
export function detailOf(ctx: SearchContext, repo: string, digest: string): ManifestDetail {
  const d = ctx.catalog.detail(repo, digest);
  ctx.work(1 + Math.floor(d.textSize / TEXT_PER_UNIT));
  return d;
}

/** zot's ManifestSummary of image manifest `m`. */
export function manifestSummary(ctx: SearchContext, repo: RepoLite, m: ManifestLite): Record<string, unknown> {
  ctx.work(1);
  const detail = once((): ManifestDetail => detailOf(ctx, repo.name, m.digest));
  const trust = once(() => ctx.trust.trustOf(repo.name, m.digest));
  const layers = () => detail().layers.map((l) => ({ Digest: l.digest, Size: String(l.size) }));
  return {
    Digest: m.digest,
    ConfigDigest: m.configDigest ?? null,
    LastUpdated: iso(m.created),
    Size: String(m.totalSize),
    IsSigned: async () => (await trust()).isSigned,
    SignatureInfo: async () => signatures(await trust()),
    Platform: { Os: m.os ?? "", Arch: archOf(m) },
    DownloadCount: downloads(ctx, repo.name, undefined, m.digest),
    Layers: layers,
    History: () => history(detail()),
    Vulnerabilities: () => combinedVulns(ctx, repo.name, [m]),
    Referrers: () => referrers(ctx, repo.name, m.digest),
    ArtifactType: m.artifactType ?? "",
  };
}

/** Arch as zot shows it: "arm64/v8" when the config names a variant. */
export function archOf(m: ManifestLite): string {
  return m.arch ? (m.variant ? `${m.arch}/${m.variant}` : m.arch) : "";
}

/**
 * zot's LayerHistory list: history entries paired with layers in order (an empty_layer entry
 * has no layer); with no history, the layers alone.
 */
function history(d: ManifestDetail): Record<string, unknown>[] {
  if (d.history.length === 0) return d.layers.map((l) => ({ Layer: { Digest: l.digest, Size: String(l.size) }, HistoryDescription: null }));
  let i = 0;
  return d.history.map((h) => {
    const layer = h.emptyLayer ? undefined : d.layers[i++];
    return {
      Layer: layer ? { Digest: layer.digest, Size: String(layer.size) } : null,
      HistoryDescription: { Created: h.created ?? null, CreatedBy: h.createdBy ?? "", Author: h.author ?? "", Comment: h.comment ?? "", EmptyLayer: h.emptyLayer === true },
    };
  });
}

function signatures(t: { signatures: { tool: string; isTrusted: boolean; author: string }[] }): Record<string, unknown>[] {
  return t.signatures.map((s) => ({ Tool: s.tool, IsTrusted: s.isTrusted, Author: s.author }));
}

/** zot's Referrer list for `digest` of `repo`. */
export function referrers(ctx: SearchContext, repo: string, digest: string, types?: readonly string[]): Record<string, unknown>[] {
  const all = ctx.referrers(repo, digest);
  let text = 0;
  for (const d of all) for (const [k, v] of Object.entries(d.annotations ?? {})) text += k.length + v.length;
  ctx.work(all.length + Math.floor(text / TEXT_PER_UNIT));
  return all
    .filter((d) => !types || types.length === 0 || (d.artifactType !== undefined && types.includes(d.artifactType)))
    .map((d) => ({
      MediaType: d.mediaType,
      ArtifactType: d.artifactType ?? "",
      Size: d.size,
      Digest: d.digest,
      Annotations: Object.entries(d.annotations ?? {}).map(([Key, Value]) => ({ Key, Value })),
    }));
}

/** The vulnerability summary of several manifests together; null when none was scanned. */
async function combinedVulns(ctx: SearchContext, repo: string, manifests: ManifestLite[]): Promise<Record<string, unknown> | null> {
  let sum: VulnSummary | undefined;
  for (const m of manifests) {
    const s = await ctx.vulns.vulnSummaryOf(repo, m.digest);
    if (!s) continue;
    if (!sum) sum = { maxSeverity: "NONE", count: 0, bySeverity: {} };
    sum.count += s.count;
    if (SEVERITIES.indexOf(s.maxSeverity) > SEVERITIES.indexOf(sum.maxSeverity)) sum.maxSeverity = s.maxSeverity;
    for (const [k, v] of Object.entries(s.bySeverity ?? {})) sum.bySeverity![k as Severity] = (sum.bySeverity![k as Severity] ?? 0) + (v ?? 0);
  }
  return sum ? vulnSummary(sum) : null;
}

/** zot's ImageVulnerabilitySummary of a summary. */
export function vulnSummary(s: VulnSummary): Record<string, unknown> {
  const by = s.bySeverity ?? {};
  return {
    MaxSeverity: s.maxSeverity,
    Count: s.count,
    UnknownCount: by.UNKNOWN ?? 0,
    LowCount: by.LOW ?? 0,
    MediumCount: by.MEDIUM ?? 0,
    HighCount: by.HIGH ?? 0,
    CriticalCount: by.CRITICAL ?? 0,
  };
}

/** The summary of a CVE list (for CVEListForImage). */
export function summariseCves(cves: readonly CveRecord[]): VulnSummary {
  const s: VulnSummary = { maxSeverity: "NONE", count: cves.length, bySeverity: {} };
  for (const c of cves) {
    s.bySeverity![c.severity] = (s.bySeverity![c.severity] ?? 0) + 1;
    if (SEVERITIES.indexOf(c.severity) > SEVERITIES.indexOf(s.maxSeverity)) s.maxSeverity = c.severity;
  }
  return s;
}

/** Rank of a severity, higher is worse. */
export function severityRank(s: string): number {
  return SEVERITIES.indexOf(s as Severity);
}

/** The facts of a repository that sorting and its summary need. */
export interface RepoFacts {
  repo: RepoLite;
  lastUpdated?: number;
  newest?: { tag: string; m: ManifestLite };
  size: number;
  platforms: { os: string; arch: string }[];
  vendors: string[];
}

/** {@link RepoFacts} for one query: the rank of the match, and pull counts read on demand. */
export interface RankedRepo {
  facts: RepoFacts;
  rank?: number;
  /** Pulls of every tag (read from the statistics when first asked). */
  downloads(): number;
}

// Facts depend only on the repository's content: a RepoLite is replaced whenever it changes.
const FACTS = new WeakMap<RepoLite, RepoFacts>();

/** Aggregates a repository's tagged images (newest image: the most recently created); cached per content. */
export function repoFacts(ctx: SearchContext, repo: RepoLite, rank?: number): RankedRepo {
  let f = FACTS.get(repo);
  if (!f) {
    ctx.work(repo.tags.size);
    f = aggregate(repo);
    FACTS.set(repo, f);
  }
  let pulls: number | undefined;
  const facts = f;
  return {
    facts,
    ...(rank !== undefined ? { rank } : {}),
    downloads: () => (pulls ??= [...repo.tags].reduce((n, [tag, digest]) => n + downloads(ctx, repo.name, tag, digest), 0)),
  };
}

function aggregate(repo: RepoLite): RepoFacts {
  const f: RepoFacts = { repo, size: 0, platforms: [], vendors: [] };
  const seen = new Set<string>();
  const platforms = new Set<string>();
  const vendors = new Set<string>();
  for (const [tag, digest] of repo.tags) {
    const m = repo.manifests.get(digest);
    if (!m) continue;
    if (m.created !== undefined && (f.lastUpdated === undefined || m.created > f.lastUpdated)) f.lastUpdated = m.created;
    if (!f.newest || (m.created ?? 0) > (f.newest.m.created ?? 0) || ((m.created ?? 0) === (f.newest.m.created ?? 0) && tag > f.newest.tag)) f.newest = { tag, m };
    if (seen.has(digest)) continue;
    seen.add(digest);
    f.size += m.totalSize;
    for (const p of platformsOf(repo, m)) {
      const key = `${p.os ?? ""}\0${archOf(p)}`;
      if (!platforms.has(key)) {
        platforms.add(key);
        f.platforms.push({ os: p.os ?? "", arch: archOf(p) });
      }
      if (p.vendor) vendors.add(p.vendor);
    }
    if (m.vendor) vendors.add(m.vendor);
  }
  f.vendors = [...vendors];
  return f;
}

/** zot's RepoSummary. */
export function repoSummary(ctx: SearchContext, r: RankedRepo): Record<string, unknown> {
  const f = r.facts;
  return {
    Name: f.repo.name,
    LastUpdated: iso(f.lastUpdated),
    Size: String(f.size),
    Platforms: f.platforms.map((p) => ({ Os: p.os, Arch: p.arch })),
    Vendors: f.vendors,
    NewestImage: f.newest ? () => imageSummary(ctx, f.repo, f.newest!.tag, f.newest!.m) : null,
    DownloadCount: () => r.downloads(),
    StarCount: 0,
    IsBookmarked: false,
    IsStarred: false,
    Rank: r.rank ?? null,
  };
}

/** A GraphQL error for bad input, with zot-like wording. */
export function badInput(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: "BAD_USER_INPUT" } });
}

function once<T>(f: () => T): () => T {
  let done = false;
  let value: T;
  return () => {
    if (!done) {
      value = f();
      done = true;
    }
    return value;
  };
}

