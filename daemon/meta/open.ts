/**
 * Opening the derived index (meta.db) at start-up, with a way out on a full disk. The index
 * is derived from the layouts and can be rebuilt from them at any time, so when the disk has
 * no room to write it (a schema to create, a repository to re-index) berth builds it in
 * memory instead and serves: reads work as ever, writes answer 507 until there is room, and
 * the next start re-indexes from disk what this run could not record. This is logged as an
 * error; it is a degraded mode, never a crash loop.
 */
import type { Logger } from "../log";
import { openDatabase, type SqlDatabase } from "../platform/sqlite";
import { isNoSpace } from "../storage/errors";

/**
 * Opens `path` and runs `build` on it; if `build` (or opening) fails because the disk is
 * full, closes the file and runs `build` again on an in-memory database. Returns what `build`
 * returned, the database it used, and whether that is the in-memory fallback.
 */
export async function openIndex<T>(path: string, log: Logger, build: (db: SqlDatabase) => Promise<T>): Promise<{ db: SqlDatabase; degraded: boolean; value: T }> {
  let db: SqlDatabase | undefined;
  try {
    db = openDatabase(path);
    return { db, degraded: false, value: await build(db) };
  } catch (err) {
    db?.close();
    if (!isNoSpace(err)) throw err;
    log.error("the disk is full: the derived index cannot be written, so it is kept in memory for this run; reads are served, writes answer 507 until space is freed (delete images, then GC)", {
      path,
      error: String(err),
    });
  }
  const memory = openDatabase(":memory:");
  return { db: memory, degraded: true, value: await build(memory) };
}
