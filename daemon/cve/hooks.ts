/**
 * The registry hooks with the vulnerability scanner's in front of the lifecycle's: a tiny
 * module main.ts imports statically, so that the scanner itself (cve/service.ts) can be
 * loaded only when `[cve] enabled` and plug in after the registry exists.
 */
import type { RegistryHooks } from "../registry/hooks";

/** `inner`'s hooks, also telling `extra()` (when it returns hooks) about pushes and deletions. */
export function withCveHooks(inner: RegistryHooks, extra: () => RegistryHooks | undefined): RegistryHooks {
  return {
    pulled: inner.pulled?.bind(inner),
    touched: inner.touched?.bind(inner),
    pushed(repo, digest, tags) {
      inner.pushed?.(repo, digest, tags);
      extra()?.pushed?.(repo, digest, tags);
    },
    deleted(repo, reference, blobs) {
      inner.deleted?.(repo, reference, blobs);
      extra()?.deleted?.(repo, reference, blobs);
    },
  };
}
