/**
 * Opens berth's S3 storage (daemon/storage/s3/backend.ts) on a test S3 peer: a bucket
 * (created if needed), a key prefix, and a fresh local cache directory the caller removes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "../../daemon/log";
import { S3Storage, type S3StorageOptions } from "../../daemon/storage/s3/backend";
import type { S3Peer } from "./ceph";

/** An opened test store and its cache directory. */
export interface TestS3Storage {
  storage: S3Storage;
  cacheRoot: string;
  /** Stops the store's upload timers and removes its cache directory (the bucket stays). */
  close(): void;
}

/** Opens the store on `peer` in `bucket` under `prefix` (extra options as given). */
export async function openTestS3Storage(
  peer: S3Peer,
  o: { bucket: string; prefix?: string; cacheRoot?: string } & Partial<Omit<S3StorageOptions, "client" | "cacheRoot" | "prefix">>,
  log: Logger,
): Promise<TestS3Storage> {
  const cacheRoot = o.cacheRoot ?? mkdtempSync(join(tmpdir(), "berth-s3-cache-"));
  const { bucket, prefix, ...rest } = o;
  const storage = new S3Storage({
    client: { endpoint: peer.endpoint, accessKey: peer.accessKey, secretKey: peer.secretKey, region: peer.region, bucket },
    prefix: prefix ?? "",
    cacheRoot,
    maxBlobBytes: 0,
    manifestCacheBytes: 1 << 20,
    ...rest,
  }, log);
  await storage.s3.createBucket();
  await storage.open();
  return {
    storage,
    cacheRoot,
    close() {
      storage.uploads.stop();
      rmSync(cacheRoot, { recursive: true, force: true });
    },
  };
}
