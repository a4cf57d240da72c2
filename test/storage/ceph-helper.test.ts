/**
 * The Ceph test peer itself (test/helpers/ceph.ts): a private cluster answers S3 with its
 * user's keys, its daemons are the PIDs it reports, and disposing it leaves no process and no
 * directory behind; a cluster that cannot start fails with the daemons' log tails, not a skip.
 */
import { expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { S3Client } from "../../daemon/storage/s3/client";
import { startCephCluster } from "../helpers/ceph";

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test("a private cluster serves S3 and is gone, processes and files, after dispose", async () => {
  let dir = "";
  let pids: number[] = [];
  {
    await using cluster = await startCephCluster({ deviceBytes: 256 * 1024 * 1024 });
    dir = cluster.dir;
    pids = Object.values(cluster.pids());
    expect(pids.length).toBe(4);
    expect(pids.every(alive)).toBe(true);
    const s3 = new S3Client({ ...cluster, bucket: "helper" });
    await s3.createBucket();
    await s3.put("k", "v");
    expect(await new Response((await s3.get("k")).body).text()).toBe("v");
  }
  expect(pids.filter(alive)).toEqual([]);
  expect(existsSync(dir)).toBe(false);
}, 120_000);

test("a cluster that cannot start fails with the daemons' log tails", async () => {
  // A port in use for radosgw's beast frontend: radosgw exits and the start must say so.
  const busy = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("not rgw", { status: 500 }) });
  try {
    const err = await startCephCluster({ rgwPort: busy.port, waitMs: 60_000 }).then(
      async (c) => {
        await c[Symbol.asyncDispose]();
        return new Error("the cluster started on a port in use");
      },
      (e: Error) => e,
    );
    expect(err.message).toMatch(/^Ceph cluster did not start: /);
    expect(err.message).toContain("--- client.rgw.gw ---");
    expect(err.message).toContain("--- mon.a ---");
  } finally {
    busy.stop(true);
  }
}, 120_000);
