/**
 * The SQLite seam: bun:sqlite today. The interface is the small subset berth uses, which
 * better-sqlite3 also offers, so a Node.js build can swap the implementation here.
 */
import { Database, constants } from "bun:sqlite";

/** A prepared statement. */
export interface Statement<Row> {
  run(...params: SqlValue[]): void;
  get(...params: SqlValue[]): Row | undefined;
  all(...params: SqlValue[]): Row[];
}

/** Values that may be bound to a statement. */
export type SqlValue = string | number | bigint | null | Uint8Array;

/** An open database. */
export interface SqlDatabase {
  exec(sql: string): void;
  prepare<Row = Record<string, unknown>>(sql: string): Statement<Row>;
  /** Runs `fn` in one transaction; rolls back if it throws. */
  transaction<T>(fn: () => T): T;
  close(): void;
}

/**
 * Opens (creating if needed) a database file in WAL mode. The WAL and its index (-wal,
 * -shm) persist across close (SQLITE_FCNTL_PERSIST_WAL): a database reopened on a full disk
 * then needs no new file or block to be read, where making a fresh -shm fails with
 * SQLITE_IOERR_SHMSIZE. The kept WAL is bounded by journal_size_limit (8 MiB).
 */
export function openDatabase(path: string): SqlDatabase {
  const db = new Database(path, { create: true, strict: true });
  if (path !== ":memory:") db.fileControl(constants.SQLITE_FCNTL_PERSIST_WAL, 1);
  // A small page cache: the derived index is read rarely (referrers, catalog, GC), and on a
  // board every MiB of resident memory counts.
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA cache_size = -2048; PRAGMA mmap_size = 0; PRAGMA journal_size_limit = 8388608;");
  return wrap(db);
}

/** Opens someone else's database file read-only (a vulnerability database): no journal changes, no writes. */
export function openReadOnly(path: string): SqlDatabase {
  return wrap(new Database(path, { readonly: true, strict: true }));
}

/** A read-only database over `bytes` (a small database found inside an image layer), never written to disk. */
export function openSnapshot(bytes: Uint8Array): SqlDatabase {
  return wrap(Database.deserialize(bytes, true));
}

function wrap(db: Database): SqlDatabase {
  return {
    exec: (sql) => db.exec(sql),
    prepare<Row>(sql: string): Statement<Row> {
      const stmt = db.query(sql);
      return {
        run: (...params) => void stmt.run(...params),
        get: (...params) => (stmt.get(...params) as Row | null) ?? undefined,
        all: (...params) => stmt.all(...params) as Row[],
      };
    },
    transaction: <T>(fn: () => T): T => db.transaction(fn)(),
    close: () => db.close(),
  };
}
