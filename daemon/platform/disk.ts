/**
 * The file-system primitives the storage engine uses, behind one small interface so that a
 * test can substitute a simulator (e.g. one that records writes and fsyncs and "cuts the
 * power") and a Node.js build can reuse the same code: everything here is node:fs, which Bun
 * implements natively.
 *
 * Durability contract: data written through {@link AppendFile} is durable only after
 * `sync()`; a directory entry (create, link, rename, unlink) is durable only after
 * `syncDir()` of its parent. {@link Disk.writeAtomic} does the whole dance.
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import { dirname, join } from "node:path";

/** What `stat` reports; undefined from {@link Disk.stat} means "does not exist". */
export interface FileInfo {
  size: number;
  mtimeMs: number;
  /** Last change of the inode (a link made or removed, data written); absent where unknown. */
  ctimeMs?: number;
  ino: number;
  nlink: number;
  isFile: boolean;
  isDirectory: boolean;
}

/** A file opened for appending, with an explicit flush to stable storage. */
export interface AppendFile {
  /** Appends the chunks at the current end, in order. */
  write(chunks: Uint8Array[]): Promise<void>;
  /** Cuts the file back to `size` bytes (used to undo a failed chunk). */
  truncate(size: number): Promise<void>;
  /** fsync: the data written so far survives a power loss. */
  sync(): Promise<void>;
  close(): Promise<void>;
  /** Optional, for a sink that sends writes on in the background (S3 parts): waits for them, throws the first that failed. */
  settle?(): Promise<void>;
}

/** The file-system operations storage needs; see the module comment for durability. */
export interface Disk {
  stat(path: string): FileInfo | undefined;
  readFile(path: string): Promise<Uint8Array>;
  readdir(path: string): string[];
  mkdirp(path: string): Promise<void>;
  openAppend(path: string): Promise<AppendFile>;
  /** Hard-links `src` to `dst`. Returns false if `dst` already exists. */
  link(src: string, dst: string): Promise<boolean>;
  /** Copies `src` to a new file `dst` and fsyncs it. Returns false if `dst` already exists. */
  copy(src: string, dst: string): Promise<boolean>;
  rename(src: string, dst: string): Promise<void>;
  /** Removes a file; a missing file is not an error. */
  unlink(path: string): Promise<void>;
  /** Removes a tree; a missing tree is not an error. */
  removeTree(path: string): Promise<void>;
  syncDir(path: string): Promise<void>;
  /** Replaces `path` with `bytes` atomically and durably: temp file, fsync, rename, fsync dir. */
  writeAtomic(path: string, bytes: Uint8Array | string): Promise<void>;
}

/** Prefix of the temp files {@link Disk.writeAtomic} leaves behind if it is interrupted. */
export const TEMP_PREFIX = ".berth-tmp-";

/**
 * Prefix of the temp files this process makes: the pid and a per-run token, so a sweep
 * running beside live writes (the start-up sweep, deferred until after listening) tells its
 * own in-flight temp files from a killed run's, even when both ran as the same pid (PID 1 in
 * a container).
 */
export const OWN_TEMP_PREFIX = `${TEMP_PREFIX}${process.pid}.${Math.random().toString(36).slice(2, 8)}-`;

let tempCounter = 0;

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

class RealAppendFile implements AppendFile {
  constructor(private readonly handle: fsp.FileHandle) {}
  async write(chunks: Uint8Array[]): Promise<void> {
    let pending = chunks;
    while (pending.length > 0) {
      const { bytesWritten } = await this.handle.writev(pending);
      pending = skipBytes(pending, bytesWritten);
    }
  }
  truncate(size: number): Promise<void> {
    return this.handle.truncate(size);
  }
  sync(): Promise<void> {
    return this.handle.datasync();
  }
  close(): Promise<void> {
    return this.handle.close();
  }
}

/** Drops the first `count` bytes from a list of chunks (after a short writev). */
function skipBytes(chunks: Uint8Array[], count: number): Uint8Array[] {
  let left = count;
  const out: Uint8Array[] = [];
  for (const chunk of chunks) {
    if (left >= chunk.byteLength) {
      left -= chunk.byteLength;
      continue;
    }
    out.push(left > 0 ? chunk.subarray(left) : chunk);
    left = 0;
  }
  return out;
}

/** The real disk, through node:fs. */
export const realDisk: Disk = {
  stat(path) {
    try {
      const s = fs.statSync(path);
      return { size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, ino: s.ino, nlink: s.nlink, isFile: s.isFile(), isDirectory: s.isDirectory() };
    } catch (err) {
      if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") return undefined;
      throw err;
    }
  },
  async readFile(path) {
    return new Uint8Array(await fsp.readFile(path));
  },
  readdir(path) {
    try {
      return fs.readdirSync(path);
    } catch (err) {
      if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") return [];
      throw err;
    }
  },
  async mkdirp(path) {
    await fsp.mkdir(path, { recursive: true });
  },
  async openAppend(path) {
    return new RealAppendFile(await fsp.open(path, "a"));
  },
  async link(src, dst) {
    try {
      await fsp.link(src, dst);
      return true;
    } catch (err) {
      if (errno(err) === "EEXIST") return false;
      throw err;
    }
  },
  async copy(src, dst) {
    const tmp = join(dirname(dst), `${OWN_TEMP_PREFIX}${++tempCounter}`);
    await fsp.copyFile(src, tmp);
    const handle = await fsp.open(tmp, "r+");
    try {
      await handle.datasync();
    } finally {
      await handle.close();
    }
    try {
      await fsp.link(tmp, dst);
      return true;
    } catch (err) {
      if (errno(err) === "EEXIST") return false;
      throw err;
    } finally {
      await fsp.unlink(tmp).catch(() => {});
    }
  },
  rename(src, dst) {
    return fsp.rename(src, dst);
  },
  async unlink(path) {
    try {
      await fsp.unlink(path);
    } catch (err) {
      if (errno(err) !== "ENOENT") throw err;
    }
  },
  async removeTree(path) {
    await fsp.rm(path, { recursive: true, force: true });
  },
  async syncDir(path) {
    const handle = await fsp.open(path, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  async writeAtomic(path, bytes) {
    const dir = dirname(path);
    const tmp = join(dir, `${OWN_TEMP_PREFIX}${++tempCounter}`);
    const handle = await fsp.open(tmp, "w");
    try {
      await handle.writeFile(bytes);
      await handle.datasync();
    } catch (err) {
      // a full disk: leave no partial temp file holding the space a retry needs
      await handle.close().catch(() => {});
      await fsp.unlink(tmp).catch(() => {});
      throw err;
    }
    await handle.close();
    try {
      await fsp.rename(tmp, path);
    } catch (err) {
      await fsp.unlink(tmp).catch(() => {});
      throw err;
    }
    await realDisk.syncDir(dir);
  },
};
