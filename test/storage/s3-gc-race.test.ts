/**
 * GC and pushes in two berth "processes" on one bucket (two S3Storage + Registry + GC stacks
 * on the same prefix of the real Ceph cluster, or BERTH_S3_ENDPOINT), each race interleaved
 * deterministically with gates: a push held between its check and its index write while the
 * other process's GC runs whole; a GC held between its decision and its deletion while the
 * other process links the blob anew (into another repository, or the same one); a GC that
 * must wait for a push in flight; a repository dropped as empty under a push. Every push
 * that is acknowledged ends pullable, through both; one that is not gets a clean 400.
 * Then the protocol's failure paths (gclock.ts): a stale lease freed by a writer and taken
 * over by a collector, a crashed writer's intent ignored after its bound, a push answered 503
 * with Retry-After while a collector keeps the lease.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createV2Handler } from "../../daemon/http/v2";
import { GarbageCollector } from "../../daemon/lifecycle/gc";
import { silentLogger } from "../../daemon/log";
import { Meta } from "../../daemon/meta/meta";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";
import { openDatabase } from "../../daemon/platform/sqlite";
import { Registry } from "../../daemon/registry/registry";
import type { IndexTransaction } from "../../daemon/storage/api";
import { S3Client } from "../../daemon/storage/s3/client";
import type { GcLockOptions } from "../../daemon/storage/s3/gclock";
import { type S3Peer, dropBucket, s3Peer } from "../helpers/ceph";
import { imageManifest, sha256 } from "../helpers/registry";
import { type TestS3Storage, openTestS3Storage } from "../helpers/s3store";

// generous: a test that times out makes bun kill spawned processes, the shared Ceph cluster among them
setDefaultTimeout(60_000);

const bucket = `berth-gcr-${crypto.randomUUID().slice(0, 8)}`;
let peer: S3Peer;
const opened: { t: TestS3Storage; close(): void }[] = [];

beforeAll(async () => {
  peer = await s3Peer();
}, 180_000);

afterAll(async () => {
  for (const o of opened) o.close();
  if (peer) await dropBucket(new S3Client({ ...peer, bucket }));
}, 60_000);

const MAX_MANIFEST = 1 << 20;

/** One berth "process": storage, derived index, registry, its /v2 handler and its GC (no grace). */
async function proc(prefix: string, gcLock: GcLockOptions = {}, emptyRepositories = false) {
  const t = await openTestS3Storage(peer, { bucket, prefix, blobGraceMs: 0, gcLock }, silentLogger);
  const db = openDatabase(t.storage.metaDbPath);
  const meta = new Meta(db);
  const registry = new Registry(t.storage, meta, { maxManifestBytes: MAX_MANIFEST }, silentLogger);
  await registry.reconcileAll(await t.storage.repositories());
  const gc = new GarbageCollector({ store: t.storage, registry, meta, log: silentLogger }, { graceMs: 0, untagged: false, orphanReferrers: false, emptyRepositories, maxManifestBytes: MAX_MANIFEST });
  const v2 = createV2Handler(registry, { maxManifestBytes: MAX_MANIFEST, log: silentLogger });
  const call = (method: string, path: string, body?: string, headers: Record<string, string> = {}) => v2(new Request(`http://berth.test${path}`, { method, body: body ?? null, headers }));
  opened.push({
    t,
    close: () => {
      db.close();
      t.close();
    },
  });
  return { storage: t.storage, gc, call };
}
type Proc = Awaited<ReturnType<typeof proc>>;

async function pair(a: GcLockOptions = {}, b: GcLockOptions = {}, emptyRepositories = false): Promise<[Proc, Proc]> {
  const prefix = `g-${crypto.randomUUID().slice(0, 8)}`;
  return [await proc(prefix, a, emptyRepositories), await proc(prefix, b, emptyRepositories)];
}

/** A promise and its resolver. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Waits for `p`, failing clearly (not hanging) if it does not come within `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

const uploadBlob = (p: Proc, repo: string, blob: string) => p.call("POST", `/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, blob);
const putManifest = (p: Proc, repo: string, ref: string, body: string) => p.call("PUT", `/v2/${repo}/manifests/${ref}`, body, { "Content-Type": OCI_MANIFEST });

/** Every blob of an acknowledged image answers 200 with its bytes, through both processes. */
async function expectPullable(procs: Proc[], repo: string, ref: string, blobs: string[]): Promise<void> {
  for (const p of procs) {
    expect((await p.call("GET", `/v2/${repo}/manifests/${ref}`, undefined, { Accept: OCI_MANIFEST })).status).toBe(200);
    for (const blob of blobs) {
      const got = await p.call("GET", `/v2/${repo}/blobs/${sha256(blob)}`);
      expect(got.status).toBe(200);
      expect(await got.text()).toBe(blob);
    }
  }
}

