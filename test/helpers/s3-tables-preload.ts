/**
 * Preload for the `/v2` tables on the S3 backend (`scripts/test` runs them a second time with
 * `BERTH_TEST_STORAGE=s3 bun test --preload ./test/helpers/s3-tables-preload.ts ...`). It
 * starts the process's shared S3 peer (a Ceph cluster, or BERTH_S3_ENDPOINT) before the first
 * test, outside any test's timeout: a cluster that starts slowly on a loaded machine must not
 * be counted against the first table's 5 s (bun stops what a timed-out test spawned, which
 * would take the cluster down for every later test). A peer that cannot start ends the run
 * with its logs, so the run fails and says why.
 */
import { s3Peer } from "./ceph";

if (process.env.BERTH_TEST_STORAGE !== "s3") {
  throw new Error(`s3-tables-preload is for BERTH_TEST_STORAGE=s3 runs (it is "${process.env.BERTH_TEST_STORAGE ?? ""}")`);
}
await s3Peer();
