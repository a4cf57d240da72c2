#!/usr/bin/env bun
/**
 * The JS heap search's light models hold (issue 13), a script and never a test: opens the
 * meta.db of a root filled by scripts/bench-search.ts (BERTH_ROOT), builds search's Catalog
 * from a checkout (argument 1: its daemon/search/catalog.ts; default this one's), brings it up
 * to date, answers a full scan (every repository's model, as GlobalSearch over every name
 * does) and reports the heap before and after, after full collections. The source of the
 * derived index is the real one (meta.db, the root's blobs).
 *
 *   BERTH_ROOT=/tmp/berth-search-root bun scripts/search-model.ts [path/to/catalog.ts] [modelBytes]
 */
import { resolve } from "node:path";
import { openDatabase } from "../daemon/platform/sqlite";
import { Meta } from "../daemon/meta/meta";
import { openLocalStore } from "../daemon/storage/store";
import { searchSource } from "../daemon/search/source";
import { silentLogger } from "../daemon/log";

const root = process.env.BERTH_ROOT ?? "/tmp/berth-search-root";
const module = resolve(process.argv[2] ?? resolve(import.meta.dir, "../daemon/search/catalog.ts"));
const modelBytes = process.argv[3] ? Number(process.argv[3]) : undefined;
const { Catalog } = await import(module);
const store = openLocalStore({ root, dedupe: true, maxBlobBytes: 0, manifestCacheBytes: 0 }, silentLogger);
const db = openDatabase(store.metaDbPath);
const meta = new Meta(db);
const heap = () => {
  Bun.gc(true);
  Bun.gc(true);
  return process.memoryUsage().heapUsed / 1024 / 1024;
};
const before = heap();
const t0 = performance.now();
const catalog = new Catalog(db, searchSource(store, meta), { maxManifestBytes: 4 << 20, maxConfigBytes: 4 << 20, ...(modelBytes ? { modelBytes } : {}) });
await catalog.refresh();
let manifests = 0;
for (const r of catalog.repositories()) manifests += r.manifests.size;
const ms = performance.now() - t0;
const t1 = performance.now();
for (let i = 0; i < 5; i++) for (const r of catalog.repositories()) void r.tags.size;
const scanMs = (performance.now() - t1) / 5;
const after = heap();
console.log(`estimate ${JSON.stringify(catalog.memory?.() ?? {})} `); console.log(`${module}${modelBytes ? ` model_bytes ${modelBytes}` : ""}: ${manifests} manifests; heap ${before.toFixed(1)} -> ${after.toFixed(1)} MiB (+${(after - before).toFixed(1)}) held by the catalog; open + refresh + scan ${ms.toFixed(0)} ms; a full scan ${scanMs.toFixed(1)} ms`);
void catalog;
db.close();
