/**
 * The repositories page: the catalog (as far as the identity may pull: the server filters
 * it), searched by name and filtered by namespace, all in the browser. The list is read in
 * pages of the catalog's own pagination (Link headers), up to {@link MAX_REPOS}.
 */
import { call, failure } from "./api";
import { h, mount } from "./dom";

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

/** Renders the page into `main`; `query` is the hash's query (q=, ns=). */
export async function reposPage(main: HTMLElement, query: URLSearchParams): Promise<void> {
  const repos = await catalog();
  const namespaces = [...new Set(repos.map((r) => (r.includes("/") ? r.slice(0, r.indexOf("/")) : "")))].sort();
  const search = h("input", { type: "search", id: "search", placeholder: "Search repositories", value: query.get("q") ?? "", autocomplete: "off", "aria-label": "Search repositories" });
  const ns = h("select", { id: "namespace", "aria-label": "Namespace" },
    h("option", { value: "*" }, "All namespaces"),
    namespaces.map((n) => h("option", { value: n, selected: n === query.get("ns") }, n === "" ? "(top level)" : n)));
  const list = h("ul", { class: "repos", id: "repo-list" });
  const count = h("p", { class: "muted", id: "repo-count" });
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const n = ns.value;
    const shown = repos.filter((r) => (q === "" || r.toLowerCase().includes(q)) && (n === "*" || (r.includes("/") ? r.slice(0, r.indexOf("/")) : "") === n));
    mount(list, shown.slice(0, 500).map((r) => h("li", null, h("a", { href: `#/repo/${r}` }, r))));
    count.textContent = `${shown.length} of ${repos.length} repositories${shown.length > 500 ? " (first 500 shown)" : ""}`;
    const params = new URLSearchParams();
    if (q) params.set("q", q);
    if (n !== "*") params.set("ns", n);
    history.replaceState(null, "", `#/repos${params.size ? `?${params}` : ""}`);
  };
  search.addEventListener("input", render);
  ns.addEventListener("change", render);
  mount(main, h("h1", null, "Repositories"), h("div", { class: "row filters" }, search, ns), count, list);
  render();
}
