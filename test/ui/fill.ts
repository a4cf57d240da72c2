/**
 * Fills a running berth through its real /v2 API with what the web UI tests look at: a
 * single-platform image with labels and history, a two-platform index, a signature and an
 * SBOM as referrers, and repositories in several namespaces.
 */
import { sha256 } from "../helpers/clients";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";

/** A registry to push to, with the headers (credentials) of the pusher. */
export interface Target {
  url: string;
  headers: Record<string, string>;
}

async function blob(t: Target, repo: string, data: string, mediaType: string): Promise<{ mediaType: string; digest: string; size: number }> {
  const digest = sha256(data);
  const res = await fetch(`${t.url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: "POST", body: data, headers: { ...t.headers, "Content-Type": "application/octet-stream" } });
  if (res.status !== 201) throw new Error(`push of a blob to ${repo}: ${res.status} ${await res.text()}`);
  return { mediaType, digest, size: Buffer.byteLength(data) };
}

/** Pushes the same blob into each of `repos` (dedupe stores it once); returns its size. */
export async function pushSharedBlob(t: Target, repos: string[], data: string): Promise<number> {
  for (const repo of repos) await blob(t, repo, data, LAYER);
  return Buffer.byteLength(data);
}

/** PUTs a manifest under `ref`; returns its descriptor. */
export async function putManifest(t: Target, repo: string, ref: string, doc: object): Promise<{ mediaType: string; digest: string; size: number }> {
  const text = JSON.stringify(doc);
  const mediaType = (doc as { mediaType: string }).mediaType;
  const res = await fetch(`${t.url}/v2/${repo}/manifests/${ref}`, { method: "PUT", body: text, headers: { ...t.headers, "Content-Type": mediaType } });
  if (res.status !== 201) throw new Error(`push of ${repo}:${ref}: ${res.status} ${await res.text()}`);
  return { mediaType, digest: sha256(text), size: Buffer.byteLength(text) };
}

/** Pushes an image (config with labels and history, `layers` layers) as `repo:tag`. */
export async function pushImage(t: Target, repo: string, tag: string, arch = "amd64", layers = 2): Promise<{ mediaType: string; digest: string; size: number }> {
  const config = JSON.stringify({
    created: "2026-11-30T10:00:00Z",
    architecture: arch,
    os: "linux",
    config: { Env: ["PATH=/usr/bin"], Cmd: ["/bin/serve"], Labels: { "org.opencontainers.image.title": `${repo} test image`, maintainer: "ops@example.test" } },
    rootfs: { type: "layers", diff_ids: [] },
    history: [{ created: "2026-11-30T09:59:00Z", created_by: "ADD rootfs.tar /" }, { created: "2026-11-30T10:00:00Z", created_by: "CMD [\"/bin/serve\"]", empty_layer: true }],
  });
  const cfg = await blob(t, repo, config, "application/vnd.oci.image.config.v1+json");
  const ls = [];
  for (let i = 0; i < layers; i++) ls.push(await blob(t, repo, `${repo} ${tag} ${arch} layer ${i} `.repeat(200 * (i + 1)), LAYER));
  return putManifest(t, repo, tag, { schemaVersion: 2, mediaType: OCI_MANIFEST, config: cfg, layers: ls });
}

/** Pushes an artifact of `artifactType` that refers to `subject` (a signature, an SBOM). */
export async function pushReferrer(t: Target, repo: string, subject: { mediaType: string; digest: string; size: number }, artifactType: string, content: string): Promise<void> {
  const empty = await blob(t, repo, "{}", "application/vnd.oci.empty.v1+json");
  const layer = await blob(t, repo, content, artifactType === "application/spdx+json" ? "application/spdx+json" : "application/octet-stream");
  const doc = { schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType, config: empty, layers: [layer], subject };
  const digest = sha256(JSON.stringify(doc));
  await putManifest(t, repo, digest, doc);
}

/** The test store: apps/web (1.0 signed with an SBOM; latest for two platforms), apps/db:2, tools/cli:v1, secret/vault:1. */
export async function fillStore(t: Target): Promise<void> {
  const web = await pushImage(t, "apps/web", "1.0");
  await pushReferrer(t, "apps/web", web, "application/vnd.dev.cosign.artifact.sig.v1+json", "signature bytes");
  await pushReferrer(t, "apps/web", web, "application/spdx+json", '{"spdxVersion":"SPDX-2.3"}');
  const amd = await pushImage(t, "apps/web", "latest-amd64", "amd64", 1);
  const arm = await pushImage(t, "apps/web", "latest-arm64", "arm64", 1);
  await putManifest(t, "apps/web", "latest", {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [{ ...amd, platform: { os: "linux", architecture: "amd64" } }, { ...arm, platform: { os: "linux", architecture: "arm64", variant: "v8" } }],
  });
  await pushImage(t, "apps/db", "2");
  await pushImage(t, "tools/cli", "v1", "arm64", 1);
  await pushImage(t, "secret/vault", "1", "amd64", 1);
}
