/**
 * Deterministic test bodies for the S3 tests, and (run as a process of its own) the memory
 * measurement of a streamed multipart upload and a streamed read, so the figures are not
 * blurred by other tests' garbage in the shared test process. Run with one JSON argument
 * ({endpoint, accessKey, secretKey, region, bucket, key, total, partSize}); prints JSON with
 * the RSS growth in MiB of the upload and of the read, the parts used and both SHA-256s.
 */
import { createHash } from "node:crypto";
import { S3Client } from "../../daemon/storage/s3/client";
import { uploadStream } from "../../daemon/storage/s3/multipart";

const MiB = 1024 * 1024;
const PERIOD = MiB + 13; // not a divisor of any part size, so parts differ
const SOURCE = Uint8Array.from({ length: PERIOD + MiB }, (_, i) => ((i % PERIOD) * 31 + ((i % PERIOD) >>> 7)) & 0xff);

/** Byte `i` of a {@link pattern} stream. */
export const byteAt = (i: number): number => SOURCE[i % PERIOD]!;

/**
 * Deterministic bytes in 1 MiB chunks that are views of one shared source, so producing them
 * allocates nothing and RSS shows what the consumer keeps; errors after `failAfter` bytes.
 */
export function pattern(total: number, failAfter?: number): { stream: ReadableStream<Uint8Array>; sha256: string } {
  const view = (off: number) => SOURCE.subarray(off % PERIOD, (off % PERIOD) + Math.min(MiB, total - off));
  const h = createHash("sha256");
  for (let off = 0; off < total; off += MiB) h.update(view(off));
  let off = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (failAfter !== undefined && off >= failAfter) return ctl.error(new Error("Source broke off"));
      if (off >= total) return ctl.close();
      ctl.enqueue(view(off));
      off += MiB;
    },
  });
  return { stream, sha256: h.digest("hex") };
}

/** Peak RSS growth in bytes while `work` runs, sampled every 5 ms from a collected start. */
async function peakGrowth<T>(work: () => Promise<T>): Promise<[T, number]> {
  Bun.gc(true);
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  try {
    const result = await work();
    return [result, Math.max(peak, process.memoryUsage().rss) - before];
  } finally {
    clearInterval(sampler);
  }
}

if (import.meta.main) {
  const a = JSON.parse(process.argv[2]!) as { endpoint: string; accessKey: string; secretKey: string; region: string; bucket: string; key: string; total: number; partSize: number };
  const s3 = new S3Client(a);
  const { stream, sha256 } = pattern(a.total);
  const [up, upBytes] = await peakGrowth(() => uploadStream(s3, a.key, stream, { partSize: a.partSize, concurrency: 2 }));
  const [readSha256, downBytes] = await peakGrowth(async () => {
    const h = createHash("sha256");
    for await (const chunk of (await s3.get(a.key)).body as unknown as AsyncIterable<Uint8Array>) h.update(chunk);
    return h.digest("hex");
  });
  console.log(JSON.stringify({ size: up.size, parts: up.parts, upMiB: upBytes / MiB, downMiB: downBytes / MiB, sha256, readSha256 }));
}
