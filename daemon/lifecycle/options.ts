/**
 * Turns the validated configuration's lifecycle sections into {@link LifecycleOptions}
 * (seconds to milliseconds, config key names to option names). Called by main only.
 */
import type { Config } from "../config/schema";
import type { LifecycleOptions } from "./lifecycle";

/** Lifecycle options from a validated configuration. */
export function lifecycleOptions(config: Config): LifecycleOptions {
  const s = 1000;
  return {
    gc: {
      intervalMs: config.gc.interval * s,
      graceMs: config.gc.grace * s,
      untagged: config.gc.untagged,
      orphanReferrers: config.gc.orphan_referrers,
      emptyRepositories: config.gc.empty_repositories,
    },
    scrubIntervalMs: config.scrub.interval * s,
    retention: {
      intervalMs: config.retention.interval * s,
      dryRun: config.retention.dry_run,
      policies: config.retention.policy.map((p) => ({
        repositories: p.repositories,
        keepLast: p.keep_last,
        keepTags: p.keep_tags,
        keepWithinMs: p.keep_within * s,
        untaggedAfterMs: p.untagged_after * s,
      })),
    },
    quota: {
      maxBytes: config.quota.max_bytes,
      minFree: config.quota.min_free,
      prefixes: config.quota.prefix.map((p) => ({ prefix: p.prefix, maxBytes: p.max_bytes })),
      evictable: config.quota.evictable,
      pinned: config.quota.pinned,
    },
    statsFlushMs: config.stats.flush_interval * s,
    maxManifestBytes: config.storage.max_manifest_bytes,
  };
}
