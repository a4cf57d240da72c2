/**
 * Shared set-up of the bundle tests: images pushed to a berth over HTTP (an image with a
 * random layer, a cosign-style `.sig` tag and an SBOM referrer), and the `berth bundle`
 * command line run against a daemon.
 */
import { randomBytes } from "node:crypto";
import { berth, type CliResult } from "../helpers/cli";
import { pushBlobTo, sha256 } from "../helpers/clients";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";

/** PUTs manifest bytes; throws unless 201. Returns its digest. */
export async function putManifest(url: string, repo: string, ref: string, doc: unknown, headers: Record<string, string> = {}): Promise<string> {
  const bytes = new TextEncoder().encode(JSON.stringify(doc));
  const res = await fetch(`${url}/v2/${repo}/manifests/${ref}`, { method: "PUT", body: bytes, headers: { "Content-Type": OCI_MANIFEST, ...headers } });
  if (res.status !== 201) throw new Error(`PUT ${repo}:${ref}: ${res.status} ${await res.text()}`);
  return sha256(bytes);
}

/** Pushes an image with one random layer of `size` bytes; returns its manifest digest and layer digest. */
export async function pushImage(url: string, repo: string, tag: string, size = 4096, headers: Record<string, string> = {}): Promise<{ digest: string; layer: string }> {
  const config = await pushBlobTo(url, repo, JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, tag }));
  const layer = await pushBlobTo(url, repo, new Uint8Array(randomBytes(size)));
  const digest = await putManifest(url, repo, tag, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
  }, headers);
  return { digest, layer: layer.digest };
}

/** Pushes a cosign-style signature tag (sha256-HEX.sig) for `digest`; returns its digest. */
export async function pushSignature(url: string, repo: string, digest: string): Promise<string> {
  const config = await pushBlobTo(url, repo, "{}");
  const payload = await pushBlobTo(url, repo, JSON.stringify({ critical: { image: { "docker-manifest-digest": digest } } }));
  return putManifest(url, repo, `${digest.replace(":", "-")}.sig`, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.dev.cosign.simplesigning.v1+json", ...payload, annotations: { "dev.cosignproject.cosign/signature": "c2ln" } }],
  });
}

/** Pushes an SBOM artifact whose subject is `subject` (found only through the referrers API); returns its digest. */
export async function pushReferrer(url: string, repo: string, subject: { digest: string; size: number }): Promise<string> {
  const config = await pushBlobTo(url, repo, "{}");
  const sbom = await pushBlobTo(url, repo, JSON.stringify({ spdxVersion: "SPDX-2.3", name: repo }));
  const doc = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: "application/spdx+json",
    config: { mediaType: "application/vnd.oci.empty.v1+json", ...config },
    layers: [{ mediaType: "application/spdx+json", ...sbom }],
    subject: { mediaType: OCI_MANIFEST, ...subject },
  };
  const bytes = JSON.stringify(doc);
  return putManifest(url, repo, sha256(bytes), doc);
}

/** `berth bundle ARGS…` against `url` (anonymous unless `env` gives credentials). */
export function bundle(home: string, url: string, args: string[]): Promise<CliResult> {
  return berth(home, ["bundle", ...args, "--registry", url]);
}
