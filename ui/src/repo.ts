/**
 * A repository: its tags with platforms, sizes, creation time (from the image config),
 * signatures and SBOMs (from the referrers API and cosign's tag scheme), the pull commands
 * for the usual clients, and deleting a tag for identities allowed to.
 */
import { call, failure, json, manifest, mayDelete, search, server, signatureBadge, vulnBadge, type Descriptor, type Manifest, type SignatureSummary, type VulnSummary } from "./api";
import { bytes, confirmDialog, copyable, h, mount, short, when } from "./dom";

/** Tags whose details are fetched (each costs a manifest GET and a referrers GET). */
const DETAILED_TAGS = 50;

/** What one tag resolves to. */
interface TagInfo {
  tag: string;
  digest: string;
  platforms: string[];
  size: number;
  created?: string;
  referrers: Descriptor[];
  error?: string;
}

const SIGNATURE_TYPES = ["application/vnd.dev.cosign.artifact.sig.v1+json", "application/vnd.cncf.notary.signature", "application/vnd.dev.sigstore.bundle.v0.3+json"];

/** A referrer's kind for people: signature, SBOM, attestation or its artifact type. */
export function kindOf(d: Descriptor): string {
  const t = d.artifactType ?? d.mediaType;
  if (SIGNATURE_TYPES.includes(t) || /signature|\.sig/.test(t)) return "signature";
  if (/spdx|cyclonedx|sbom/i.test(t)) return "SBOM";
  if (/in-toto|attestation|provenance/i.test(t)) return "attestation";
  return t;
}

/** Platforms of an index ("linux/arm64/v8"), or the single one of an image (from its config). */
function platformsOf(m: Manifest): string[] {
  return (m.manifests ?? []).filter((d) => d.platform && d.platform.os !== "unknown").map((d) => [d.platform!.os, d.platform!.architecture, d.platform!.variant].filter(Boolean).join("/"));
}

/** Runs `fn` over `items`, `width` at a time. */
async function pool<T, R>(items: T[], width: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (i < items.length) {
      const k = i++;
      out[k] = await fn(items[k]!);
    }
  }));
  return out;
}

async function tagInfo(repo: string, tag: string): Promise<TagInfo> {
  try {
    const { digest, body } = await manifest(repo, tag);
    let platforms = platformsOf(body);
    let size = (body.config?.size ?? 0) + (body.layers ?? []).reduce((s, l) => s + l.size, 0);
    let created: string | undefined;
    if (body.manifests) {
      // an index's size is its platforms' images (a few manifest GETs; the first 8 platforms)
      const children = await Promise.all(body.manifests.slice(0, 8).map((d) => manifest(repo, d.digest).then((m) => (m.body.config?.size ?? 0) + (m.body.layers ?? []).reduce((s, l) => s + l.size, 0), () => d.size)));
      size = children.reduce((a, b) => a + b, 0);
    }
    if (body.config && /image\.config|container\.image/.test(body.config.mediaType)) {
      const cfg = await json<{ created?: string; os?: string; architecture?: string; variant?: string }>(`/v2/${repo}/blobs/${body.config.digest}`).catch(() => undefined);
      created = cfg?.created;
      if (cfg?.os) platforms = [[cfg.os, cfg.architecture, cfg.variant].filter(Boolean).join("/")];
    }
    const refs = await json<{ manifests?: Descriptor[] }>(`/v2/${repo}/referrers/${digest}`).catch(() => ({ manifests: [] }));
    return { tag, digest, platforms, size, ...(created ? { created } : {}), referrers: refs.manifests ?? [] };
  } catch (err) {
    return { tag, digest: "", platforms: [], size: 0, referrers: [], error: (err as Error).message };
  }
}

/** A tag's row from search's summary, with its referrers from /v2 (which no pull count sees). */
async function fromSearch(repo: string, s: Searched): Promise<TagInfo> {
  const digest = s.Digest!;
  const refs = await json<{ manifests?: Descriptor[] }>(`/v2/${repo}/referrers/${digest}`).catch(() => ({ manifests: [] }));
  const platforms = [...new Set((s.Manifests ?? []).filter((m) => m.Platform?.Os).map((m) => `${m.Platform!.Os}/${m.Platform!.Arch}`))];
  return { tag: s.Tag ?? "", digest, platforms, size: Number(s.Size ?? 0), ...(s.LastUpdated ? { created: s.LastUpdated } : {}), referrers: refs.manifests ?? [] };
}

/** The pull commands for `ref` (repo:tag or repo@digest) on this host. */
export function pullCommands(ref: string): HTMLElement {
  const host = location.host;
  const insecure = location.protocol === "http:";
  const full = `${host}/${ref}`;
  return h("div", { class: "pull" },
    h("h3", null, "Pull"),
    copyable(`podman pull ${insecure ? "--tls-verify=false " : ""}${full}`),
    copyable(`docker pull ${full}`),
    copyable(`ctr images pull ${insecure ? "--plain-http " : ""}${full}`),
    copyable(`skopeo copy ${insecure ? "--src-tls-verify=false " : ""}docker://${full} oci:${ref.split(/[:@]/)[0]!.split("/").pop()}`),
    insecure ? h("p", { class: "muted" }, "Plain HTTP: docker needs this host in its insecure-registries.") : null);
}

