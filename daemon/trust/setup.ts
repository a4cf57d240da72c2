/**
 * Builds the trust module from `[trust]` (loaded by main only when `enabled`): the trust
 * store over `keys_dir`, the status index in meta.db, the registry hooks that recompute a
 * status when a signature or an image arrives, the `require_signature` decorator, and the
 * HTTP routes. With `[trust] enabled = false` none of this is imported.
 */
import { join } from "node:path";
import type { Logger } from "../log";
import { ConfigError } from "../config/load";
import type { SqlDatabase } from "../platform/sqlite";
import type { RegistryHooks } from "../registry/hooks";
import type { V2Registry } from "../registry/api";
import { createTrustApi, type TrustApi } from "./api";
import { digestOfCosignTag } from "./cosign";
import { requireSignatures, signatureRequired, type OnRefused, type TrustPolicyConfig } from "./policy";
import { TrustIndex, type TrustSource } from "./status";
import { TrustStore } from "./store";
import { type UpstreamManifest, type UpstreamReader, type UpstreamVerdict, verifyUpstream } from "./upstream";

/** `[trust]` as the schema validates it. */
export interface TrustConfig {
  enabled: boolean;
  keys_dir: string;
  policy: TrustPolicyConfig[];
}

/** What the composition root gets. */
export interface TrustSetup {
  store: TrustStore;
  index: TrustIndex;
  /** Registry hooks: a push (image or signature) recomputes the status it changes. */
  hooks: RegistryHooks;
  /** The /v2 registry with `require_signature` enforced (the registry itself when no policy requires one). */
  decorate(registry: V2Registry): V2Registry;
  /** The admin routes and zot's upload endpoints. */
  api: TrustApi;
  /** SIGHUP: re-reads the keys directory (the policy needs a restart). */
  reload(): void;
  /** For the search API: zot's `IsSigned` and `SignatureInfo` of a manifest. */
  trustOf: TrustIndex["trustOf"];
  /** Sync's `only_signed`: verifies an upstream image's signatures with the trust store. */
  verifyUpstream<M extends UpstreamManifest>(upstream: UpstreamReader<M>, repo: string, m: M, signal?: AbortSignal): Promise<UpstreamVerdict<M>>;
}

/** Builds the trust module; `root` is the storage root (default keys_dir: `<root>/.berth/trust`). */
export function setupTrust(config: TrustConfig, root: string, db: SqlDatabase, source: TrustSource, onRefused: OnRefused, log: Logger): TrustSetup {
  const store = new TrustStore(config.keys_dir || join(root, ".berth", "trust"));
  const report = () => {
    for (const p of store.reload()) log.error("trust: a file of the keys directory is not used", { file: p.name, error: p.error });
  };
  try {
    report();
  } catch (err) {
    throw new ConfigError("trust.keys_dir", [`${store.dir} cannot be read or created (${(err as Error).message})`]);
  }
  const index = new TrustIndex(db, source, () => store.current());
  store.onChange(() => {
    index.keysChanged();
    log.info("trust: the trust store changed; signature statuses are recomputed", store.list().keys.length > 0 ? { entries: store.list().keys.length } : { entries: 0 });
  });
  log.info("trust: keys loaded", { dir: store.dir, keys: store.current().keys.length, cas: store.current().cas.length });
  const required = signatureRequired(config.policy);
  return {
    store,
    index,
    hooks: {
      pushed(repo, digest, tags) {
        for (const tag of tags) {
          const target = digestOfCosignTag(tag);
          if (target) index.refresh(repo, target);
        }
        index.refresh(repo, digest);
      },
    },
    decorate: (registry) => (config.policy.some((p) => p.require_signature) ? requireSignatures(registry, index, required, onRefused) : registry),
    api: createTrustApi(store, index),
    reload: () => {
      try {
        report();
      } catch (err) {
        log.error("trust: the keys directory cannot be read; keeping the keys loaded before", { dir: store.dir, error: (err as Error).message });
      }
    },
    trustOf: (repo, digest) => index.trustOf(repo, digest),
    verifyUpstream: (upstream, repo, m, signal) => verifyUpstream(upstream, repo, m, store.current(), signal),
  };
}