/** Pushes blobs and a manifest tagged v1 through `p`, then deletes the manifest: the blobs stay linked, referenced by nothing. */
async function orphaned(p: Proc, repo: string, blobs: string[]): Promise<void> {
  for (const blob of blobs) expect((await uploadBlob(p, repo, blob)).status).toBe(201);
  const m = imageManifest(blobs[0]!, blobs.slice(1), { annotations: { orphaned: "yes" } });
  expect((await putManifest(p, repo, "v1", m)).status).toBe(201);
  expect((await p.call("DELETE", `/v2/${repo}/manifests/${sha256(m)}`)).status).toBe(202);
}

const unique = (what: string) => `${what} ${crypto.randomUUID()} `.repeat(20);

describe("GC in one process, pushes through the other", () => {
  test("a manifest push held between its check and its index write while the other process's GC removes its blobs is refused, never acknowledged broken", async () => {
    const [a, b] = await pair();
    const repo = "race/check";
    const config = unique("config");
    const layer = unique("layer");
    await orphaned(a, repo, [config, layer]);
    const reached = gate();
    const release = gate();
    const real = a.storage.indexes.transaction.bind(a.storage.indexes);
    a.storage.indexes.transaction = <T>(r: string, fn: (tx: IndexTransaction) => Promise<T>) =>
      real(r, (tx) => fn({ current: () => tx.current(), write: async (e) => (reached.open(), await release.promise, tx.write(e)) }));
    const pushing = putManifest(a, repo, "v2", imageManifest(config, [layer]));
    await within(reached.promise, 20_000, "the push reaching its index write");
    const report = await b.gc.run();
    expect(report.blobs.map((x) => x.digest)).toContain(sha256(layer));
    release.open();
    const res = await pushing;
    // the blobs went before the write: the push must not be acknowledged
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("MANIFEST_BLOB_UNKNOWN");
    for (const p of [a, b]) expect((await p.call("GET", `/v2/${repo}/manifests/v2`, undefined, { Accept: OCI_MANIFEST })).status).toBe(404);
  });

  test("a GC that decided on a blob carries the decision out after a push in flight that relies on it, and keeps it; the push is acknowledged and pullable", async () => {
    const reached = gate();
    const release = gate();
    let armed = false;
    const [a, b] = await pair({
      beforeGuardedWrite: async (what) => {
        if (!armed || !what.includes("the index of")) return;
        reached.open();
        await release.promise;
      },
    });
    const repo = "race/intent";
    const config = unique("config");
    const layer = unique("layer");
    await orphaned(a, repo, [config, layer]);
    armed = true;
    const pushing = putManifest(a, repo, "v2", imageManifest(config, [layer]));
    await within(reached.promise, 20_000, "the push reaching its guarded write");
    // B decides on the layer and starts carrying its decisions out, which waits for A's intent
    const settling = gate();
    let decided = false;
    const unlink = b.storage.sweep.unlink.bind(b.storage.sweep);
    const settle = b.storage.sweep.settle.bind(b.storage.sweep);
    b.storage.sweep.unlink = async (r, digest, basis) => ((decided ||= digest === sha256(layer)), unlink(r, digest, basis));
    b.storage.sweep.settle = async () => (decided && settling.open(), settle());
    const collecting = b.gc.run();
    await within(settling.promise, 20_000, "GC in B deciding on the layer");
    release.open();
    expect((await pushing).status).toBe(201);
    const report = await collecting;
    expect(report.blobs.map((x) => x.digest)).toContain(sha256(layer)); // decided on, then not carried out
    await expectPullable([a, b], repo, "v2", [config, layer]);
  });

  test("a blob the other process's GC decided to delete is uploaded into another repository and used there: it stays", async () => {
    const [a, b] = await pair();
    const layer = unique("layer");
    await orphaned(a, "race/old", [unique("config"), layer]);
    const reached = gate();
    const release = gate();
    const real = b.storage.sweep.unlinkStored.bind(b.storage.sweep);
    b.storage.sweep.unlinkStored = async (digest, basis) => {
      if (digest === sha256(layer)) {
        reached.open();
        await release.promise;
      }
      return real(digest, basis);
    };
    const collecting = b.gc.run();
    await within(reached.promise, 20_000, "GC deciding on the blob");
    const config = unique("config");
    for (const blob of [config, layer]) expect((await uploadBlob(a, "race/new", blob)).status).toBe(201);
    expect((await putManifest(a, "race/new", "v1", imageManifest(config, [layer]))).status).toBe(201);
    release.open();
    await collecting;
    await expectPullable([a, b], "race/new", "v1", [config, layer]);
  });

  test("a link the other process's GC decided to remove is written again by an upload: it stays, and a manifest using it later is pullable", async () => {
    const [a, b] = await pair();
    const repo = "race/relink";
    const layer = unique("layer");
    await orphaned(a, repo, [unique("config"), layer]);
    const reached = gate();
    const release = gate();
    const real = b.storage.sweep.unlink.bind(b.storage.sweep);
    b.storage.sweep.unlink = async (r, digest, basis) => {
      if (digest === sha256(layer)) {
        reached.open();
        await release.promise;
      }
      return real(r, digest, basis);
    };
    const collecting = b.gc.run();
    await within(reached.promise, 20_000, "GC deciding on the link");
    expect((await uploadBlob(a, repo, layer)).status).toBe(201);
    release.open();
    await collecting;
    const config = unique("config");
    expect((await uploadBlob(a, repo, config)).status).toBe(201);
    expect((await putManifest(a, repo, "v2", imageManifest(config, [layer]))).status).toBe(201);
    await expectPullable([a, b], repo, "v2", [config, layer]);
  });

  test("a repository the other process's GC drops as empty while a manifest push into it is under way: the push is refused cleanly (400), not a 500", async () => {
    const [a, b] = await pair({}, {}, true);
    const repo = "race/drop";
    const config = unique("config");
    const layer = unique("layer");
    for (const blob of [config, layer]) expect((await uploadBlob(a, repo, blob)).status).toBe(201);
    const reached = gate();
    const release = gate();
    const real = a.storage.indexes.transaction.bind(a.storage.indexes);
    a.storage.indexes.transaction = async <T>(r: string, fn: (tx: IndexTransaction) => Promise<T>) => (reached.open(), await release.promise, real(r, fn));
    const pushing = putManifest(a, repo, "v1", imageManifest(config, [layer]));
    await within(reached.promise, 20_000, "the push reaching its transaction");
    const report = await b.gc.run();
    expect(report.emptyRepositories).toContain(repo);
    release.open();
    const res = await pushing;
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("MANIFEST_BLOB_UNKNOWN");
  });
});

