/**
 * The benchmark's comparison peer (scripts/distribution-s3.ts): Debian's docker-registry with
 * its S3 driver on the same Ceph cluster as the S3 client's tests. skopeo pushes a fixture
 * image through it and pulls it back byte-identical, and the blobs are found in the bucket, so
 * the later benchmark measures a working distribution-on-S3 and not a misconfigured one.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { S3Client } from "../../daemon/storage/s3/client";
import { type DistributionS3, startDistributionS3 } from "../../scripts/distribution-s3";
import { dropBucket, s3Peer } from "../helpers/ceph";
import { type Fixtures, Skopeo, buildFixtures, layoutBlobs, layoutTag, makeTemp } from "../helpers/clients";

let distribution: DistributionS3;
let fixtures: Fixtures;
let work: string;

beforeAll(async () => {
  work = makeTemp("berth-distribution-s3-test-");
  fixtures = await buildFixtures(join(work, "fixtures"));
  distribution = await startDistributionS3(await s3Peer());
}, 180_000);

afterAll(async () => {
  await distribution?.[Symbol.asyncDispose]();
  if (distribution) await dropBucket(new S3Client({ ...(await s3Peer()), bucket: distribution.bucket }));
  rmSync(work, { recursive: true, force: true });
});

test("skopeo pushes an image through distribution-on-S3 and pulls it back identical", async () => {
  using skopeo = new Skopeo();
  await skopeo.ok(["copy", "--dest-tls-verify=false", "--all", "--preserve-digests", `oci:${fixtures.multi}:v1`, `docker://${distribution.host}/bench/multi:v1`], { timeoutMs: 120_000 });
  const back = join(work, "back");
  await skopeo.ok(["copy", "--src-tls-verify=false", "--all", "--preserve-digests", `docker://${distribution.host}/bench/multi:v1`, `oci:${back}:v1`], { timeoutMs: 120_000 });
  expect(layoutTag(back, "v1").digest).toBe(layoutTag(fixtures.multi, "v1").digest);
  expect([...layoutBlobs(back).keys()].sort()).toEqual([...layoutBlobs(fixtures.multi).keys()].sort());
  const s3 = new S3Client({ ...(await s3Peer()), bucket: distribution.bucket });
  const keys: string[] = [];
  for await (const { object } of s3.listAll({ prefix: "registry/docker/registry/v2/blobs/" })) keys.push(object!.key);
  for (const digest of layoutBlobs(fixtures.multi).keys()) expect(keys).toContain(`registry/docker/registry/v2/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}/data`);
}, 180_000);
