/**
 * The queries of the search API, with zot's semantics: pagination (`limit` 0 = all, `offset`
 * in items; negative ones refused), sorting (`SortCriteria`), filters (`Os`, `Arch`,
 * `HasToBeSigned`; nobody has bookmarks or stars here, so `IsBookmarked`/`IsStarred: true`
 * match nothing), and what GlobalSearch matches: a repository name by default, `repo:tag`
 * for tags of one repository starting with `tag`, `:tag` for tags containing it anywhere,
 * `sha256:…` for a manifest, config or layer digest.
 *
 * Every query sees only repositories the caller may pull (`ctx.visible`), before counting:
 * totals, ranks and digests never reveal a forbidden repository, and a forbidden image is
 * "not known" in the same words as one that does not exist.
 */
import type { ManifestLite, RepoLite } from "./catalog";
import {
  type RankedRepo, type SearchContext, archOf, badInput, detailOf, downloads, imageSummary, platformsOf,
  referrers, repoFacts, repoSummary, severityRank, summariseCves, vulnSummary,
} from "./summary";
import type { CveRecord } from "./providers";

type Args = Record<string, unknown>;
interface PageInput {
  limit?: number | null;
  offset?: number | null;
  sortBy?: string | null;
}
interface Filter {
  Os?: (string | null)[] | null;
  Arch?: (string | null)[] | null;
  HasToBeSigned?: boolean | null;
  IsBookmarked?: boolean | null;
  IsStarred?: boolean | null;
}

/** An image found: a tag of a repository, and the manifests that matched (all when undefined). */
interface Hit {
  repo: RepoLite;
  tag: string;
  m: ManifestLite;
  only?: Set<string>;
}

/** Longest query text accepted (zot's bound on search strings). */
const MAX_TEXT = 255;

/** A page of `items` sorted by `sortBy`, with zot's PageInfo. */
function paginate<T>(ctx: SearchContext, items: T[], page: PageInput | undefined, sorts: Record<string, (a: T, b: T) => number>, what: string): { items: T[]; info: { TotalCount: number; ItemCount: number } } {
  const limit = page?.limit ?? 0;
  const offset = page?.offset ?? 0;
  if (limit < 0) throw badInput("requested page limit parameter can't be negative");
  if (offset < 0) throw badInput("requested page offset parameter can't be negative");
  const sortBy = page?.sortBy ?? "RELEVANCE";
  const sort = sorts[sortBy];
  if (!sort) throw badInput(`sorting ${what} by '${sortBy}' is not supported`);
  ctx.work(items.length);
  const sorted = items.slice().sort(sort);
  const n = limit === 0 || limit > ctx.maxResults ? ctx.maxResults : limit;
  const out = sorted.slice(offset, offset + n);
  return { items: out, info: { TotalCount: items.length, ItemCount: out.length } };
}

const byName = (a: Hit, b: Hit) => (a.repo.name < b.repo.name ? -1 : a.repo.name > b.repo.name ? 1 : a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0);

function imageSorts(ctx: SearchContext): Record<string, (a: Hit, b: Hit) => number> {
  return {
    RELEVANCE: byName,
    ALPHABETIC_ASC: byName,
    ALPHABETIC_DSC: (a, b) => byName(b, a),
    UPDATE_TIME: (a, b) => (b.m.created ?? 0) - (a.m.created ?? 0) || byName(a, b),
    DOWNLOADS: (a, b) => downloads(ctx, b.repo.name, b.tag, b.m.digest) - downloads(ctx, a.repo.name, a.tag, a.m.digest) || byName(a, b),
  };
}

const repoName = (a: RankedRepo, b: RankedRepo) => (a.facts.repo.name < b.facts.repo.name ? -1 : a.facts.repo.name > b.facts.repo.name ? 1 : 0);
const REPO_SORTS: Record<string, (a: RankedRepo, b: RankedRepo) => number> = {
  RELEVANCE: (a, b) => (a.rank ?? 0) - (b.rank ?? 0) || repoName(a, b),
  ALPHABETIC_ASC: repoName,
  ALPHABETIC_DSC: (a, b) => repoName(b, a),
  UPDATE_TIME: (a, b) => (b.facts.lastUpdated ?? 0) - (a.facts.lastUpdated ?? 0) || repoName(a, b),
  DOWNLOADS: (a, b) => b.downloads() - a.downloads() || repoName(a, b),
  STARS: repoName, // nobody stars here: every count is 0
};