/** Deletes `repo:tag` after confirmation; true when deleted. */
export async function deleteTag(repo: string, tag: string, status: HTMLElement): Promise<boolean> {
  if (!(await confirmDialog(`Delete the tag ${repo}:${tag}? The image stays while other tags or digests refer to it; GC frees what nothing refers to.`, "Delete tag"))) return false;
  const res = await call(`/v2/${repo}/manifests/${encodeURIComponent(tag)}`, { method: "DELETE" });
  if (!res.ok) {
    status.textContent = `Delete refused: ${(await failure(res)).message}`;
    status.className = "error";
    return false;
  }
  status.textContent = `Deleted ${repo}:${tag}.`;
  status.className = "ok";
  return true;
}

/** What search knows of one tag (zot's ImageSummary). */
interface Searched {
  Tag?: string | null;
  Digest?: string | null;
  Size?: string | null;
  LastUpdated?: string | null;
  Manifests?: { Platform?: { Os?: string | null; Arch?: string | null } | null }[] | null;
  PushTimestamp?: string | null;
  LastPullTimestamp?: string | null;
  DownloadCount?: number | null;
  IsSigned?: boolean | null;
  SignatureInfo?: SignatureSummary[] | null;
  Vulnerabilities?: VulnSummary | null;
}

const EXPANDED = `query($repo: String!) { ExpandedRepoInfo(repo: $repo) { Images { Tag Digest Size LastUpdated Manifests { Platform { Os Arch } } PushTimestamp LastPullTimestamp DownloadCount IsSigned SignatureInfo { Tool IsTrusted Author } Vulnerabilities { MaxSeverity Count } } } }`;

/** Tag -> what search knows (empty without search, or when it fails: the page still shows /v2's view). */
async function searched(repo: string): Promise<Map<string, Searched>> {
  if (!server.search) return new Map();
  try {
    const r = await search<{ ExpandedRepoInfo: { Images: Searched[] | null } }>(EXPANDED, { repo });
    return new Map((r.ExpandedRepoInfo.Images ?? []).map((i) => [i.Tag ?? "", i]));
  } catch {
    return new Map();
  }
}

/** Renders the repository page. */
export async function repoPage(main: HTMLElement, repo: string): Promise<void> {
  const [list, known] = await Promise.all([json<{ tags?: string[] | null }>(`/v2/${repo}/tags/list`), searched(repo)]);
  const tags = (list.tags ?? []).slice().sort();
  const cosign = new Set(tags.filter((t) => /^sha256-[0-9a-f]{64}\.(sig|sbom|att)$/.test(t)));
  const plain = tags.filter((t) => !cosign.has(t));
  // what search knows is taken from it: a manifest GET from the UI would count as a pull
  const [infos, canDelete] = await Promise.all([pool(plain.slice(0, DETAILED_TAGS), 6, (t) => (known.get(t)?.Digest ? fromSearch(repo, known.get(t)!) : tagInfo(repo, t))), mayDelete(repo)]);
  const status = h("p", { id: "status", role: "status" });
  const rows = infos.map((i) => {
    const legacy = i.digest ? [...cosign].filter((t) => t.startsWith(i.digest.replace(":", "-"))).map((t) => t.slice(t.lastIndexOf(".") + 1)) : [];
    const kinds = [...new Set([...i.referrers.map(kindOf), ...legacy.map((k) => (k === "sig" ? "signature" : k === "sbom" ? "SBOM" : "attestation"))])];
    const row = h("tr", { "data-tag": i.tag },
      h("td", null, h("a", { href: `#/image/${repo}:${i.tag}` }, i.tag)),
      h("td", { class: "mono" }, i.error ? h("span", { class: "error" }, i.error) : short(i.digest)),
      h("td", null, i.platforms.join(", ") || "–"),
      h("td", { class: "num" }, bytes(i.size)),
      h("td", null, when(i.created)),
      server.search ? [
        h("td", null, when(known.get(i.tag)?.PushTimestamp)),
        h("td", null, when(known.get(i.tag)?.LastPullTimestamp)),
        h("td", { class: "num" }, known.get(i.tag)?.DownloadCount ?? 0),
        h("td", null, vulnBadge(known.get(i.tag)?.Vulnerabilities)),
      ] : null,
      h("td", null, signatureBadge(known.get(i.tag)?.IsSigned, known.get(i.tag)?.SignatureInfo, kinds.includes("signature")), kinds.filter((k) => k !== "signature").map((k) => h("span", { class: "badge" }, k))),
      h("td", null, canDelete ? h("button", { type: "button", class: "danger small", "data-delete": i.tag, onclick: async () => { if (await deleteTag(repo, i.tag, status)) row.remove(); } }, "Delete") : null));
    return row;
  });
  const first = plain.includes("latest") ? "latest" : plain[0];
  mount(main,
    h("p", { class: "crumbs" }, h("a", { href: "#/repos" }, "Repositories"), " / "),
    h("h1", null, repo),
    h("p", { class: "muted" }, `${plain.length} tags${plain.length > DETAILED_TAGS ? ` (details for the first ${DETAILED_TAGS})` : ""}${cosign.size ? `, ${cosign.size} signature/SBOM tags` : ""}.${server.search ? "" : " Push and pull times, pulls and vulnerabilities come with the search API ([search] enabled)."}`),
    status,
    first ? pullCommands(`${repo}:${first}`) : null,
    h("div", { class: "scroll" }, h("table", { id: "tags" },
      h("thead", null, h("tr", null, ["Tag", "Digest", "Platforms", "Size", "Created", ...(server.search ? ["Pushed", "Last pulled", "Pulls", "Vulnerabilities"] : []), "Signature / SBOM", ""].map((c) => h("th", null, c)))),
      h("tbody", null, rows))),
    plain.length > DETAILED_TAGS ? h("ul", { class: "plain" }, plain.slice(DETAILED_TAGS).map((t) => h("li", null, h("a", { href: `#/image/${repo}:${t}` }, t)))) : null);
}
