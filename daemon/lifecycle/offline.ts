/**
 * `berth gc` and `berth scrub`: one pass over every storage root (the main one and each
 * `[[storage.subpaths]]` root, root by root) without serving them. Run them
 * while the daemon is stopped (the daemon runs the same passes online by itself). `gc`
 * applies the retention policies first, then collects garbage; with `--dry-run` nothing is
 * changed (not even start-up recovery runs) and the output lists what a real pass removes.
 * Both take the root's lock first, so they refuse a root that a running daemon holds.
 */
import type { Config } from "../config/schema";
import type { Logger } from "../log";
import { Meta } from "../meta/meta";
import { lockRoot } from "../platform/rootlock";
import { openDatabase } from "../platform/sqlite";
import { Registry } from "../registry/registry";
import { realDisk } from "../platform/disk";
import { metaDbPath, type OpenedRoots, openRoots } from "../storage/roots/open";
import { RootLifecycles, RootMarks } from "../storage/roots/lifecycles";
import type { Excluded } from "./gc";
import type { LifecycleOptions } from "./lifecycle";
import { lifecycleOptions } from "./options";

/** Runs `gc` or `scrub` once over the configured root; prints to `out`; returns the exit code. */
export async function runOffline(config: Config, command: "gc" | "scrub", dryRun: boolean, log: Logger, out: (line: string) => void): Promise<number> {
  if (config.storage.backend === "s3") {
    out(`berth ${command} runs offline on the local backend only; with [storage] backend = "s3" the running daemon does (berth ${command} --registry URL)`);
    return 1;
  }
  if (realDisk.stat(config.storage.root)?.isDirectory !== true) {
    out(`${config.storage.root}: no such storage root`);
    return 1;
  }
  // A live daemon holds the root: refuse, even a dry run (it would read a tree being changed).
  // RootInUseError reaches the command line, which prints it and exits 1.
  return withOfflineRoots(config, dryRun, log, async ({ lifecycles: lc, options }) => {
    const verb = dryRun ? "would remove" : "removed";
    if (command === "scrub") {
      const r = await lc.scrub();
      for (const q of r.quarantined) out(`quarantined ${q.digest} (bytes hash to ${q.actual}) from ${q.repositories.join(", ") || "the pool"} -> ${q.file}`);
      out(`scrub: ${r.blobsChecked} blobs, ${r.bytesChecked} bytes checked, ${r.quarantined.length} quarantined`);
      return r.quarantined.length > 0 ? 3 : 0;
    }
    const retention = await lc.retention(dryRun || options.retention.dryRun);
    for (const t of retention.tags) out(`${verb} tag ${t.repo}:${t.tag} (${t.digest}) [retention]`);
    for (const m of retention.manifests) out(`${verb} manifest ${m.repo}@${m.digest} [retention]`);
    const excluded = new Map<string, Set<string>>();
    if (retention.dryRun) for (const m of retention.manifests) (excluded.get(m.repo) ?? excluded.set(m.repo, new Set()).get(m.repo)!).add(m.digest);
    const gc = await lc.gc(dryRun, excluded as Excluded);
    for (const m of gc.manifests) out(`${verb} manifest ${m.repo}@${m.digest} [gc]`);
    for (const b of gc.blobs) out(`${verb} blob ${b.repo}@${b.digest} (${b.size} bytes)`);
    for (const p of gc.pool) out(`${verb} pool entry ${p.digest} (${p.size} bytes)`);
    for (const r of gc.emptyRepositories) out(`${verb} empty repository ${r}`);
    if (gc.skipped.length > 0) out(`skipped (a manifest cannot be read): ${gc.skipped.join(", ")}`);
    for (const u of gc.unreadable) out(`kept every digest named by unparseable manifest ${u.repo}@${u.digest}: ${u.reason}`);
    const held = gc.heldBack;
    if (held.manifests + held.blobs + held.pool > 0) out(`held back by the grace period: ${held.manifests} manifests, ${held.blobs} blobs, ${held.pool} pool entries, ${held.bytes} bytes, collectable from ${held.earliest} (all by ${held.latest})`);
    out(`gc${dryRun ? " (dry run)" : ""}: ${gc.repositories} repositories, ${gc.manifests.length + retention.manifests.length} manifests, ${gc.blobs.length} blobs, ${gc.pool.length} pool entries, ${gc.bytesFreed} bytes ${dryRun ? "to free" : "freed"}`);
    return 0;
  });
}

/** The configured roots opened while the daemon is stopped (see {@link withOfflineRoots}). */
export interface OfflineRoots {
  store: OpenedRoots["storage"];
  registry: Registry;
  lifecycles: RootLifecycles;
  options: LifecycleOptions;
}

/**
 * Runs `fn` on every configured root (the main one and each `[[storage.subpaths]]` root)
 * opened as the daemon opens them, without serving: the main root's lock taken first (a
 * running daemon's refuses), start-up recovery (none on a dry run, whose derived index is
 * in memory), the registry reconciled, the lifecycles built; all released afterwards. The
 * store's upload admission reaches the lifecycles once they are built (late: they are built
 * over the store), so bytes written through it are admitted as they would be online.
 */
export async function withOfflineRoots<T>(config: Config, dryRun: boolean, log: Logger, fn: (roots: OfflineRoots) => Promise<T>): Promise<T> {
  const rootLock = await lockRoot(config.storage.root);
  let db: ReturnType<typeof openDatabase> | undefined;
  let roots: OpenedRoots | undefined;
  let lifecycles: RootLifecycles | undefined;
  try {
    roots = await openRoots(realDisk, config.storage.root, config.storage.subpaths, {
      base: { maxBlobBytes: config.storage.max_blob_bytes },
      manifestCacheBytes: config.storage.manifest_cache_bytes,
      dedupe: config.storage.dedupe,
      recover: !dryRun,
      admit: (index, repo, bytes) => lifecycles?.admit(index, repo, bytes) ?? Promise.resolve(),
    }, log);
    const store = roots.storage;
    db = openDatabase(dryRun ? ":memory:" : metaDbPath(config));
    const meta = new Meta(db);
    const options = lifecycleOptions(config);
    const marks = new RootMarks(roots.roots, store.router, db, options.gc.graceMs);
    const registry = new Registry(store, meta, { maxManifestBytes: config.storage.max_manifest_bytes, hooks: marks.hooks }, log);
    await registry.reconcileAll(roots.recovery.repositories);
    lifecycles = new RootLifecycles({ opened: roots.roots, router: store.router, marks, registry, meta, log, options });
    return await fn({ store, registry, lifecycles, options });
  } finally {
    roots?.storage.uploads.stop();
    db?.close();
    roots?.release();
    rootLock.release();
  }
}
