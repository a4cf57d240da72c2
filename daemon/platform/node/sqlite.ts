/**
 * The SQLite seam for the Node.js build: the same exports as platform/sqlite.ts, on
 * node-sqlite3-wasm (SQLite compiled to WebAssembly with a VFS over node:fs, so the database
 * is a real file). Chosen over a native addon because one .wasm file runs on every CPU the
 * Node.js build targets (armv7 above all) with no compiler, no node-gyp and no ABI to match
 * to Debian's Node.js; the cost is speed, which the derived index can afford (it is read
 * rarely and written only when content changes).
 *
 * The VFS has no shared memory, hence no WAL: the journal is a rollback journal (DELETE
 * mode, synchronous NORMAL), which is safe for a derived, rebuildable index. Prepared
 * statements live as long as the database and are finalized by close().
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Database } from "node-sqlite3-wasm";
import type { SqlDatabase, SqlValue, Statement } from "../sqlite";

export type { SqlDatabase, SqlValue, Statement } from "../sqlite";

/** Opens (creating if needed) a database file; ":memory:" for one in memory. */
export function openDatabase(path: string): SqlDatabase {
  const db = new Database(path);
  db.exec("PRAGMA journal_mode = DELETE; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -2048;");
  return wrap(db);
}

/** Opens someone else's database file read-only (a vulnerability database). */
export function openReadOnly(path: string): SqlDatabase {
  return wrap(new Database(path, { readOnly: true }));
}

/**
 * A read-only database over `bytes`. The WebAssembly SQLite cannot open memory as a
 * database, so the bytes go to a private temporary file, removed again on close.
 */
export function openSnapshot(bytes: Uint8Array): SqlDatabase {
  const dir = mkdtempSync(join(tmpdir(), "berth-sqlite-"));
  const path = join(dir, "snapshot.db");
  try {
    writeFileSync(path, bytes, { mode: 0o600 });
    const db = wrap(new Database(path, { readOnly: true }));
    return { ...db, close: () => (db.close(), rmSync(dir, { recursive: true, force: true })) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

function wrap(db: Database): SqlDatabase {
  // One prepared statement per SQL text, as bun:sqlite's query() caches them: callers that
  // prepare per call must not leak statements.
  const statements = new Map<string, ReturnType<Database["prepare"]>>();
  let depth = 0;
  return {
    exec: (sql) => void db.exec(sql),
    prepare<Row>(sql: string): Statement<Row> {
      let stmt = statements.get(sql);
      if (!stmt) statements.set(sql, (stmt = db.prepare(sql)));
      const args = (params: SqlValue[]) => (params.length === 0 ? undefined : (params as never));
      return {
        run: (...params) => void stmt.run(args(params)),
        get: (...params) => (stmt.get(args(params)) as Row | null) ?? undefined,
        all: (...params) => stmt.all(args(params)) as Row[],
      };
    },
    transaction<T>(fn: () => T): T {
      // Nested calls join the outer transaction, as bun:sqlite's savepoints make them appear.
      const name = `t${depth}`;
      db.exec(depth === 0 ? "BEGIN" : `SAVEPOINT ${name}`);
      depth++;
      try {
        const result = fn();
        depth--;
        db.exec(depth === 0 ? "COMMIT" : `RELEASE ${name}`);
        return result;
      } catch (err) {
        depth--;
        db.exec(depth === 0 ? "ROLLBACK" : `ROLLBACK TO ${name}; RELEASE ${name}`);
        throw err;
      }
    },
    close: () => {
      for (const s of statements.values()) s.finalize();
      statements.clear();
      db.close();
    },
  };
}
