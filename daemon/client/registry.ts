/**
 * What the client commands ask a registry, over its public HTTP APIs only: the OCI
 * distribution API (catalog, tags, manifests, blobs, delete), the zot-compatible search API
 * (`/v2/_zot/ext/search`, GraphQL) and berth's admin API (`/api/v1`: info, storage, sync,
 * tasks). References are parsed with the OCI grammar (oci/ is pure and shared).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { hashBytes } from "../platform/hash";
import { ClientError, EXIT, exitForStatus, messageOfBody } from "./errors";
import type { RegistryClient } from "./http";
import type { ProgressBar } from "./output";
import type { TaskView as Task } from "../tasks/wire";

export type { TaskView as Task } from "../tasks/wire";

/** Media types a manifest GET accepts. */
export const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

/** A reference `REPO:TAG`, `REPO@DIGEST` or `REPO` (tag "latest"). */
export interface Ref {
  repo: string;
  tag?: string;
  digest?: string;
}

/** Parses REPO[:TAG][@DIGEST]; throws a usage error on anything else. */
export function parseRef(text: string): Ref {
  const m = /^([a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)(?::([A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(?:@([a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+))?$/.exec(text);
  if (!m) throw new ClientError(`"${text}" is not a reference (REPO[:TAG] or REPO@DIGEST)`, EXIT.usage);
  return { repo: m[1]!, ...(m[2] !== undefined && { tag: m[2] }), ...(m[3] !== undefined && { digest: m[3] }) };
}

/** The reference part of a manifest URL (digest first, then tag, else "latest"). */
export function refPart(ref: Ref): string {
  return ref.digest ?? ref.tag ?? "latest";
}

/** Every repository of the catalog, page by page (following `Link`). */
export async function catalog(client: RegistryClient): Promise<string[]> {
  const out: string[] = [];
  let path: string | undefined = "/v2/_catalog?n=1000";
  for (let pages = 0; path !== undefined && pages < 10_000; pages++) {
    const res = await client.ok(path, "listing repositories", { scope: "registry:catalog:*" });
    const j = (await res.json()) as { repositories?: string[] };
    out.push(...(j.repositories ?? []));
    const link = /<([^>]+)>;\s*rel="?next"?/.exec(res.headers.get("Link") ?? "");
    path = link ? new URL(link[1]!, client.url).pathname + new URL(link[1]!, client.url).search : undefined;
  }
  return out;
}

/** The tags of `repo`. */
export async function tags(client: RegistryClient, repo: string): Promise<string[]> {
  const j = await client.json<{ tags?: string[] | null }>(`/v2/${repo}/tags/list`, `listing the tags of "${repo}"`, { scope: `repository:${repo}:pull` });
  return j.tags ?? [];
}

/** A manifest as fetched: its digest, media type, size and parsed document. */
export interface FetchedManifest {
  digest: string;
  mediaType: string;
  size: number;
  doc: ManifestDoc;
}

/** The fields of an image manifest or index the client reads. */
export interface ManifestDoc {
  mediaType?: string;
  config?: { digest: string; size: number; mediaType?: string };
  layers?: { digest: string; size: number; mediaType?: string }[];
  manifests?: { digest: string; size: number; mediaType?: string; platform?: { os?: string; architecture?: string; variant?: string } }[];
  annotations?: Record<string, string>;
  subject?: { digest: string };
}

/** GETs a manifest. */
export async function manifest(client: RegistryClient, repo: string, reference: string): Promise<FetchedManifest> {
  const res = await client.ok(`/v2/${repo}/manifests/${reference}`, `manifest ${repo}:${reference}`, { scope: `repository:${repo}:pull`, headers: { Accept: MANIFEST_ACCEPT } });
  const bytes = new Uint8Array(await res.arrayBuffer());
  const doc = JSON.parse(new TextDecoder().decode(bytes)) as ManifestDoc;
  const digest = res.headers.get("Docker-Content-Digest") ?? `sha256:${hashBytes("sha256", bytes)}`;
  return { digest, mediaType: res.headers.get("Content-Type") ?? doc.mediaType ?? "", size: bytes.length, doc };
}

/** A small JSON blob (an image config). */
export async function blobJson<T>(client: RegistryClient, repo: string, digest: string): Promise<T> {
  return client.json<T>(`/v2/${repo}/blobs/${digest}`, `blob ${repo}@${digest}`, { scope: `repository:${repo}:pull` });
}

/** Total size of an image: manifest, config and layers (an index: the sum over its manifests' sizes only). */
export function imageSize(m: FetchedManifest): number {
  const d = m.doc;
  return m.size + (d.config?.size ?? 0) + (d.layers ?? []).reduce((a, l) => a + l.size, 0);
}

/** Platforms of an index ("linux/arm64/v8"), or [] for a single image. */
export function platforms(m: FetchedManifest): string[] {
  return (m.doc.manifests ?? []).filter((x) => x.platform).map((x) => [x.platform!.os, x.platform!.architecture, x.platform!.variant].filter(Boolean).join("/"));
}

/** DELETE a manifest (by digest or tag). */
export async function deleteManifest(client: RegistryClient, repo: string, reference: string): Promise<void> {
  const res = await client.ok(`/v2/${repo}/manifests/${reference}`, `deleting ${repo}:${reference}`, { method: "DELETE", scope: `repository:${repo}:delete` });
  await res.body?.cancel();
}

/**
 * A GraphQL query to the search extension. A registry without it (404 or 405 on the
 * endpoint) is an "unsupported" ClientError with a clear message.
 */
export async function graphql<T>(client: RegistryClient, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await client.request("/v2/_zot/ext/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query, variables }), scope: "registry:catalog:*" });
  if (res.status === 404 || res.status === 405) {
    await res.body?.cancel();
    throw new ClientError(`${client.url} has no search API (/v2/_zot/ext/search answered ${res.status}); turn the search extension on, or list with berth repos / berth images`, EXIT.unsupported, res.status);
  }
  if (!res.ok) {
    throw new ClientError(`search: ${res.status} ${messageOfBody(await res.text())}`, exitForStatus(res.status), res.status);
  }
  const j = (await res.json()) as { data?: T; errors?: { message: string }[] };
  if (j.errors?.length) throw new ClientError(`search: ${j.errors.map((e) => e.message).join("; ")}`, EXIT.error);
  return j.data as T;
}

/**
 * POSTs an admin action asynchronously (`?async=true`) and follows the task it starts until
 * it ends, polling every `intervalMs` and drawing `bar` (a no-op off a terminal). An older
 * daemon that answers synchronously (200 with the result) is accepted as a finished task.
 * Resolves with the final task; a failed task is a ClientError.
 */
export async function runTask(client: RegistryClient, path: string, what: string, bar: ProgressBar, intervalMs = 250): Promise<Task> {
  const sep = path.includes("?") ? "&" : "?";
  const res = await client.ok(`${path}${sep}async=true`, what, { method: "POST" });
  const body = (await res.json()) as Task | Record<string, unknown>;
  if (res.status !== 202) {
    const now = new Date().toISOString();
    return { id: "", kind: what, state: "succeeded", done: 0, total: null, bytes: 0, totalBytes: null, started: now, finished: now, result: body, error: null };
  }
  let task = body as Task;
  try {
    while (task.state === "running") {
      bar.update(task);
      await sleep(intervalMs);
      task = await client.json<Task>(`/api/v1/tasks/${encodeURIComponent(task.id)}`, `following task ${task.id}`);
    }
    bar.update(task);
  } finally {
    bar.finish();
  }
  if (task.state === "failed") throw new ClientError(`${what} failed: ${task.error}`, EXIT.error);
  return task;
}