/** Lowercased, trimmed, non-empty entries of a filter list. */
function clean(list: (string | null)[] | null | undefined): string[] {
  const out: string[] = [];
  for (const s of list ?? []) {
    if (typeof s !== "string") continue;
    if (s.length > MAX_TEXT) throw badInput(`max string size limit exceeded for filter value: max=${MAX_TEXT} current=${s.length}`);
    const t = s.trim().toLowerCase();
    if (t) out.push(t);
  }
  return out;
}

/** Applies a Filter to hits (or to repositories through their newest image). */
async function filtered<T>(ctx: SearchContext, items: T[], filter: Filter | undefined | null, images: (t: T) => { repo: RepoLite; ms: ManifestLite[]; digest?: string }): Promise<T[]> {
  if (!filter) return items;
  const oses = clean(filter.Os);
  const arches = clean(filter.Arch);
  if (filter.IsBookmarked === true || filter.IsStarred === true) return [];
  const out: T[] = [];
  for (const item of items) {
    ctx.work(1);
    const { repo, ms, digest } = images(item);
    if (oses.length > 0 && !ms.some((m) => m.os && oses.includes(m.os.toLowerCase()))) continue;
    if (arches.length > 0 && !ms.some((m) => m.arch && (arches.includes(m.arch.toLowerCase()) || arches.includes(archOf(m).toLowerCase())))) continue;
    if (filter.HasToBeSigned === true && !(digest && (await ctx.trust.trustOf(repo.name, digest)).isSigned)) continue;
    out.push(item);
  }
  return out;
}

const hitImages = (h: Hit) => ({ repo: h.repo, ms: platformsOf(h.repo, h.m).filter((m) => !h.only || h.only.has(m.digest) || h.only.has(h.m.digest)), digest: h.m.digest });

/** Every tagged image of the repositories the caller may see, optionally only of `repo`. */
function allHits(ctx: SearchContext, only?: string, tagMatch?: (tag: string) => boolean): Hit[] {
  const hits: Hit[] = [];
  const repos = only !== undefined ? [ctx.catalog.repo(only)].filter((r): r is RepoLite => r !== undefined) : ctx.catalog.repositories();
  for (const repo of repos) {
    if (!ctx.visible(repo.name)) continue;
    for (const [tag, digest] of repo.tags) {
      if (tagMatch && !tagMatch(tag)) continue;
      const m = repo.manifests.get(digest);
      if (m) hits.push({ repo, tag, m });
    }
    ctx.work(repo.tags.size);
  }
  return hits;
}

async function imagePage(ctx: SearchContext, hits: Hit[], filter: Filter | undefined | null, page: PageInput | undefined): Promise<Record<string, unknown>> {
  const kept = await filtered(ctx, hits, filter, hitImages);
  const { items, info } = paginate(ctx, kept, page, imageSorts(ctx), "images");
  return { Page: info, Results: items.map((h) => imageSummary(ctx, h.repo, h.tag, h.m, h.only)) };
}

/** Images holding a manifest, config or layer whose digest contains `text` (zot's ImageListForDigest). */
function digestHits(ctx: SearchContext, text: string): Hit[] {
  const found = new Map<string, Set<string>>(); // repo -> matching manifest digests
  for (const r of ctx.catalog.containing(text)) {
    if (!ctx.visible(r.repo)) continue;
    let set = found.get(r.repo);
    if (!set) found.set(r.repo, (set = new Set()));
    set.add(r.digest);
  }
  ctx.work(found.size);
  return hitsOfManifests(ctx, found);
}

