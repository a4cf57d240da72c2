/**
 * Search's view of the daemon (a {@link CatalogSource}) over the derived index and the
 * storage's blob API: repositories and manifests from meta, tags from the repository's
 * index (cached in memory by storage, re-read only when index.json changed), and manifest
 * and config bytes through the blob reader (the manifest cache first). No path leaves storage.
 */
import { parseDigest } from "../oci/digest";
import type { Meta } from "../meta/meta";
import type { Storage } from "../storage/api";
import type { CatalogSource } from "./catalog";

/** The catalog source of a running daemon. */
export function searchSource(store: Storage, meta: Meta): CatalogSource {
  return {
    repoStamps: () => meta.repoStamps(),
    manifestsOf: (repo) => meta.manifestsOf(repo),
    async tags(repo) {
      const index = await store.indexes.index(repo);
      if (!index) return undefined;
      const out = new Map<string, string>();
      for (const [tag, desc] of index.tags) out.set(tag, desc.digest);
      return out;
    },
    async read(repo, digestText, maxBytes) {
      const digest = parseDigest(digestText);
      if (!digest) return undefined;
      const cached = store.manifests.get(digest.value);
      if (cached) return cached.bytes;
      const info = store.blobs.stat(repo, digest);
      if (!info || info.size > maxBytes) return undefined;
      try {
        return await store.blobs.read(repo, digest);
      } catch {
        return undefined; // removed meanwhile (GC, a delete): indexed without it, like a missing blob
      }
    },
  };
}
