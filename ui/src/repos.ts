/**
 * The repositories page: what the identity may pull (the server filters it), searched by
 * name and filtered by namespace, platform and signature, all in the browser. With the
 * search API on, each repository comes with its newest tag, last update, size, platforms,
 * pulls, signature and vulnerability status (RepoListWithNewestImage); without it, the
 * names come from the catalog. Both are read page by page, up to {@link MAX_REPOS}.
 */
import { call, failure, search, server, signatureBadge, vulnBadge, type SignatureSummary, type VulnSummary } from "./api";
import { bytes, h, mount, when } from "./dom";

/** The most repositories listed (a Pi's browser page should stay light). */
const MAX_REPOS = 10_000;

/** Reads the whole visible catalog, page by page. */
export async function catalog(): Promise<string[]> {
  const out: string[] = [];
  let next: string | null = "/v2/_catalog?n=1000";
  while (next && out.length < MAX_REPOS) {
    const res = await call(next);
    if (!res.ok) throw await failure(res);
    const body = (await res.json()) as { repositories?: string[] };
    out.push(...(body.repositories ?? []));
    const link = res.headers.get("Link");
    const m = link ? /<([^>]+)>;\s*rel="?next"?/.exec(link) : null;
    next = m ? m[1]! : null;
  }
  return out;
}

/** One repository as search summarises it (zot's RepoSummary); only Name without search. */
interface RepoRow {
  Name: string;
  LastUpdated?: string | null;
  Size?: string | null;
  DownloadCount?: number | null;
  Platforms?: { Os?: string | null; Arch?: string | null }[] | null;
  NewestImage?: { Tag?: string | null; IsSigned?: boolean | null; SignatureInfo?: SignatureSummary[] | null; Vulnerabilities?: VulnSummary | null } | null;
}

const REPO_LIST = `query($offset: Int) { RepoListWithNewestImage(requestedPage: {limit: 1000, offset: $offset, sortBy: ALPHABETIC_ASC}) {
  Page { TotalCount ItemCount } Results { Name LastUpdated Size DownloadCount Platforms { Os Arch } NewestImage { Tag IsSigned SignatureInfo { Tool IsTrusted Author } Vulnerabilities { MaxSeverity Count } } } } }`;

/** Every repository's summary from the search API, page by page. */
async function summaries(): Promise<RepoRow[]> {
  const out: RepoRow[] = [];
  for (;;) {
    const r = await search<{ RepoListWithNewestImage: { Page: { TotalCount: number; ItemCount: number }; Results: RepoRow[] } }>(REPO_LIST, { offset: out.length });
    out.push(...r.RepoListWithNewestImage.Results);
    if (r.RepoListWithNewestImage.Results.length === 0 || out.length >= r.RepoListWithNewestImage.Page.TotalCount || out.length >= MAX_REPOS) return out;
  }
}

const platformsOf = (r: RepoRow) => [...new Set((r.Platforms ?? []).filter((p) => p.Os).map((p) => `${p.Os}/${p.Arch}`))];

/** Renders the page into `main`; `query` is the hash's query (q=, ns=). */
export async function reposPage(main: HTMLElement, query: URLSearchParams): Promise<void> {
  const rich = server.search;
  const rows: RepoRow[] = rich ? await summaries() : (await catalog()).map((Name) => ({ Name }));
  const byName = new Map(rows.map((r) => [r.Name, r]));
  const repos = rows.map((r) => r.Name);
  const namespaces = [...new Set(repos.map((r) => (r.includes("/") ? r.slice(0, r.indexOf("/")) : "")))].sort();
  const input = h("input", { type: "search", id: "search", placeholder: "Search repositories", value: query.get("q") ?? "", autocomplete: "off", "aria-label": "Search repositories" });
  const ns = h("select", { id: "namespace", "aria-label": "Namespace" },
    h("option", { value: "*" }, "All namespaces"),
    namespaces.map((n) => h("option", { value: n, selected: n === query.get("ns") }, n === "" ? "(top level)" : n)));
  const platforms = [...new Set(rows.flatMap(platformsOf))].sort();
  const platform = h("select", { id: "platform", "aria-label": "Platform", hidden: !rich }, h("option", { value: "*" }, "All platforms"), platforms.map((p) => h("option", { value: p, selected: p === query.get("platform") }, p)));
  const signed = h("input", { type: "checkbox", id: "signed-only", checked: query.get("signed") === "1" });
  const list = h("ul", { class: "repos", id: "repo-list" });
  const count = h("p", { class: "muted", id: "repo-count" });
  const render = () => {
    const q = input.value.trim().toLowerCase();
    const n = ns.value;
    const shown = repos.filter((r) => {
      const row = byName.get(r)!;
      return (q === "" || r.toLowerCase().includes(q)) && (n === "*" || (r.includes("/") ? r.slice(0, r.indexOf("/")) : "") === n) &&
        (platform.value === "*" || platformsOf(row).includes(platform.value)) && (!signed.checked || row.NewestImage?.IsSigned === true);
    });
    mount(list, shown.slice(0, 500).map((r) => {
      const row = byName.get(r)!;
      if (!rich) return h("li", null, h("a", { href: `#/repo/${r}` }, r));
      const img = row.NewestImage;
      return h("li", { class: "repo" }, h("a", { href: `#/repo/${r}` }, r),
        h("div", { class: "muted small" },
          [img?.Tag ? `${img.Tag} · ` : "", `updated ${when(row.LastUpdated)} · ${bytes(Number(row.Size))} · ${row.DownloadCount ?? 0} pulls`, platformsOf(row).length ? ` · ${platformsOf(row).join(", ")}` : ""].join(""),
          " ", img?.IsSigned ? signatureBadge(img.IsSigned, img.SignatureInfo) : null,
          vulnBadge(img?.Vulnerabilities, "vulnerabilities: ")));
    }));
    count.textContent = `${shown.length} of ${repos.length} repositories${shown.length > 500 ? " (first 500 shown)" : ""}`;
    const params = new URLSearchParams();
    if (q) params.set("q", q);
    if (n !== "*") params.set("ns", n);
    if (platform.value !== "*") params.set("platform", platform.value);
    if (signed.checked) params.set("signed", "1");
    history.replaceState(null, "", `#/repos${params.size ? `?${params}` : ""}`);
  };
  input.addEventListener("input", render);
  for (const el of [ns, platform, signed]) el.addEventListener("change", render);
  mount(main, h("h1", null, "Repositories"),
    h("div", { class: "row filters" }, input, ns, platform, rich ? h("label", null, signed, " signed only") : null), count, list);
  render();
}
