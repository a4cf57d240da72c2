/**
 * Streams a body of unknown length into one S3 object with bounded memory: the stream is cut
 * into parts of `partSize` bytes (5 MiB to 5 GiB, default 8 MiB), at most `concurrency` parts
 * are in flight and one more is being filled, so memory stays under (concurrency + 1) ×
 * partSize whatever the body's size. A body that ends within the first part is written with
 * one plain PUT instead (no multipart bookkeeping for small blobs). On any failure, or when
 * `signal` aborts, the upload is aborted on the server so no parts are left behind, and the
 * error is rethrown. Parts are held as bytes, so the client's retries can resend them.
 */
import type { PutOptions, S3Client } from "./client";

/** Tuning for {@link uploadStream}. */
export interface UploadStreamOptions extends Pick<PutOptions, "contentType" | "metadata" | "signal"> {
  /** Bytes per part (default 8 MiB; S3 wants 5 MiB to 5 GiB for all but the last). */
  partSize?: number;
  /** Parts uploaded at once (default 2). */
  concurrency?: number;
}

/** What {@link uploadStream} wrote. */
export interface UploadStreamResult {
  /** Unquoted; may be empty for a multipart object on RGW. */
  etag: string;
  size: number;
  /** Parts used (0 when the body went in one PUT). */
  parts: number;
}

const MIN_PART = 5 * 1024 * 1024;
const MAX_PART = 5 * 1024 * 1024 * 1024;
const MAX_PARTS = 10_000;

/** Writes `body` to `key`, in parts when it is larger than one part. */
export async function uploadStream(client: S3Client, key: string, body: ReadableStream<Uint8Array>, options: UploadStreamOptions = {}): Promise<UploadStreamResult> {
  const partSize = options.partSize ?? 8 * 1024 * 1024;
  const concurrency = Math.max(1, options.concurrency ?? 2);
  if (!Number.isInteger(partSize) || partSize < MIN_PART || partSize > MAX_PART) throw new RangeError(`Part size "${partSize}" is outside S3's 5 MiB to 5 GiB`);
  const reader = body.getReader();
  let buffer: Uint8Array = new Uint8Array(partSize);
  let filled = 0;
  let done = false;
  /** Fills `buffer` up to partSize or the end of the stream; a chunk may straddle parts. */
  let carry: Uint8Array | undefined;
  const fill = async () => {
    while (filled < partSize) {
      let chunk = carry;
      carry = undefined;
      if (!chunk) {
        const r = await reader.read();
        if (r.done) {
          done = true;
          return;
        }
        chunk = r.value;
      }
      const take = Math.min(chunk.byteLength, partSize - filled);
      buffer.set(chunk.subarray(0, take), filled);
      filled += take;
      if (take < chunk.byteLength) carry = chunk.subarray(take);
    }
  };
  const meta = { contentType: options.contentType, metadata: options.metadata };
  try {
    await fill();
    if (done) {
      const { etag } = await client.put(key, buffer.subarray(0, filled), { ...meta, signal: options.signal });
      return { etag, size: filled, parts: 0 };
    }
  } catch (e) {
    await reader.cancel().catch(() => {});
    throw e;
  }
  const uploadId = await client.createMultipart(key, meta);
  const parts: { partNumber: number; etag: string }[] = [];
  // Buffers come back here once their part is sent (or failed for good), so a long upload
  // reuses concurrency + 1 buffers instead of leaving one per part for the collector.
  const spare: Uint8Array[] = [];
  const inFlight = new Set<Promise<void>>();
  let size = 0;
  let failure: unknown;
  try {
    for (let partNumber = 1; ; partNumber++) {
      if (partNumber > MAX_PARTS) throw new RangeError(`Body needs more than ${MAX_PARTS} parts of ${partSize} bytes`);
      const owned = buffer;
      size += filled;
      const p: Promise<void> = client
        .uploadPart(key, uploadId, partNumber, owned.subarray(0, filled), options.signal)
        .then((etag) => void parts.push({ partNumber, etag }))
        .catch((e) => void (failure ??= e))
        .finally(() => {
          inFlight.delete(p);
          spare.push(owned);
        });
      inFlight.add(p);
      if (done) break;
      while (inFlight.size >= concurrency) await Promise.race(inFlight);
      if (failure) throw failure;
      buffer = spare.pop() ?? new Uint8Array(partSize);
      filled = 0;
      await fill();
      if (filled === 0) break;
    }
    await Promise.all(inFlight);
    if (failure) throw failure;
    parts.sort((a, b) => a.partNumber - b.partNumber);
    const { etag } = await client.completeMultipart(key, uploadId, parts);
    return { etag, size, parts: parts.length };
  } catch (e) {
    await reader.cancel().catch(() => {});
    await Promise.allSettled(inFlight);
    await client.abortMultipart(key, uploadId).catch(() => {});
    throw e;
  }
}

/** S3's limit for one CopyObject; larger objects are copied in ranges (UploadPartCopy). */
export const MAX_SINGLE_COPY = 5 * 1024 * 1024 * 1024;

/** Tuning for {@link copyObject} (tests lower the limits to exercise the ranged copy). */
export interface CopyOptions {
  /** Largest object copied with one CopyObject (default and most: 5 GiB). */
  maxSingle?: number;
  /** Bytes per copied range (default: 1 GiB, or more so that 10,000 ranges cover the object). */
  rangeSize?: number;
}

/**
 * Copies object `from` (of `size` bytes) to `to` on the server: one CopyObject up to
 * `maxSingle`, else a multipart upload of UploadPartCopy ranges (aborted on failure). No
 * byte passes through berth either way.
 */
export async function copyObject(client: S3Client, from: string, to: string, size: number, options: CopyOptions = {}): Promise<void> {
  if (size <= (options.maxSingle ?? MAX_SINGLE_COPY)) {
    await client.copy(from, to);
    return;
  }
  const rangeSize = Math.max(options.rangeSize ?? 1024 * 1024 * 1024, MIN_PART, Math.ceil(size / MAX_PARTS));
  const uploadId = await client.createMultipart(to);
  try {
    const parts: { partNumber: number; etag: string }[] = [];
    for (let start = 0, partNumber = 1; start < size; start += rangeSize, partNumber++) {
      const end = Math.min(size, start + rangeSize) - 1;
      parts.push({ partNumber, etag: await client.uploadPartCopy(to, uploadId, partNumber, from, { start, end }) });
    }
    await client.completeMultipart(to, uploadId, parts);
  } catch (e) {
    await client.abortMultipart(to, uploadId).catch(() => {});
    throw e;
  }
}
