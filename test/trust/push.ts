/**
 * Pushing images and signatures to a running berth over HTTP, as a client would: blobs by
 * monolithic POST, manifests by PUT.
 */
import { expect } from "bun:test";
import { SIGNATURE_ANNOTATION, SIMPLE_SIGNING } from "../../daemon/trust/cosign";
import { cosignSign, digestOf, type Pair, simplePayload } from "./fixtures";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const EMPTY = Buffer.from("{}");
/** Sizes of the manifests pushed (descriptors of indexes and subjects need them). */
export const SIZES = new Map<string, number>();

/** Uploads a blob (monolithic POST). */
export async function pushBlob(url: string, repo: string, bytes: Uint8Array, headers: Record<string, string> = {}): Promise<string> {
  const digest = digestOf(bytes);
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: "POST", body: bytes, headers: { "Content-Type": "application/octet-stream", ...headers } });
  expect(res.status).toBe(201);
  return digest;
}

/** PUTs a manifest; returns its digest. */
export async function pushManifest(url: string, repo: string, ref: string | undefined, doc: unknown, mediaType = OCI_MANIFEST, headers: Record<string, string> = {}): Promise<string> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const digest = digestOf(bytes);
  SIZES.set(digest, bytes.length);
  const res = await fetch(`${url}/v2/${repo}/manifests/${ref ?? digest}`, { method: "PUT", body: bytes, headers: { "Content-Type": mediaType, ...headers } });
  if (res.status !== 201) throw new Error(`PUT manifest ${repo}:${ref}: ${res.status} ${await res.text()}`);
  return digest;
}

/** Pushes a one-layer image; returns its manifest digest. */
export async function pushImage(url: string, repo: string, tag: string | undefined, content: string, headers: Record<string, string> = {}): Promise<string> {
  const layer = Buffer.from(content);
  await pushBlob(url, repo, layer, headers);
  await pushBlob(url, repo, EMPTY, headers);
  return pushManifest(url, repo, tag, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: digestOf(EMPTY), size: EMPTY.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: digestOf(layer), size: layer.length }],
  }, OCI_MANIFEST, headers);
}

/** Pushes an index of the given manifests; returns its digest. */
export async function pushIndex(url: string, repo: string, tag: string, children: string[], headers: Record<string, string> = {}): Promise<string> {
  return pushManifest(url, repo, tag, {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: children.map((c, i) => ({ mediaType: OCI_MANIFEST, digest: c, size: SIZES.get(c) ?? 0, platform: { os: "linux", architecture: i === 0 ? "amd64" : "arm64" } })),
  }, OCI_INDEX, headers);
}

/** Attaches a cosign tag-scheme signature of `target` made with `pair` (signing `signed`, default `target`). */
export async function pushCosignSignature(url: string, repo: string, target: string, pair: Pair, signed = target, headers: Record<string, string> = {}): Promise<string> {
  const payload = simplePayload(signed);
  await pushBlob(url, repo, payload, headers);
  await pushBlob(url, repo, EMPTY, headers);
  return pushManifest(url, repo, `${target.replace(":", "-")}.sig`, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: digestOf(EMPTY), size: EMPTY.length },
    layers: [{ mediaType: SIMPLE_SIGNING, digest: digestOf(payload), size: payload.length, annotations: { [SIGNATURE_ANNOTATION]: cosignSign(pair, payload) } }],
  }, OCI_MANIFEST, headers);
}

/** Attaches a notation JWS envelope as a referrer of `target`. */
export async function pushNotationSignature(url: string, repo: string, target: string, envelope: Uint8Array, headers: Record<string, string> = {}): Promise<string> {
  await pushBlob(url, repo, envelope, headers);
  await pushBlob(url, repo, EMPTY, headers);
  return pushManifest(url, repo, undefined, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: "application/vnd.cncf.notary.signature",
    config: { mediaType: "application/vnd.oci.empty.v1+json", digest: digestOf(EMPTY), size: EMPTY.length },
    layers: [{ mediaType: "application/jose+json", digest: digestOf(envelope), size: envelope.length }],
    subject: { mediaType: OCI_MANIFEST, digest: target, size: SIZES.get(target) ?? 0 },
  }, OCI_MANIFEST, headers);
}

/** GET of a manifest: status and, on an error, the OCI error body. */
export async function getManifest(url: string, repo: string, ref: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${ref}`, { headers: { Accept: `${OCI_MANIFEST}, ${OCI_INDEX}`, ...headers } });
  return { status: res.status, body: await res.text() };
}