/** Tagged images that are, or list, the given manifests (per repository). */
function hitsOfManifests(ctx: SearchContext, found: Map<string, Set<string>>): Hit[] {
  const hits: Hit[] = [];
  for (const [name, digests] of found) {
    const repo = ctx.catalog.repo(name);
    if (!repo) continue;
    for (const [tag, digest] of repo.tags) {
      const m = repo.manifests.get(digest);
      if (!m) continue;
      if (digests.has(digest)) hits.push({ repo, tag, m });
      else if (m.children?.some((c) => digests.has(c))) hits.push({ repo, tag, m, only: new Set(m.children.filter((c) => digests.has(c))) });
    }
  }
  return hits;
}

/** Splits `repo:tag` or `repo@digest`; undefined when it is neither. */
function parseImage(image: string): { repo: string; tag?: string; digest?: string } | undefined {
  const at = image.indexOf("@");
  if (at > 0) return { repo: image.slice(0, at), digest: image.slice(at + 1) };
  const colon = image.lastIndexOf(":");
  if (colon <= 0 || colon < image.lastIndexOf("/")) return undefined;
  return { repo: image.slice(0, colon), tag: image.slice(colon + 1) };
}

/** The image named `repo:tag` or `repo@digest`, if the caller may see it; else the same "not known" error. */
function resolveImage(ctx: SearchContext, image: string): Hit {
  if (image.length > 2 * MAX_TEXT) throw badInput(`image name is too long (${image.length} characters)`);
  const ref = parseImage(image);
  const repo = ref && ctx.visible(ref.repo) ? ctx.catalog.repo(ref.repo) : undefined;
  if (ref && repo) {
    if (ref.tag !== undefined) {
      const m = repo.manifests.get(repo.tags.get(ref.tag) ?? "");
      if (m) return { repo, tag: ref.tag, m };
    } else {
      const m = repo.manifests.get(ref.digest!);
      const tag = [...repo.tags].find(([, d]) => d === ref.digest)?.[0] ?? "";
      if (m) return { repo, tag, m };
    }
  }
  throw badInput(`image "${image.slice(0, 2 * MAX_TEXT)}" is not known`);
}

/** zot's rank of a repository name for a search text: 0 exact, lower is better, -1 no match. */
export function rankRepoName(text: string, name: string): number {
  const want = text.split("/");
  const have = name.split("/");
  if (want.length > have.length) return -1;
  if (text === name) return 0;
  if (want.length === 1) {
    const i = have[have.length - 1]!.indexOf(text);
    if (i !== -1) return i + 1;
    const j = have[0]!.indexOf(text);
    if (j !== -1) return (j + 1) * 10;
  }
  if (want.slice(0, -1).every((w, i) => w === have[i])) {
    const i = have[have.length - 1]!.indexOf(want[want.length - 1]!);
    if (i !== -1) return i + 1;
  }
  if (name.startsWith(text)) return 10;
  const k = name.indexOf(text);
  return k !== -1 ? (k + 1) * 100 : -1;
}

async function repoPage(ctx: SearchContext, repos: RankedRepo[], filter: Filter | undefined | null, page: PageInput | undefined): Promise<{ Page: unknown; Results: unknown[] }> {
  const kept = await filtered(ctx, repos, filter, ({ facts: f }) => ({ repo: f.repo, ms: f.newest ? platformsOf(f.repo, f.newest.m) : [], ...(f.newest ? { digest: f.newest.m.digest } : {}) }));
  const { items, info } = paginate(ctx, kept, page, REPO_SORTS, "repositories");
  return { Page: info, Results: items.map((f) => repoSummary(ctx, f)) };
}

function visibleRepos(ctx: SearchContext): RepoLite[] {
  const out: RepoLite[] = [];
  for (const r of ctx.catalog.repositories()) if (r.tags.size > 0 && ctx.visible(r.name)) out.push(r);
  return out;
}

function text(args: Args, key: string): string {
  const v = args[key];
  const s = typeof v === "string" ? v : "";
  if (s.length > MAX_TEXT) throw badInput(`max string size limit exceeded for ${key} parameter: max=${MAX_TEXT} current=${s.length}`);
  return s;
}

