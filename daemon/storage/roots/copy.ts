/**
 * A blob mounted from a repository of another root: the bytes are copied through the target
 * root's one ingest path (storage/ingest.ts), so they are admitted whole by the target's
 * quota and free-space floor before any byte is written, hashed as written, flushed early and
 * committed only when they hash to the digest. Memory is bounded by one batch.
 */
import type { Digest } from "../../oci/digest";
import type { BlobBody, Storage } from "../api";
import { StorageError } from "../errors";

/** Bytes gathered before each write of the copy. */
const BATCH_BYTES = 1 << 20;

/** The stream of a blob body; undefined for a redirect (another process holds the bytes). */
function streamOf(body: BlobBody): ReadableStream<Uint8Array> | undefined {
  if (body.kind === "file") return body.file.stream() as ReadableStream<Uint8Array>;
  if (body.kind === "stream") return body.open();
  return undefined;
}

/**
 * Copies blob `digest` of `from` (in root `source`) into `repo` (in root `target`). False when
 * there is nothing to copy (gone meanwhile, only reachable by redirect, or the source's bytes
 * no longer hash to the digest); quota and free-space refusals are thrown (StorageError).
 */
export async function copyAcross(source: Storage, from: string, target: Storage, repo: string, digest: Digest): Promise<boolean> {
  const info = source.blobs.stat(from, digest);
  if (!info) return false;
  const stream = streamOf(source.blobs.open(from, digest));
  if (!stream) return false;
  await target.indexes.ensure(repo);
  const ingest = await target.blobs.ingest(repo, digest.algorithm, { expectedSize: info.size });
  const reader = stream.getReader();
  try {
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (value && value.byteLength > 0) {
        batch.push(value);
        batchBytes += value.byteLength;
      }
      if (batchBytes >= BATCH_BYTES || (done && batchBytes > 0)) {
        await ingest.write(batch);
        batch = [];
        batchBytes = 0;
      }
      if (done) break;
    }
    await ingest.commit(digest);
    return true;
  } catch (err) {
    await reader.cancel().catch(() => undefined);
    await ingest.cancel();
    if (err instanceof StorageError && err.fault === "digest-mismatch") return false;
    throw err;
  } finally {
    reader.releaseLock();
  }
}
