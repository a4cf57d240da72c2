/**
 * The vulnerability database on disk: `<root>/.berth/cve/vulnerability.db`, a Grype
 * database carried in as a file. An import streams the file (a plain .db, or a tar.gz /
 * tar.zst / tar archive holding `vulnerability.db` and optionally Grype's checksum file:
 * `import.json` for v6, `metadata.json` for v5) into a new file beside it, never holding it
 * in memory; verifies it (SQLite header, schema and required tables, SQLite's quick_check,
 * the checksum when the archive carries one); then renames it over the current one and
 * fsyncs the directory, so a crash leaves either the old database or the new one. Any
 * failure removes the new file and keeps the old database in service.
 */
import { hashFile, xxh64File } from "../platform/hash";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { GrypeDb, GrypeDbError, type DbInfo } from "./grype";
import { decompressedLayer, readTar, TarError } from "./tar";

const SQLITE_MAGIC = "SQLite format 3\0";
/** Largest checksum document read from an archive. */
const MAX_SIDE_FILE = 1 << 20;

/** What `berth cve db status` shows. */
export interface DbStatus {
  present: boolean;
  schema?: 5 | 6;
  schemaVersion?: string;
  /** When Grype built the database. */
  built?: string;
  /** When it was imported here. */
  imported?: string;
  bytes?: number;
  /** Whether an archive checksum was verified at import. */
  checksum?: "verified" | "absent";
}

/** Raised for an import that is refused; the message says why (the old database is kept). */
export class ImportError extends Error {}

/** The database file and its swaps. */
export class VulnDbStore {
  private current: GrypeDb | undefined;
  /** The database swapped out last: kept open until the next swap, for a scan still reading it. */
  private retired: GrypeDb | undefined;
  private checksum: DbStatus["checksum"];
  private importing = false;
  readonly dir: string;
  readonly path: string;

  /** `root` is the storage root; the database lives under its `.berth/cve/`. */
  constructor(root: string, private readonly maxBytes: number) {
    this.dir = join(root, ".berth", "cve");
    this.path = join(this.dir, "vulnerability.db");
  }

