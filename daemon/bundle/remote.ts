/**
 * The distribution API calls a bundle export or import makes, over the client library (so
 * credentials, tokens, TLS and exit codes are those of every client command): raw manifest
 * bytes, HEAD of blobs and manifests, the referrers API, streamed blob GETs, monolithic blob
 * uploads from a stream (verified by the registry against the digest) and manifest PUTs.
 */
import { ClientError, EXIT, exitForStatus, messageOfBody } from "../client/errors";
import type { RegistryClient } from "../client/http";
import { MANIFEST_ACCEPT } from "../client/registry";
import { hashBytes } from "../platform/hash";
import { MAX_DOC } from "./format";
import type { ImportTarget } from "./import";

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
  // a registry that sends no Docker-Content-Digest: the sha256 of the bytes (the header's digest is checked by callers)
  const digest = res.headers.get("Docker-Content-Digest") || `sha256:${hashBytes("sha256", bytes)}`;
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

/** Opens and cancels an upload session: refuses (exit 4) before anything is written when the caller may not push to `repo`. */
export async function probePush(client: RegistryClient, repo: string): Promise<void> {
  const res = await client.request(`/v2/${repo}/blobs/uploads/`, { method: "POST", scope: push(repo) });
  const text = await res.text();
  if (res.status === 401 || res.status === 403) throw new ClientError(`the bundle holds ${repo}, to which these credentials may not push: ${res.status} ${messageOfBody(text)}`, EXIT.denied, res.status);
  if (res.status !== 202) throw new ClientError(`${repo}: opening an upload answered ${res.status} ${messageOfBody(text)}`, EXIT.error, res.status);
  const location = res.headers.get("Location");
  if (location) {
    const path = new URL(location, client.url);
    const del = await client.request(path.pathname + path.search, { method: "DELETE", scope: push(repo) });
    await del.body?.cancel();
  }
}

/** A stream of `chunks`; `failure` is the error the iteration threw (the bundle's bytes, not the network). */
function streamOf(chunks: AsyncIterable<Uint8Array>): { stream: ReadableStream<Uint8Array>; failure(): unknown } {
  const it = chunks[Symbol.asyncIterator]();
  let failed: unknown;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await it.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      } catch (err) {
        failed = err;
        controller.error(err);
      }
    },
    async cancel() {
      await it.return?.(undefined);
    },
  });
  return { stream, failure: () => failed };
}

/** The import target of a running registry, over HTTP with the client's credentials. */
export function httpTarget(client: RegistryClient): ImportTarget {
  return {
    tagged: async (repo, tag) => (await getManifestRaw(client, repo, tag))?.digest,
    hasManifest: (repo, digest) => hasManifest(client, repo, digest),
    hasBlob: (repo, digest) => hasBlob(client, repo, digest),
    mayPush: (repo) => probePush(client, repo),
    async putBlob(repo, digest, size, chunks) {
      await authorizePush(client, repo);
      const body = streamOf(chunks);
      try {
        await uploadBlob(client, repo, digest, size, body.stream);
      } catch (err) {
        // the request failed because the bundle's bytes did (corrupt, unreadable): say that
        throw body.failure() ?? err;
      }
    },
    putManifest: (repo, reference, mediaType, bytes) => putManifest(client, repo, reference, mediaType, bytes),
  };
}

