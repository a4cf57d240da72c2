/**
 * The distribution API calls a bundle export or import makes, over the client library (so
 * credentials, tokens, TLS and exit codes are those of every client command): raw manifest
 * bytes, HEAD of blobs and manifests, the referrers API, streamed blob GETs, monolithic blob
 * uploads from a stream (verified by the registry against the digest) and manifest PUTs.
 */
import { ClientError, EXIT, exitForStatus, messageOfBody } from "../client/errors";
import type { RegistryClient } from "../client/http";
import { MANIFEST_ACCEPT } from "../client/registry";
import { MAX_DOC } from "./format";

const pull = (repo: string) => `repository:${repo}:pull`;
const push = (repo: string) => `repository:${repo}:pull,push`;

/** A manifest's exact bytes, media type and digest, or undefined on 404. */
export async function getManifestRaw(client: RegistryClient, repo: string, ref: string): Promise<{ bytes: Uint8Array; mediaType: string; digest: string } | undefined> {
  const res = await client.request(`/v2/${repo}/manifests/${ref}`, { scope: pull(repo), headers: { Accept: `${MANIFEST_ACCEPT}, application/vnd.oci.artifact.manifest.v1+json` } });
  if (res.status === 404) return (await res.body?.cancel(), undefined);
  if (!res.ok) throw new ClientError(`manifest ${repo}:${ref}: ${res.status} ${messageOfBody(await res.text())}`, exitForStatus(res.status), res.status);
  const length = Number(res.headers.get("Content-Length") ?? 0);
  if (length > MAX_DOC) throw new ClientError(`manifest ${repo}:${ref} has ${length} bytes, more than a bundle carries`, EXIT.error);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const digest = res.headers.get("Docker-Content-Digest") ?? "";
  return { bytes, mediaType: (res.headers.get("Content-Type") ?? "").split(";")[0]!.trim(), digest };
}

/** True when `repo` has manifest `digest` (HEAD). */
export async function hasManifest(client: RegistryClient, repo: string, digest: string): Promise<boolean> {
  return exists(client, `/v2/${repo}/manifests/${digest}`, repo, `manifest ${repo}@${digest}`);
}

/** True when `repo` holds blob `digest` (HEAD). */
export async function hasBlob(client: RegistryClient, repo: string, digest: string): Promise<boolean> {
  return exists(client, `/v2/${repo}/blobs/${digest}`, repo, `blob ${repo}@${digest}`);
}

async function exists(client: RegistryClient, path: string, repo: string, what: string): Promise<boolean> {
  const res = await client.request(path, { method: "HEAD", scope: pull(repo), headers: { Accept: MANIFEST_ACCEPT } });
  await res.body?.cancel();
  if (res.ok) return true;
  if (res.status === 404) return false;
  throw new ClientError(`${what}: ${res.status}`, exitForStatus(res.status), res.status);
}

/** The referrers of manifest `digest` (OCI 1.1 referrers API); [] when the registry has no such API. */
export async function referrers(client: RegistryClient, repo: string, digest: string): Promise<{ digest: string; mediaType: string; size: number }[]> {
  const res = await client.request(`/v2/${repo}/referrers/${digest}`, { scope: pull(repo) });
  if (res.status === 404 || res.status === 405) return (await res.body?.cancel(), []);
  if (!res.ok) throw new ClientError(`referrers of ${repo}@${digest}: ${res.status} ${messageOfBody(await res.text())}`, exitForStatus(res.status), res.status);
  const j = (await res.json()) as { manifests?: { digest: string; mediaType: string; size: number }[] };
  return j.manifests ?? [];
}

/** A blob's bytes as a stream (GET). */
export async function blobStream(client: RegistryClient, repo: string, digest: string): Promise<ReadableStream<Uint8Array>> {
  const res = await client.ok(`/v2/${repo}/blobs/${digest}`, `blob ${repo}@${digest}`, { scope: pull(repo) });
  if (!res.body) throw new ClientError(`blob ${repo}@${digest}: the answer has no body`, EXIT.error);
  return res.body;
}

/**
 * Uploads `size` bytes from `body` as blob `digest` of `repo` in one POST (the registry
 * verifies the digest and stores through its one ingest path). Call `client.authorize`
 * with the push scope first: a streamed body cannot be sent twice.
 */
export async function uploadBlob(client: RegistryClient, repo: string, digest: string, size: number, body: ReadableStream<Uint8Array>): Promise<void> {
  const res = await client.request(`/v2/${repo}/blobs/uploads/?digest=${encodeURIComponent(digest)}`, {
    method: "POST",
    scope: push(repo),
    headers: { "Content-Type": "application/octet-stream", "Content-Length": String(size) },
    body,
    duplex: "half",
  } as RequestInit & { scope: string });
  const text = await res.text();
  if (res.status !== 201) throw new ClientError(`uploading blob ${digest} to ${repo}: ${res.status} ${messageOfBody(text)}`, exitForStatus(res.status), res.status);
}

/** PUTs a manifest's exact bytes to `repo` under `reference` (a tag or its digest). */
export async function putManifest(client: RegistryClient, repo: string, reference: string, mediaType: string, bytes: Uint8Array): Promise<void> {
  const res = await client.request(`/v2/${repo}/manifests/${reference}`, { method: "PUT", scope: push(repo), headers: { "Content-Type": mediaType }, body: bytes });
  const text = await res.text();
  if (res.status !== 201) throw new ClientError(`pushing manifest ${repo}:${reference}: ${res.status} ${messageOfBody(text)}`, exitForStatus(res.status), res.status);
}

/** Prepares the push credentials of `repo` (a token when the registry issues them). */
export async function authorizePush(client: RegistryClient, repo: string): Promise<void> {
  await client.authorize(push(repo));
}

export { pull as pullScope, push as pushScope };
