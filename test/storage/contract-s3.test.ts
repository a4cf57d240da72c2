/**
 * The storage contract (contract.ts) run against the S3 backend (daemon/storage/s3/backend.ts)
 * on the test helper's real Ceph cluster (or BERTH_S3_ENDPOINT): every behaviour the local
 * backend shows, except the power-cut cases (an acknowledged S3 write is durable on the
 * cluster; there is no local power cut to model). Each test gets a fresh prefix in one bucket
 * of this file's, so the prefix handling is exercised too; the bucket is dropped at the end.
 */
import { afterAll, beforeAll, setDefaultTimeout } from "bun:test";
import { silentLogger } from "../../daemon/log";
import { S3Client } from "../../daemon/storage/s3/client";
import { dropBucket, s3Peer } from "../helpers/ceph";
import { openTestS3Storage } from "../helpers/s3store";
import { storageContract } from "./contract";

// generous: a test that times out makes bun kill spawned processes, the shared Ceph cluster among them
setDefaultTimeout(60_000);

const bucket = `berth-contract-${crypto.randomUUID().slice(0, 8)}`;
let made = false;

beforeAll(async () => void (await s3Peer()), 180_000);

afterAll(async () => {
  if (made) await dropBucket(new S3Client({ ...(await s3Peer()), bucket }));
}, 60_000);

storageContract("S3 on Ceph", async ({ admit }) => {
  const peer = await s3Peer();
  made = true;
  const t = await openTestS3Storage(peer, { bucket, prefix: `p-${crypto.randomUUID().slice(0, 8)}`, admit }, silentLogger);
  return {
    storage: t.storage,
    async corrupt(digest, bytes) {
      // the same key, other bytes: what bit rot in the cluster would look like to a reader
      await t.storage.s3.put(t.storage.keys.blob(digest.value), bytes);
    },
    async [Symbol.asyncDispose]() {
      t.close();
    },
  };
}, { readableBodies: true, powerCut: false });
