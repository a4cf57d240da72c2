/**
 * Opening the storage roots at start-up: the main root (`[storage] root`, locked by the
 * caller, created when missing as before) and each `[[storage.subpaths]]` root, which berth
 * never creates (a missing directory is usually a disk that is not mounted, and writing to
 * the mount point would fill the system disk instead). A subpath root that is missing, not a
 * directory, or not writable (a read-only mount) stops the start with a ConfigError naming it;
 * with `required = false` it is logged and its prefix answers 503 until berth is restarted
 * (nothing polls the disk meanwhile: an appliance restarts berth when it mounts a disk, and a
 * root that came and went under a running process would leave its GC and quota figures lying).
 *
 * Each available root gets its own lock (platform/rootlock.ts: one process per root), its own
 * {@link Store} (pool, uploads, quarantine, reserve) and its own start-up recovery.
 */
import { accessSync, constants, mkdirSync, realpathSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../../config/schema";
import type { Logger } from "../../log";
import { ConfigError } from "../../config/load";
import type { SubpathConfig } from "../../config/subpaths";
import type { Disk } from "../../platform/disk";
import { lockRoot, type RootLock } from "../../platform/rootlock";
import { type RecoveryReport, Store, type StoreOptions } from "../store";
import type { Storage } from "../api";
import { CompositeStorage } from "./composite";

/**
 * Where meta.db lives: in `[storage] state_dir` (made when missing), else in the main root's
 * `.berth` as before subpaths existed. Never inside a subpath root: it indexes every root, and
 * is rebuilt from them when lost.
 */
export function metaDbPath(config: Config): string {
  if (!config.storage.state_dir) return join(config.storage.root, ".berth", "meta.db");
  mkdirSync(config.storage.state_dir, { recursive: true });
  return join(config.storage.state_dir, "meta.db");
}

/** A problem with `dir` as an existing, writable root directory, or undefined. */
export function rootProblem(dir: string): string | undefined {
  try {
    if (!statSync(dir).isDirectory()) return `"${dir}" is not a directory`;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? `"${dir}" does not exist (is its disk mounted?); berth does not create a subpath root` : `"${dir}" cannot be read (${code})`;
  }
  try {
    accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "EROFS" ? `"${dir}" is on a read-only file system` : `"${dir}" is not writable by berth (${code})`;
  }
  return undefined;
}

/** One root as opened. */
export interface OpenedRoot {
  /** "" for the main root. */
  prefix: string;
  dir: string;
  /** Its table; undefined for the main root. */
  subpath: SubpathConfig | undefined;
  /** Undefined while unavailable. */
  store: Storage | undefined;
  /** Why it is unavailable. */
  problem?: string;
}

/** What {@link openRoots} opened. */
export interface OpenedRoots {
  storage: CompositeStorage;
  roots: OpenedRoot[];
  /** The roots' recovery, summed; repositories are the composite's (routed, in order). */
  recovery: RecoveryReport;
  /** Releases the subpath roots' locks (the main root's lock is the caller's). */
  release(): void;
  /**
   * With `deferSweep`: what recovery left for after listening, the temp-file sweep of every
   * local root and the check for shadowed repositories; `pace` is awaited before each
   * directory read. Resolves to the temp files removed and every repository served (the
   * composite's list, found by the same walk). Without it: nothing left to do.
   */
  sweep(pace?: (ops: number) => Promise<void>): Promise<{ tempFilesRemoved: number; repositories: string[] }>;
}

/** Per-root options of {@link openRoots}. */
export interface RootStoreOptions {
  /** Store options shared by every root (the manifest cache is the composite's). */
  base: Omit<StoreOptions, "root" | "dedupe" | "admit" | "manifestCacheBytes">;
  manifestCacheBytes: number;
  dedupe: boolean;
  /** Start-up recovery of each root (default true; a dry run reads only). */
  recover?: boolean;
  /**
   * Recovers only what the first request needs before returning (directories, upload
   * leftovers, the reserve) and leaves the walk of every layout (temp files, shadowed
   * repositories) to {@link OpenedRoots.sweep}; `recovery.repositories` is then empty.
   * The daemon does this to listen before walking a large store.
   */
  deferSweep?: boolean;
  /** Admission for root `index` (0 = main). */
  admit?: (index: number, repo: string, bytes: number) => Promise<void>;
  /**
   * Opens the main root's storage itself (the S3 backend: `[storage] backend = "s3"`, whose
   * bucket is the main root and whose `[storage] root` is only its local cache); default: a
   * local {@link Store} on `mainRoot`.
   */
  main?: () => Promise<{ store: Storage; recovery: RecoveryReport }>;
}

/**
 * Opens `mainRoot` and the subpath roots; throws ConfigError for a required root that is
 * unusable and RootInUseError for one another process holds (releasing what it took).
 */
export async function openRoots(disk: Disk, mainRoot: string, subpaths: readonly SubpathConfig[], options: RootStoreOptions, log: Logger): Promise<OpenedRoots> {
  const locks: RootLock[] = [];
  const release = () => {
    for (const l of locks.splice(0)) l.release();
  };
  const roots: OpenedRoot[] = [{ prefix: "", dir: mainRoot, subpath: undefined, store: undefined }];
  try {
    const real = new Map<string, string>([[realpathSync(mainRoot), "storage.root"]]);
    for (const [i, sp] of subpaths.entries()) {
      const key = `storage.subpaths[${i}].root`;
      let problem = rootProblem(sp.root);
      if (!problem) {
        // the same directory under two names (a symlink) would be two pools and two walks of one tree
        const rp = realpathSync(sp.root);
        const other = real.get(rp);
        if (other) throw new ConfigError(key, [`"${sp.root}" is the same directory as ${other} ("${rp}"); each root needs its own directory`]);
        real.set(rp, key);
      }
      if (problem && sp.required) throw new ConfigError(key, [`storage root for "${sp.prefix}": ${problem}`]);
      if (problem) {
        log.error(`storage root for "${sp.prefix}" is unavailable: its repositories answer 503 until berth is restarted`, { key, root: sp.root, problem });
        roots.push({ prefix: sp.prefix, dir: sp.root, subpath: sp, store: undefined, problem });
        continue;
      }
      locks.push(await lockRoot(sp.root));
      roots.push({ prefix: sp.prefix, dir: sp.root, subpath: sp, store: undefined });
    }
    let uploadsRemoved = 0;
    let tempFilesRemoved = 0;
    const local = new Map<number, Store>();
    for (const [i, r] of roots.entries()) {
      if (r.problem) continue;
      if (i === 0 && options.main) {
        const opened = await options.main();
        r.store = opened.store;
        uploadsRemoved += opened.recovery.uploadsRemoved;
        tempFilesRemoved += opened.recovery.tempFilesRemoved;
        continue;
      }
      const admit = options.admit;
      const store = new Store(disk, {
        ...options.base,
        root: r.dir,
        dedupe: r.subpath?.dedupe ?? options.dedupe,
        // one manifest cache, the composite's; a root's own is not read
        manifestCacheBytes: 0,
        ...(admit ? { admit: (repo: string, bytes: number) => admit(i, repo, bytes) } : {}),
      }, log);
      r.store = store;
      if (options.recover === false) continue;
      if (options.deferSweep) {
        uploadsRemoved += await store.prepare();
        local.set(i, store);
        continue;
      }
      const rec = await store.recover();
      uploadsRemoved += rec.uploadsRemoved;
      tempFilesRemoved += rec.tempFilesRemoved;
    }
    const limits = options.base.uploadLimits;
    const storage = new CompositeStorage(roots.map((r) => ({ prefix: r.prefix, storage: r.store })), options.manifestCacheBytes, limits && { maxSessions: limits.maxSessions, maxPerClient: limits.maxPerClient });
    const warnShadowed = (prefix: string, repositories: string[]) => {
      log.warn("repositories in a storage root that another root's prefix now claims are not served (move them, or change [[storage.subpaths]])", { rootPrefix: prefix, repositories: repositories.slice(0, 20), count: repositories.length });
    };
    if (options.deferSweep) {
      // one walk per root, after listening: temp files, the repositories served, the shadowed ones
      const sweep = async (pace?: (ops: number) => Promise<void>) => {
        let removed = 0;
        const served: string[] = [];
        for (const [i, r] of roots.entries()) {
          if (!r.store) continue;
          const own = local.get(i);
          const found = own ? await own.sweepTemps(pace) : { repositories: await r.store.repositories(), tempFilesRemoved: 0 };
          removed += found.tempFilesRemoved;
          const shadowed: string[] = [];
          for (const name of found.repositories) (storage.router.route(name) === i ? served : shadowed).push(name);
          if (shadowed.length > 0) warnShadowed(r.prefix, shadowed);
        }
        return { tempFilesRemoved: removed, repositories: served.sort() };
      };
      return { storage, roots, recovery: { repositories: [], uploadsRemoved, tempFilesRemoved }, release, sweep };
    }
    for (const s of await storage.shadowed()) warnShadowed(s.prefix, s.repositories);
    return { storage, roots, recovery: { repositories: await storage.repositories(), uploadsRemoved, tempFilesRemoved }, release, sweep: async () => ({ tempFilesRemoved: 0, repositories: [] }) };
  } catch (err) {
    for (const r of roots) r.store?.uploads.stop();
    release();
    throw err;
  }
}
