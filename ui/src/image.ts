/**
 * An image (a tag or a digest): an index lists its platforms; a manifest shows its config
 * (platform, created, entrypoint, environment, labels), history and layers, with the
 * referrers (signatures, SBOMs) and the pull commands.
 */
import { json, manifest, mayDelete, search, server, signatureBadge, vulnBadge, vulnText, type Descriptor, type SignatureSummary, type VulnSummary } from "./api";
import { bytes, fields, h, mount, short, when } from "./dom";
import { deleteTag, kindOf, pullCommands } from "./repo";

interface ImageConfig {
  created?: string;
  os?: string;
  architecture?: string;
  variant?: string;
  author?: string;
  config?: { Env?: string[]; Entrypoint?: string[]; Cmd?: string[]; WorkingDir?: string; User?: string; Labels?: Record<string, string>; ExposedPorts?: Record<string, unknown> };
  history?: { created?: string; created_by?: string; empty_layer?: boolean; comment?: string }[];
}

/** Splits "repo:tag" or "repo@sha256:…" into its name and reference. */
export function splitRef(ref: string): { repo: string; ref: string; tag?: string } {
  const at = ref.indexOf("@");
  if (at >= 0) return { repo: ref.slice(0, at), ref: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(":");
  if (colon < 0) return { repo: ref, ref: "latest", tag: "latest" };
  return { repo: ref.slice(0, colon), ref: ref.slice(colon + 1), tag: ref.slice(colon + 1) };
}

function referrersTable(repo: string, refs: Descriptor[]): HTMLElement {
  if (refs.length === 0) return h("p", { class: "muted" }, "No referrers (signatures, SBOMs, attestations).");
  return h("div", { class: "scroll" }, h("table", { id: "referrers" },
    h("thead", null, h("tr", null, ["Kind", "Artifact type", "Digest", "Size"].map((c) => h("th", null, c)))),
    h("tbody", null, refs.map((d) => h("tr", null,
      h("td", null, kindOf(d)),
      h("td", { class: "mono" }, d.artifactType ?? d.mediaType),
      h("td", { class: "mono" }, h("a", { href: `#/image/${repo}@${d.digest}` }, short(d.digest))),
      h("td", { class: "num" }, bytes(d.size)))))));
}

interface Cve {
  Id?: string | null;
  Severity?: string | null;
  Title?: string | null;
  PackageList?: { Name?: string | null; InstalledVersion?: string | null; FixedVersion?: string | null }[] | null;
}

/** The signature status (from the trust store's verdicts) and the vulnerabilities section: search's summary and, once scanned, the CVE list. */
async function vulnerabilities(repo: string, ref: string, signature: HTMLElement): Promise<HTMLElement> {
  if (!server.search) return h("p", { class: "muted", id: "vulns" }, "Not available: vulnerabilities come with the search API ([search] enabled) and scanning.");
  const image = ref.startsWith("sha256:") ? `${repo}@${ref}` : `${repo}:${ref}`;
  try {
    const r = await search<{ Image: { IsSigned?: boolean | null; SignatureInfo?: SignatureSummary[] | null; Vulnerabilities?: VulnSummary | null } }>(`query($image: String!) { Image(image: $image) { IsSigned SignatureInfo { Tool IsTrusted Author } Vulnerabilities { MaxSeverity Count } } }`, { image });
    signature.replaceChildren("Signature: ", signatureBadge(r.Image.IsSigned, r.Image.SignatureInfo));
    const summary = r.Image.Vulnerabilities;
    // the summary and the list are asked with the pull's rights: nothing of another repository shows
    if (!summary?.MaxSeverity || summary.Count === 0) return h("p", { class: "muted", id: "vulns" }, vulnText(summary));
    const list = await search<{ CVEListForImage: { CVEList: Cve[] | null } }>(`query($image: String!) { CVEListForImage(image: $image, requestedPage: {limit: 500, sortBy: SEVERITY}) { CVEList { Id Severity Title PackageList { Name InstalledVersion FixedVersion } } } }`, { image });
    return h("div", { id: "vulns" }, h("p", null, vulnBadge(summary)), h("div", { class: "scroll" }, h("table", { id: "cves" },
      h("thead", null, h("tr", null, ["CVE", "Severity", "Title", "Packages (installed → fixed)"].map((c) => h("th", null, c)))),
      h("tbody", null, (list.CVEListForImage.CVEList ?? []).map((c) => h("tr", { "data-cve": c.Id ?? "" }, h("td", { class: "mono" }, c.Id ?? ""), h("td", null, c.Severity ?? ""), h("td", null, c.Title ?? ""),
        h("td", null, (c.PackageList ?? []).map((p) => `${p.Name} ${p.InstalledVersion} → ${p.FixedVersion || "no fix"}`).join("; "))))))));
  } catch (err) {
    return h("p", { class: "error", id: "vulns" }, `Vulnerabilities unavailable: ${(err as Error).message}`);
  }
}

/** Renders the image page for `ref` (the part of the hash after #/image/). */
export async function imagePage(main: HTMLElement, full: string): Promise<void> {
  const { repo, ref, tag } = splitRef(full);
  const { digest, body } = await manifest(repo, ref);
  const signature = h("p", { id: "signature" });
  const [refs, canDelete, vulns] = await Promise.all([
    json<{ manifests?: Descriptor[] }>(`/v2/${repo}/referrers/${digest}`).then((r) => r.manifests ?? [], () => []),
    tag ? mayDelete(repo) : Promise.resolve(false),
    vulnerabilities(repo, tag ?? digest, signature),
  ]);
  const status = h("p", { id: "status", role: "status" });
  const head = [
    h("p", { class: "crumbs" }, h("a", { href: "#/repos" }, "Repositories"), " / ", h("a", { href: `#/repo/${repo}` }, repo), " / "),
    h("h1", null, `${repo}${tag ? `:${tag}` : `@${short(digest)}`}`),
    h("p", { class: "mono" }, digest),
    signature,
    status,
    tag && canDelete ? h("button", { type: "button", class: "danger", "data-delete": tag, onclick: async () => { if (await deleteTag(repo, tag, status)) location.hash = `#/repo/${repo}`; } }, "Delete tag") : null,
    pullCommands(tag ? `${repo}:${tag}` : `${repo}@${digest}`),
  ];
  if (body.manifests) {
    mount(main, head,
      h("h2", null, "Platforms"),
      h("div", { class: "scroll" }, h("table", { id: "platforms" },
        h("thead", null, h("tr", null, ["Platform", "Digest", "Manifest size"].map((c) => h("th", null, c)))),
        h("tbody", null, body.manifests.map((d) => h("tr", null,
          h("td", null, d.platform ? [d.platform.os, d.platform.architecture, d.platform.variant].filter(Boolean).join("/") : kindOf(d)),
          h("td", { class: "mono" }, h("a", { href: `#/image/${repo}@${d.digest}` }, short(d.digest))),
          h("td", { class: "num" }, bytes(d.size))))))),
      h("h2", null, "Referrers"), referrersTable(repo, refs),
      h("h2", null, "Vulnerabilities"), vulns,
      body.annotations ? [h("h2", null, "Annotations"), fields(body.annotations)] : null);
    return;
  }
  const isImage = body.config && /image\.config|container\.image/.test(body.config.mediaType);
  const cfg = isImage ? await json<ImageConfig>(`/v2/${repo}/blobs/${body.config!.digest}`) : undefined;
  const layers = body.layers ?? [];
  const c = cfg?.config ?? {};
  mount(main, head,
    h("h2", null, "Summary"),
    h("dl", { class: "kv" },
      h("dt", null, "Platform"), h("dd", null, cfg ? [cfg.os, cfg.architecture, cfg.variant].filter(Boolean).join("/") : "–"),
      h("dt", null, "Created"), h("dd", null, when(cfg?.created)),
      h("dt", null, "Size"), h("dd", null, bytes(layers.reduce((s, l) => s + l.size, body.config?.size ?? 0))),
      h("dt", null, "Type"), h("dd", { class: "mono" }, body.artifactType ?? body.config?.mediaType ?? body.mediaType ?? "–"),
      c.Entrypoint ? [h("dt", null, "Entrypoint"), h("dd", { class: "mono" }, JSON.stringify(c.Entrypoint))] : null,
      c.Cmd ? [h("dt", null, "Cmd"), h("dd", { class: "mono" }, JSON.stringify(c.Cmd))] : null,
      c.WorkingDir ? [h("dt", null, "WorkingDir"), h("dd", { class: "mono" }, c.WorkingDir)] : null,
      c.User ? [h("dt", null, "User"), h("dd", { class: "mono" }, c.User)] : null,
      c.ExposedPorts ? [h("dt", null, "Ports"), h("dd", null, Object.keys(c.ExposedPorts).join(", "))] : null),
    h("h2", null, "Labels"), c.Labels && Object.keys(c.Labels).length ? h("div", { id: "labels" }, fields(c.Labels)) : h("p", { class: "muted" }, "No labels."),
    body.annotations ? [h("h2", null, "Annotations"), fields(body.annotations)] : null,
    c.Env ? [h("h2", null, "Environment"), h("ul", { class: "plain mono" }, c.Env.map((e) => h("li", null, e)))] : null,
    h("h2", null, "Layers"),
    h("div", { class: "scroll" }, h("table", { id: "layers" },
      h("thead", null, h("tr", null, ["#", "Digest", "Media type", "Size"].map((x) => h("th", null, x)))),
      h("tbody", null, layers.map((l, i) => h("tr", null, h("td", null, i + 1), h("td", { class: "mono" }, short(l.digest)), h("td", { class: "mono" }, l.mediaType), h("td", { class: "num" }, bytes(l.size))))))),
    cfg?.history ? [h("h2", null, "History"), h("div", { class: "scroll" }, h("table", { id: "history" },
      h("thead", null, h("tr", null, ["Created", "Command", ""].map((x) => h("th", null, x)))),
      h("tbody", null, cfg.history.map((s) => h("tr", null, h("td", null, when(s.created)), h("td", { class: "mono wrap" }, s.created_by ?? s.comment ?? ""), h("td", null, s.empty_layer ? "empty" : ""))))))] : null,
    h("h2", null, "Referrers"), referrersTable(repo, refs),
    h("h2", null, "Vulnerabilities"), vulns,
    h("details", null, h("summary", null, "Raw manifest"), h("pre", null, JSON.stringify(body, null, 2))),
    cfg ? h("details", null, h("summary", null, "Raw config"), h("pre", null, JSON.stringify(cfg, null, 2))) : null);
}
