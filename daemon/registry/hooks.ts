/**
 * Observers the registry tells about what clients do, so background work can decide
 * without the registry writing anything extra: pull statistics (kept in memory, flushed in
 * batches), push times, and "recently touched" marks that protect blobs from garbage
 * collection while a push is assembling its manifest. Every hook is synchronous and cheap;
 * none may throw or write to disk on the request's path.
 */

/** What the registry reports; every member is optional. */
export interface RegistryHooks {
  /** A manifest was served (GET or HEAD) by `reference` (a tag or a digest); `digest` is what it resolved to. */
  pulled?(repo: string, reference: string, digest: string): void;
  /** A manifest was stored in `repo` under `tags` (empty when pushed by digest only). */
  pushed?(repo: string, digest: string, tags: readonly string[]): void;
  /** Tag or manifest digest `reference` was deleted from `repo`; for a manifest, `blobs` are the digests it referenced. */
  deleted?(repo: string, reference: string, blobs?: readonly string[]): void;
  /** A client looked at, uploaded or mounted blob `digest` of `repo` (it may be referenced soon). */
  touched?(repo: string, digest: string): void;
}

/** Hooks that call each of `list` in turn (the lifecycle's, then the trust module's). */
export function chainHooks(...list: RegistryHooks[]): RegistryHooks {
  const each = <K extends keyof RegistryHooks>(k: K) => list.map((h) => h[k]?.bind(h)).filter((f) => f !== undefined) as NonNullable<RegistryHooks[K]>[];
  const pulled = each("pulled"), pushed = each("pushed"), deleted = each("deleted"), touched = each("touched");
  return {
    pulled: (...a) => { for (const f of pulled) f(...a); },
    pushed: (...a) => { for (const f of pushed) f(...a); },
    deleted: (...a) => { for (const f of deleted) f(...a); },
    touched: (...a) => { for (const f of touched) f(...a); },
  };
}
