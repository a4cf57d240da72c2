/**
 * What the /v2 handler needs of the registry, as a type of its own so that decorators
 * (sync's pull-through) can stand in front of the {@link Registry} without the HTTP layer
 * and background work importing each other.
 */
import type { BlobFile, Registry } from "./registry";

/**
 * A blob served from a stream instead of a file: sync's pull-through sends the bytes while
 * they are still arriving from the upstream. `size` is undefined when the upstream did not
 * announce it (the response is then chunked). Range requests get the whole blob (200), which
 * RFC 9110 allows.
 */
export interface BlobStream {
  digest: string;
  size: number | undefined;
  /** Opens the body; not called for HEAD. */
  open(): ReadableStream<Uint8Array>;
}

/**
 * What the handler needs of the registry: {@link Registry} itself, or a decorator over it
 * (sync's pull-through) whose `blob` may answer asynchronously and with a stream.
 */
/** The registry operations the /v2 handler calls (a {@link Registry}, or a decorator of one). */
export type V2Registry = Pick<
  Registry,
  | "manifest"
  | "putManifest"
  | "deleteManifest"
  | "deleteBlob"
  | "startUpload"
  | "appendUpload"
  | "uploadStatus"
  | "finishUpload"
  | "cancelUpload"
  | "tags"
  | "catalog"
  | "referrers"
> & {
  blob(repo: string, digest: string, head?: boolean): BlobFile | BlobStream | Promise<BlobFile | BlobStream>;
};

/** A {@link V2Registry} that forwards every operation to `registry`, with `overrides` in front. */
export function delegate(registry: V2Registry, overrides: Partial<V2Registry>): V2Registry {
  return {
    manifest: overrides.manifest ?? registry.manifest.bind(registry),
    putManifest: overrides.putManifest ?? registry.putManifest.bind(registry),
    deleteManifest: overrides.deleteManifest ?? registry.deleteManifest.bind(registry),
    deleteBlob: overrides.deleteBlob ?? registry.deleteBlob.bind(registry),
    startUpload: overrides.startUpload ?? registry.startUpload.bind(registry),
    appendUpload: overrides.appendUpload ?? registry.appendUpload.bind(registry),
    uploadStatus: overrides.uploadStatus ?? registry.uploadStatus.bind(registry),
    finishUpload: overrides.finishUpload ?? registry.finishUpload.bind(registry),
    cancelUpload: overrides.cancelUpload ?? registry.cancelUpload.bind(registry),
    tags: overrides.tags ?? registry.tags.bind(registry),
    catalog: overrides.catalog ?? registry.catalog.bind(registry),
    referrers: overrides.referrers ?? registry.referrers.bind(registry),
    blob: overrides.blob ?? registry.blob.bind(registry),
  };
}

