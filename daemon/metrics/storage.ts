/**
 * Storage figures for /metrics, computed from the tree on disk (storage/paths.ts draws it):
 * bytes per repository (the sizes of the blobs its layout links), bytes in the pool (each
 * distinct blob once), and what deduplication saves (the difference). The walk stats every
 * blob file, so its result is cached for `maxAgeMs` and one walk runs at a time; scrapes in
 * between reuse it.
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Family } from "./registry";

/** The result of one walk. */
export interface StorageFigures {
  repositories: Map<string, { bytes: number; blobs: number }>;
  poolBytes: number;
  poolBlobs: number;
}

function dirSize(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  let algs: string[];
  try {
    algs = readdirSync(dir);
  } catch {
    return { bytes, files };
  }
  for (const alg of algs) {
    let names: string[];
    try {
      names = readdirSync(join(dir, alg));
    } catch {
      continue;
    }
    for (const n of names) {
      try {
        bytes += statSync(join(dir, alg, n)).size;
        files++;
      } catch {
        // removed meanwhile
      }
    }
  }
  return { bytes, files };
}

/** Walks `root` once. A repository is any directory with an `oci-layout` file (names nest). */
export function walkStorage(root: string): StorageFigures {
  const repositories = new Map<string, { bytes: number; blobs: number }>();
  const visit = (dir: string, name: string) => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    if (name && entries.some((e) => e.name === "oci-layout" && e.isFile())) {
      const s = dirSize(join(dir, "blobs"));
      repositories.set(name, { bytes: s.bytes, blobs: s.files });
    }
    for (const e of entries) {
      if (!e.isDirectory() || e.name === "blobs" || (name === "" && e.name === ".berth")) continue;
      visit(join(dir, e.name), name ? `${name}/${e.name}` : e.name);
    }
  };
  visit(root, "");
  const pool = dirSize(join(root, ".berth", "pool"));
  return { repositories, poolBytes: pool.bytes, poolBlobs: pool.files };
}

/** A cached provider of storage families. */
export function storageProvider(root: string, maxAgeMs: number): () => Family[] {
  let cached: { at: number; figures: StorageFigures } | undefined;
  return () => {
    if (!cached || performance.now() - cached.at > maxAgeMs) cached = { at: performance.now(), figures: walkStorage(root) };
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
