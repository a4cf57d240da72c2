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
import { Database } from "node-sqlite3-wasm";
import type { SqlDatabase, SqlValue, Statement } from "../sqlite";

export type { SqlDatabase, SqlValue, Statement } from "../sqlite";

/** Opens (creating if needed) a database file; ":memory:" for one in memory. */
export function openDatabase(path: string): SqlDatabase {
  const db = new Database(path);
  const statements: { finalize(): void }[] = [];
  db.exec("PRAGMA journal_mode = DELETE; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -2048;");
  let depth = 0;
  return {
    exec: (sql) => void db.exec(sql),
    prepare<Row>(sql: string): Statement<Row> {
      const stmt = db.prepare(sql);
      statements.push(stmt);
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
      for (const s of statements.splice(0)) s.finalize();
      db.close();
    },
  };
}
