/**
 * A repository: its tags with platforms, sizes, creation time (from the image config),
 * signatures and SBOMs (from the referrers API and cosign's tag scheme), the pull commands
 * for the usual clients, and deleting a tag for identities allowed to.
 */
import { call, failure, json, manifest, mayDelete, type Descriptor, type Manifest } from "./api";
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

/** Renders the repository page. */
export async function repoPage(main: HTMLElement, repo: string): Promise<void> {
  const list = await json<{ tags?: string[] | null }>(`/v2/${repo}/tags/list`);
  const tags = (list.tags ?? []).slice().sort();
  const cosign = new Set(tags.filter((t) => /^sha256-[0-9a-f]{64}\.(sig|sbom|att)$/.test(t)));
  const plain = tags.filter((t) => !cosign.has(t));
  const [infos, canDelete] = await Promise.all([pool(plain.slice(0, DETAILED_TAGS), 6, (t) => tagInfo(repo, t)), mayDelete(repo)]);
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
      h("td", null, kinds.includes("signature") ? h("span", { class: "badge ok", title: "A signature refers to this image (berth does not verify it)" }, "signed") : h("span", { class: "badge" }, "unsigned"), kinds.filter((k) => k !== "signature").map((k) => h("span", { class: "badge" }, k))),
      h("td", null, canDelete ? h("button", { type: "button", class: "danger small", "data-delete": i.tag, onclick: async () => { if (await deleteTag(repo, i.tag, status)) row.remove(); } }, "Delete") : null));
    return row;
  });
  const first = plain.includes("latest") ? "latest" : plain[0];
  mount(main,
    h("p", { class: "crumbs" }, h("a", { href: "#/repos" }, "Repositories"), " / "),
    h("h1", null, repo),
    h("p", { class: "muted" }, `${plain.length} tags${plain.length > DETAILED_TAGS ? ` (details for the first ${DETAILED_TAGS})` : ""}${cosign.size ? `, ${cosign.size} signature/SBOM tags` : ""}. Last pulled and vulnerabilities need the search extension.`),
    status,
    first ? pullCommands(`${repo}:${first}`) : null,
    h("div", { class: "scroll" }, h("table", { id: "tags" },
      h("thead", null, h("tr", null, ["Tag", "Digest", "Platforms", "Size", "Created", "Signature / SBOM", ""].map((c) => h("th", null, c)))),
      h("tbody", null, rows))),
    plain.length > DETAILED_TAGS ? h("ul", { class: "plain" }, plain.slice(DETAILED_TAGS).map((t) => h("li", null, h("a", { href: `#/image/${repo}:${t}` }, t)))) : null);
}