/** CVEs of all manifests of an image, each once. */
async function cvesOfImage(ctx: SearchContext, h: Hit): Promise<CveRecord[] | undefined> {
  let all: Map<string, CveRecord> | undefined;
  for (const m of [h.m, ...platformsOf(h.repo, h.m).filter((x) => x !== h.m)]) {
    const list = await ctx.vulns.cvesOf(h.repo.name, m.digest);
    if (!list) continue;
    ctx.work(list.length);
    all ??= new Map();
    for (const c of list) if (!all.has(c.id)) all.set(c.id, c);
  }
  return all ? [...all.values()] : undefined;
}

/** The root resolvers (graphql-js `rootValue`); each receives the per-request context. */
export const QUERIES: Record<string, (args: Args, ctx: SearchContext) => unknown> = {
  ImageList: (args, ctx) => {
    const repo = text(args, "repo");
    return imagePage(ctx, allHits(ctx, repo === "" ? undefined : repo), undefined, args.requestedPage as PageInput);
  },

  ImageListForDigest: (args, ctx) => imagePage(ctx, digestHits(ctx, text(args, "id").trim().toLowerCase()), undefined, args.requestedPage as PageInput),

  ExpandedRepoInfo: (args, ctx) => {
    const name = text(args, "repo");
    const repo = ctx.visible(name) ? ctx.catalog.repo(name) : undefined;
    if (!repo) return { Images: [], Summary: null };
    const hits = allHits(ctx, name).sort(byName);
    return { Images: hits.map((h) => imageSummary(ctx, h.repo, h.tag, h.m)), Summary: repoSummary(ctx, repoFacts(ctx, repo)) };
  },

  RepoListWithNewestImage: (args, ctx) => repoPage(ctx, visibleRepos(ctx).map((r) => repoFacts(ctx, r)), undefined, args.requestedPage as PageInput),

  StarredRepos: () => ({ Page: { TotalCount: 0, ItemCount: 0 }, Results: [] }),
  BookmarkedRepos: () => ({ Page: { TotalCount: 0, ItemCount: 0 }, Results: [] }),

  GlobalSearch: async (args, ctx) => {
    const query = text(args, "query").trim().replace(/^\/+|\/+$/g, "").toLowerCase();
    const filter = args.filter as Filter | undefined;
    const page = args.requestedPage as PageInput | undefined;
    const none = { Page: { TotalCount: 0, ItemCount: 0 }, Images: [], Repos: [], Layers: [] };
    if (!/[:@]/.test(query)) {
      const ranked: RankedRepo[] = [];
      for (const r of visibleRepos(ctx)) {
        const rank = rankRepoName(query, r.name);
        if (rank >= 0) ranked.push(repoFacts(ctx, r, rank));
      }
      const { Page, Results } = await repoPage(ctx, ranked, filter, page);
      return { ...none, Page, Repos: Results };
    }
    let hits: Hit[];
    if (query.startsWith("sha256:")) hits = digestHits(ctx, query);
    else {
      const colon = query.indexOf(":");
      const [repo, tag] = [query.slice(0, colon), query.slice(colon + 1)];
      if (colon < 0 || (repo === "" && tag === "")) throw badInput(`"${query}" is not a search query: use NAME, NAME:TAG, :TAG or a digest`);
      hits = repo === "" ? allHits(ctx, undefined, (t) => t.toLowerCase().includes(tag)) : allHits(ctx, repo, (t) => t.startsWith(tag));
    }
    const { Page, Results } = (await imagePage(ctx, hits, filter, page)) as { Page: unknown; Results: unknown[] };
    return { ...none, Page, Images: Results };
  },

  Image: (args, ctx) => {
    const h = resolveImage(ctx, text(args, "image"));
    return imageSummary(ctx, h.repo, h.tag, h.m);
  },

  Referrers: (args, ctx) => {
    const repo = text(args, "repo");
    if (!ctx.visible(repo) || !ctx.catalog.repo(repo)) return [];
    return referrers(ctx, repo, text(args, "digest"), (args.type as string[] | undefined) ?? undefined);
  },

  DerivedImageList: (args, ctx) => related(ctx, args, "derived"),
  BaseImageList: (args, ctx) => related(ctx, args, "base"),

  CVEListForImage: async (args, ctx) => {
    const h = resolveImage(ctx, text(args, "image"));
    const searched = text(args, "searchedCVE").toLowerCase();
    const excluded = text(args, "excludedCVE").toLowerCase();
    const severity = text(args, "severity").toUpperCase();
    const all = await cvesOfImage(ctx, h);
    const kept = (all ?? []).filter((c) =>
      (!searched || c.id.toLowerCase().includes(searched) || c.title.toLowerCase().includes(searched)) &&
      (!excluded || !(c.id.toLowerCase().includes(excluded) || c.title.toLowerCase().includes(excluded))) &&
      (!severity || c.severity === severity));
    const byId = (a: CveRecord, b: CveRecord) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    const bySeverity = (a: CveRecord, b: CveRecord) => severityRank(b.severity) - severityRank(a.severity) || byId(a, b);
    const page = args.requestedPage as PageInput | undefined;
    const { items, info } = paginate(ctx, kept, { ...page, sortBy: page?.sortBy ?? "SEVERITY" }, { SEVERITY: bySeverity, RELEVANCE: bySeverity, ALPHABETIC_ASC: byId, ALPHABETIC_DSC: (a, b) => byId(b, a) }, "CVEs");
    return {
      Tag: h.tag,
      CVEList: items.map((c) => ({
        Id: c.id, Title: c.title, Description: c.description, Reference: c.reference ?? "", Severity: c.severity,
        PackageList: c.packages.map((p) => ({ Name: p.name, PackagePath: p.path ?? "", InstalledVersion: p.installedVersion, FixedVersion: p.fixedVersion })),
      })),
      Summary: all ? vulnSummary(summariseCves(kept)) : null,
      Page: info,
    };
  },

  ImageListForCVE: async (args, ctx) => {
    const id = text(args, "id");
    const hits: Hit[] = [];
    for (const h of allHits(ctx)) if ((await cvesOfImage(ctx, h))?.some((c) => c.id === id)) hits.push(h);
    return imagePage(ctx, hits, args.filter as Filter, args.requestedPage as PageInput);
  },

  ImageListWithCVEFixed: async (args, ctx) => {
    const id = text(args, "id");
    const hits: Hit[] = [];
    for (const h of allHits(ctx, text(args, "image"))) {
      const cves = await cvesOfImage(ctx, h);
      if (cves && !cves.some((c) => c.id === id)) hits.push(h);
    }
    return imagePage(ctx, hits, args.filter as Filter, args.requestedPage as PageInput);
  },
};

/** Derived images (whose layers start with this image's) or base images (whose layers this one's start with). */
function related(ctx: SearchContext, args: Args, kind: "derived" | "base"): Promise<Record<string, unknown>> {
  const h = resolveImage(ctx, text(args, "image"));
  const digest = typeof args.digest === "string" ? args.digest : undefined;
  const mine = platformsOf(h.repo, h.m).filter((m) => !digest || m.digest === digest);
  const found = new Map<string, Set<string>>();
  for (const m of mine) {
    const layers = detailOf(ctx, h.repo.name, m.digest).layers.map((l) => l.digest);
    if (layers.length === 0) continue;
    const candidates = ctx.catalog.byFirstLayer(layers[0]!);
    ctx.work(candidates.length);
    for (const c of candidates) {
      if (c.digest === m.digest || !ctx.visible(c.repo)) continue;
      const [short, long] = kind === "derived" ? [layers, c.layers] : [c.layers, layers];
      if (short.length > long.length || !short.every((d, i) => long[i] === d)) continue;
      let set = found.get(c.repo);
      if (!set) found.set(c.repo, (set = new Set()));
      set.add(c.digest);
    }
  }
  return imagePage(ctx, hitsOfManifests(ctx, found), undefined, args.requestedPage as PageInput);
}
