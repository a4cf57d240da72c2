/**
 * Imports into the registry in this process: the admin API's `POST /api/v1/bundle/import`
 * (a bundle on the device, run as a task) and `berth bundle import FILE --config FILE`
 * (offline, on a stopped daemon's root, under the root lock). Bytes enter through the one
 * ingest path (`BlobStore.ingest`: hashed, admitted against quota and free space, flushed
 * early, committed under the digest or cancelled) and manifests through
 * `Registry.putManifest` (references checked, the tag written by compare-and-swap), exactly
 * as a push would. In the daemon every chunk first waits for the scheduler's IO budget
 * (read from the bundle, write to the store) as background work, so an import never starves
 * clients pulling their workloads.
 */
import { ClientError, EXIT } from "../client/errors";
import type { Config } from "../config/schema";
import type { Logger } from "../log";
import { parseDigest } from "../oci/digest";
import { RegistryError } from "../oci/errors";
import { Registry } from "../registry/registry";
import type { BackgroundIo } from "../scheduler/task";
import type { Storage } from "../storage/api";
import { StorageError } from "../storage/errors";
import { realDisk } from "../platform/disk";
import { withOfflineRoots } from "../lifecycle/offline";
import { importBundle, type ImportOptions, type ImportReport, type ImportTarget } from "./import";

/** Bytes handed to one ingest write (a few chunks of the bundle). */
const BATCH = 1 << 20;

/** Options of {@link localTarget}. */
export interface LocalTargetOptions {
  /** The IO budget every chunk waits for (the daemon's scheduler); none offline. */
  io?: BackgroundIo;
  signal?: AbortSignal;
  /** Push rights of the caller on a repository (default: every repository). */
  mayPush?: (repo: string) => boolean;
}

/** Registry and storage errors as the client's errors (their message, exit 1). */
function translated<T>(what: string, work: () => Promise<T>): Promise<T> {
  return work().catch((err) => {
    if (err instanceof RegistryError || err instanceof StorageError) throw new ClientError(`${what}: ${err.message}`, EXIT.error);
    throw err;
  });
}

/** The import target of a registry and storage in this process. */
export function localTarget(registry: Registry, storage: Storage, options: LocalTargetOptions = {}): ImportTarget {
  const index = (repo: string) => storage.indexes.index(repo);
  return {
    tagged: async (repo, tag) => (await index(repo))?.tags.get(tag)?.digest,
    hasManifest: async (repo, digest) => (await index(repo))?.manifests.has(digest) ?? false,
    hasBlob: async (repo, digest) => registry.hasBlob(repo, digest),
    async mayPush(repo) {
      if (options.mayPush && !options.mayPush(repo)) throw new ClientError(`the bundle holds ${repo}, to which the caller may not push`, EXIT.denied);
    },
    putBlob(repo, digestText, size, chunks) {
      return translated(`storing blob ${digestText} in ${repo}`, async () => {
        const digest = parseDigest(digestText);
        if (!digest) throw new ClientError(`"${digestText}" in the bundle is not a supported digest`, EXIT.error);
        const ingest = await storage.blobs.ingest(repo, digest.algorithm, { expectedSize: size, inlineHash: true });
        try {
          let batch: Uint8Array[] = [];
          let bytes = 0;
          const flush = async () => {
            if (bytes === 0) return;
            await options.io?.write(bytes, options.signal);
            await ingest.write(batch);
            batch = [];
            bytes = 0;
          };
          for await (const chunk of chunks) {
            options.signal?.throwIfAborted();
            await options.io?.read(chunk.length, options.signal);
            batch.push(chunk);
            bytes += chunk.length;
            if (bytes >= BATCH) await flush();
          }
          await flush();
          await ingest.commit(digest);
        } catch (err) {
          await ingest.cancel();
          throw err;
        }
      });
    },
    putManifest(repo, reference, mediaType, bytes) {
      return translated(`storing manifest ${repo}:${reference}`, async () => void (await registry.putManifest(repo, reference, bytes, mediaType)));
    },
  };
}

/**
 * `berth bundle import FILE --config FILE`: imports into the configured roots (the main one
 * and every `[[storage.subpaths]]` root, each locked) while the daemon is stopped (its lock
 * refuses a root a daemon holds), after the same start-up recovery the daemon runs; each
 * root's quota and min_free admit the bytes as they would online.
 */
export async function importOffline(config: Config, file: string, options: ImportOptions, log: Logger): Promise<ImportReport> {
  if (realDisk.stat(config.storage.root)?.isDirectory !== true) throw new ClientError(`${config.storage.root}: no such storage root`, EXIT.error);
  // the lock refuses a root a running daemon holds; a dry run recovers nothing and writes no meta.db
  return withOfflineRoots(config, options.dryRun === true, log, ({ store, registry }) => importBundle(localTarget(registry, store), file, options));
}
