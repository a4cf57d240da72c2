/**
 * Storage figures for /metrics, from storage's one walk (storage/api.ts, UsageMeter.figures):
 * bytes per repository (the sizes of the blobs it holds), bytes in the pool (each distinct
 * blob once), and what deduplication saves (the difference). The walk stats every blob, so
 * its result is cached for `maxAgeMs` and scrapes in between reuse it.
 */
import type { StorageFigures } from "../storage/api";
import type { Family } from "./registry";

/** A cached provider of storage families. */
export function storageProvider(walk: () => StorageFigures, maxAgeMs: number): () => Family[] {
  let cached: { at: number; figures: StorageFigures } | undefined;
  return () => {
    if (!cached || performance.now() - cached.at > maxAgeMs) cached = { at: performance.now(), figures: walk() };
    const f = cached.figures;
    const linked = [...f.repositories.values()].reduce((a, r) => a + r.bytes, 0);
    return [
      {
        name: "berth_storage_repository_bytes",
        help: "Bytes of the blobs each repository's layout holds (shared blobs counted in every repository).",
        type: "gauge",
        samples: [...f.repositories].map(([repository, r]) => ({ labels: { repository }, value: r.bytes })),
      },
      { name: "berth_storage_pool_bytes", help: "Bytes on disk in the blob pool (each distinct blob once).", type: "gauge", samples: [{ value: f.poolBytes }] },
      { name: "berth_storage_pool_blobs", help: "Distinct blobs in the pool.", type: "gauge", samples: [{ value: f.poolBlobs }] },
      { name: "berth_storage_dedupe_saved_bytes", help: "Bytes deduplication saves: repository bytes summed minus pool bytes.", type: "gauge", samples: [{ value: Math.max(0, linked - f.poolBytes) }] },
    ];
  };
}