  /** Opens the database left by an earlier import, if any; returns an error text when it is unusable. */
  open(): string | undefined {
    if (!existsSync(this.path)) return undefined;
    try {
      this.current = new GrypeDb(this.path);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /** The database in service (undefined before the first import). */
  get db(): GrypeDb | undefined {
    return this.current;
  }

  /** Status for the CLI and API. */
  status(): DbStatus {
    const db = this.current;
    if (!db) return { present: false };
    const st = statSync(this.path, { throwIfNoEntry: false });
    const out: DbStatus = { present: true, schema: db.info.schema, schemaVersion: db.info.schemaVersion, built: db.info.built };
    if (st) {
      out.imported = st.mtime.toISOString();
      out.bytes = st.size;
    }
    if (this.checksum) out.checksum = this.checksum;
    return out;
  }

  /**
   * Imports a database from `source` (the bytes of a .db file or of an archive). Resolves
   * to the new database's info once it is in service; rejects with {@link ImportError}.
   */
  async import(source: ReadableStream<Uint8Array>, signal?: AbortSignal): Promise<DbInfo> {
    if (this.importing) throw new ImportError("another import is in progress; try again when it has finished");
    this.importing = true;
    mkdirSync(this.dir, { recursive: true });
    const incoming = join(this.dir, `incoming-${process.pid}-${Date.now()}.db`);
    let candidate: GrypeDb | undefined;
    try {
      const { side } = await this.receive(source, incoming, signal);
      try {
        candidate = new GrypeDb(incoming);
      } catch (err) {
        throw new ImportError((err as Error).message);
      }
      const problems = candidate.check();
      if (problems.length) throw new ImportError(`the database fails SQLite's integrity check: ${problems.slice(0, 3).join("; ")}`);
      const verified = await verifyChecksum(incoming, side);
      candidate.close();
      candidate = undefined;
      renameSync(incoming, this.path);
      const dirFd = openSync(this.dir, "r");
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
      const next = new GrypeDb(this.path);
      const old = this.current;
      this.current = next;
      this.checksum = verified ? "verified" : "absent";
      this.retired?.close();
      this.retired = old;
      return next.info;
    } catch (err) {
      candidate?.close();
      rmSync(incoming, { force: true });
      if (err instanceof ImportError) throw err;
      if (err instanceof TarError || err instanceof GrypeDbError) throw new ImportError(err.message);
      throw err;
    } finally {
      this.importing = false;
    }
  }

  /** Writes the database bytes of `source` to `file`; returns the archive's checksum documents. */
  private async receive(source: ReadableStream<Uint8Array>, file: string, signal?: AbortSignal): Promise<{ side: Map<string, Uint8Array> }> {
    const fd = openSync(file, "wx", 0o600);
    let written = 0;
    const side = new Map<string, Uint8Array>();
    const sink = {
      write: (chunk: Uint8Array) => {
        written += chunk.byteLength;
        if (written > this.maxBytes) throw new ImportError(`the database is larger than cve.max_db_bytes (${this.maxBytes} bytes)`);
        let off = 0;
        while (off < chunk.byteLength) off += writeSync(fd, chunk, off);
      },
    };
    try {
      const stream = decompressedLayer(source);
      const reader = stream.getReader();
      const first = await reader.read();
      const head = first.done ? new Uint8Array(0) : first.value;
      const rest = new ReadableStream<Uint8Array>({
        start(c) {
          if (head.byteLength) c.enqueue(head);
        },
        async pull(c) {
          const { done, value } = await reader.read();
          if (done) c.close();
          else c.enqueue(value);
        },
        cancel: (r) => reader.cancel(r),
      }, { highWaterMark: 0 });
      if (new TextDecoder().decode(head.subarray(0, 16)) === SQLITE_MAGIC) {
        const r = rest.getReader();
        for (;;) {
          signal?.throwIfAborted();
          const { done, value } = await r.read();
          if (done) break;
          sink.write(value);
        }
      } else {
        let found = false;
        const neither = "the file is neither a SQLite database nor a tar.gz / tar.zst / tar archive (xz archives: decompress them with xz -d first)";
        await readTar(rest, (e) => {
          const base = e.path.slice(e.path.lastIndexOf("/") + 1);
          if (e.type !== "file") return false;
          if (base === "vulnerability.db") {
            if (found) throw new ImportError("the archive holds more than one vulnerability.db");
            found = true;
            return sink;
          }
          if (base === "import.json" || base === "metadata.json") return MAX_SIDE_FILE;
          return false;
        }, (e, content) => {
          if (content) side.set(e.path.slice(e.path.lastIndexOf("/") + 1), content);
        }, signal).catch((err) => {
          // the very first header is not tar: the file is something else altogether
          if (err instanceof TarError && written === 0 && side.size === 0 && !looksLikeTar(head)) throw new ImportError(neither);
          throw err;
        });
        if (!found) throw new ImportError("the archive holds no vulnerability.db");
      }
      fsyncSync(fd);
      return { side };
    } finally {
      closeSync(fd);
    }
  }

  /** Closes the database. */
  close(): void {
    this.current?.close();
    this.retired?.close();
    this.current = this.retired = undefined;
  }
}

function looksLikeTar(head: Uint8Array): boolean {
  return head.byteLength >= 263 && new TextDecoder().decode(head.subarray(257, 262)) === "ustar";
}

/**
 * Checks the database file against the archive's checksum document: v6's import.json
 * `digest` ("xxh64:<hex>") or v5's metadata.json `checksum` ("sha256:<hex>" or "xxh64:…").
 * Returns false when there is none; throws {@link ImportError} on a mismatch.
 */
async function verifyChecksum(file: string, side: Map<string, Uint8Array>): Promise<boolean> {
  const doc = side.get("import.json") ?? side.get("metadata.json");
  if (!doc) return false;
  let expected: string | undefined;
  try {
    const parsed = JSON.parse(new TextDecoder().decode(doc)) as { digest?: string; checksum?: string };
    expected = parsed.digest ?? parsed.checksum;
  } catch {
    throw new ImportError("the archive's checksum document is not JSON");
  }
  if (!expected) return false;
  const [alg, hex] = expected.split(":");
  let actual: string;
  if (alg === "xxh64") {
    // under Bun mapped, not read: the kernel pages the file through, the heap holds none of it
    actual = await xxh64File(file);
  } else if (alg === "sha256") {
    actual = await hashFile("sha256", file);
  } else {
    throw new ImportError(`the archive's checksum "${expected}" uses an algorithm berth does not know`);
  }
  if (actual !== hex?.toLowerCase()) throw new ImportError(`the database does not match the archive's checksum (expected ${expected}, got ${alg}:${actual})`);
  return true;
}
