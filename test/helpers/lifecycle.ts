/**
 * An in-process registry with its storage lifecycle (GC, scrub, retention, quota), over a
 * temp root or a given Disk, for socketless tests. The lifecycle's periodic tasks are not
 * started: tests call the passes directly.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createV2Handler } from "../../daemon/http/v2";
import { Lifecycle, LifecycleMarks, type LifecycleOptions } from "../../daemon/lifecycle/lifecycle";
import { type Logger, silentLogger } from "../../daemon/log";
import { Meta } from "../../daemon/meta/meta";
import { UsageStats } from "../../daemon/meta/usage";
import { type Disk, realDisk } from "../../daemon/platform/disk";
import { openDatabase } from "../../daemon/platform/sqlite";
import { Registry } from "../../daemon/registry/registry";
import { Store } from "../../daemon/storage/store";
import { type TestRegistry, localProbes } from "./registry";

/** Lifecycle options for tests: no grace, nothing periodic, no quota. */
export function testLifecycleOptions(over: Partial<LifecycleOptions> = {}): LifecycleOptions {
  return {
    gc: { intervalMs: 0, graceMs: 0, untagged: false, orphanReferrers: true, emptyRepositories: true },
    scrubIntervalMs: 0,
    retention: { intervalMs: 0, dryRun: false, policies: [] },
    quota: { maxBytes: 0, minFree: { bytes: 0 }, prefixes: [], evictable: [], pinned: [] },
    statsFlushMs: 60_000,
    maxManifestBytes: 4 << 20,
    ...over,
  };
}

/** A registry with a lifecycle. */
export interface LifecycleRegistry extends TestRegistry {
  lifecycle: Lifecycle;
  meta: Meta;
}

/** Builds one; `options.root` reuses a root (then it is not removed on dispose). */
export async function createLifecycleRegistry(
  over: Partial<LifecycleOptions> = {},
  options: { root?: string; disk?: Disk; dbPath?: string; log?: Logger } = {},
): Promise<LifecycleRegistry> {
  const owned = options.root === undefined;
  const root = options.root ?? mkdtempSync(join(tmpdir(), "berth-lc-"));
  let lifecycle: Lifecycle | undefined;
  const store = new Store(options.disk ?? realDisk, {
    root,
    dedupe: true,
    maxBlobBytes: 0,
    manifestCacheBytes: 1 << 20,
    admit: (repo, bytes) => lifecycle?.admit(repo, bytes) ?? Promise.resolve(),
  }, silentLogger);
  const report = await store.recover();
  const db = openDatabase(options.dbPath ?? store.paths.metaDb);
  const meta = new Meta(db);
  const opts = testLifecycleOptions(over);
  const marks = new LifecycleMarks(opts.gc.graceMs, new UsageStats(db));
  const registry = new Registry(store, meta, { maxManifestBytes: opts.maxManifestBytes, hooks: marks.hooks }, silentLogger);
  await registry.reconcileAll(report.repositories);
  lifecycle = new Lifecycle({ store, registry, meta, marks, log: options.log ?? silentLogger, options: opts });
  const lc = lifecycle;
  const handle = createV2Handler(registry, { maxManifestBytes: opts.maxManifestBytes, log: silentLogger });
  let closed = false;
  const self: LifecycleRegistry = {
    root,
    ...localProbes(root),
    store,
    registry,
    lifecycle: lc,
    meta,
    handle,
    call(method, path, init = {}) {
      return handle(new Request(`http://registry.test${path}`, { method, headers: init.headers, body: init.body ?? null }));
    },
    async reopen() {
      await lc.close();
      db.close();
      closed = true;
      return createLifecycleRegistry(over, { ...options, root });
    },
    async [Symbol.asyncDispose]() {
      if (!closed) {
        await lc.close();
        db.close();
      }
      if (owned) rmSync(root, { recursive: true, force: true });
    },
  };
  return self;
}