describe("the lease and intents when something is stuck or gone", () => {
  test("a stale lease of a crashed collector is freed by a waiting push and taken over by the next collector", async () => {
    const [a, b] = await pair({ leaseMs: 300 }, { leaseMs: 300 });
    const lease = a.storage.keys.gcLease;
    const crashed = (epoch: number) => a.storage.s3.put(lease, JSON.stringify({ holder: "crashed", held: true, epoch, n: 0 }));
    await crashed(41);
    const config = unique("config");
    const layer = unique("layer");
    for (const blob of [config, layer]) expect((await uploadBlob(a, "stale/push", blob)).status).toBe(201);
    expect((await putManifest(a, "stale/push", "v1", imageManifest(config, [layer]))).status).toBe(201);
    expect((await a.storage.gcLock.readLease()).doc).toMatchObject({ held: false, epoch: 41 });

    const garbage = unique("garbage");
    await orphaned(a, "stale/gc", [garbage]);
    await crashed(50);
    const report = await b.gc.run();
    expect(report.pool.map((x) => x.digest)).toContain(sha256(garbage));
    expect(await a.storage.s3.head(a.storage.keys.blob(sha256(garbage)))).toBeUndefined();
    const after = (await b.storage.gcLock.readLease()).doc;
    expect(after.held).toBe(false);
    expect(after.epoch).toBeGreaterThan(50);
    await expectPullable([a, b], "stale/push", "v1", [config, layer]);
  });

  test("a crashed writer's intent holds a collector only for its bound; it is then removed", async () => {
    const [a, b] = await pair({}, { intentMaxMs: 300 });
    const garbage = unique("garbage");
    await orphaned(a, "stale/intent", [garbage]);
    const intent = a.storage.keys.gcIntent("crashed-writer");
    await a.storage.s3.put(intent, "{}");
    await b.gc.run();
    expect(await a.storage.s3.head(a.storage.keys.blob(sha256(garbage)))).toBeUndefined();
    expect(await a.storage.s3.head(intent)).toBeUndefined();
  });

  test("a push while another process's collector keeps the lease is answered 503 with Retry-After, and goes through once it is released", async () => {
    const [a, b] = await pair({ waitMs: 300 });
    const config = unique("config");
    const layer = unique("layer");
    for (const blob of [config, layer]) expect((await uploadBlob(a, "busy/r", blob)).status).toBe(201);
    const holding = gate();
    const release = gate();
    const held = b.storage.gcLock.exclusive(async () => {
      holding.open();
      await release.promise;
    });
    await within(holding.promise, 20_000, "B taking the lease");
    const manifest = imageManifest(config, [layer]);
    const refused = await putManifest(a, "busy/r", "v1", manifest);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBeTruthy();
    expect(((await refused.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("UNAVAILABLE");
    release.open();
    await held;
    expect((await putManifest(a, "busy/r", "v1", manifest)).status).toBe(201);
    await expectPullable([a, b], "busy/r", "v1", [config, layer]);
  });
});
