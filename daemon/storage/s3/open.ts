/**
 * Opens the S3 backend from the daemon's configuration (`[storage] backend = "s3"` and
 * `[storage.s3]`): the credentials are read from their secret file, the local cache (meta.db) is
 * `[storage] root`. Loaded by main only when the backend is S3.
 */
import { ConfigError } from "../../config/load";
import { readS3Credentials } from "../../config/s3";
import type { Config } from "../../config/schema";
import type { Logger } from "../../log";
import type { RecoveryReport, StoreOptions } from "../store";
import { S3Storage } from "./backend";

/** The opened store and the repositories found in the bucket. */
export async function openS3FromConfig(config: Config, common: Omit<StoreOptions, "dedupe">, log: Logger): Promise<{ store: S3Storage; recovery: RecoveryReport }> {
  const c = config.storage.s3;
  if (!c) throw new ConfigError("storage.backend", ['storage.backend: "s3" needs a [storage.s3] table (endpoint, bucket, credentials_file)']);
  let credentials;
  try {
    credentials = readS3Credentials(c.credentials_file);
  } catch (err) {
    throw new ConfigError("storage.s3.credentials_file", [(err as Error).message]);
  }
  const store = new S3Storage({
    client: { endpoint: c.endpoint, bucket: c.bucket, region: c.region, ...credentials },
    prefix: c.prefix,
    cacheRoot: common.root,
    partSize: c.part_size,
    uploadMemory: c.upload_memory,
    redirectSeconds: c.redirect ? c.redirect_expiry : 0,
    publicEndpoint: c.public_endpoint || undefined,
    blobGraceMs: c.blob_grace * 1000,
    maxBlobBytes: common.maxBlobBytes,
    manifestCacheBytes: common.manifestCacheBytes,
    onIngress: common.onIngress,
    hashing: common.hashing,
    admit: common.admit,
    uploadLimits: common.uploadLimits,
  }, log);
  let recovery;
  try {
    recovery = await store.open();
  } catch (err) {
    // a start-up that cannot reach or read the bucket stops with what to check, not a stack trace
    store.uploads.stop();
    throw new ConfigError("storage.s3", [`bucket "${c.bucket}" at ${c.endpoint} cannot be opened (it must exist and the credentials may read and write it): ${(err as Error).message}`]);
  }
  log.info("storage: S3 bucket opened", { endpoint: c.endpoint, bucket: c.bucket, prefix: c.prefix, repositories: recovery.repositories.length });
  return { store, recovery };
}
