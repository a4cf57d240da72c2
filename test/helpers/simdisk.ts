/**
 * A power-cut simulator behind the storage engine's Disk interface: an in-memory file
 * system that keeps two states of everything — what the engine currently sees, and what
 * would survive a power loss — and can "cut the power" after the Nth mutating operation.
 *
 * The durability model is deliberately conservative (stricter than ext4 data=ordered):
 * - file data written is durable only after `sync()` of that file (a later write or
 *   truncate is lost again until the next sync);
 * - a directory entry change (create, link, rename, unlink, mkdir, removal) is durable only
 *   after `syncDir()` of that directory; a directory that is itself not durably linked in
 *   its parent takes everything under it down with it.
 * - `copy()` is done as the real disk does it: a temp file beside the target, the bytes
 *   written (not durable), an fsync, a link to the target, the temp file unlinked; each is
 *   an operation the power can stop at, and the copy is durable only after its fsync.
 * After the cut every operation fails with EIO (reads keep working on the current state,
 * as a dying machine's page cache would). `survivors()` builds a fresh simulator holding
 * exactly what was durable: the disk a rebooted machine finds. `survivors(random)` is the
 * adversarial reading of the same rules: what was durable survives, and each change that was
 * not may survive or not (a directory entry independently of the others; a file's unsynced
 * bytes whole, cut short, or as zeros), as a real file system may leave them.
 *
 * `links: false` makes hard links between different directories fail with EXDEV (a pool on
 * another file system than the repositories), so the store falls back to copies; `readOnly`
 * files refuse writes (EACCES) and links (EPERM). `jitter` gives every operation a random
 * latency, so concurrent requests interleave as on a real disk; `gate` holds one chosen
 * operation back, for a race forced deterministically.
 */
import { basename, dirname } from "node:path";
import { type AppendFile, type Disk, type FileInfo, TEMP_PREFIX } from "../../daemon/platform/disk";

interface Inode {
  id: number;
  dir: boolean;
  data: Uint8Array;
  synced: Uint8Array;
  entries: Map<string, number>;
  syncedEntries: Map<string, number>;
  mtimeMs: number;
  ctimeMs: number;
}

function fsError(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${path}`), { code });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Counts of what the simulator did. */
export interface SimCounts {
  ops: number;
  fileSyncs: number;
  dirSyncs: number;
}

/** The simulated disk. */
export class SimDisk implements Disk {
  private readonly inodes = new Map<number, Inode>();
  private nextId = 1;
  private tmp = 0;
  readonly counts: SimCounts = { ops: 0, fileSyncs: 0, dirSyncs: 0 };
  /** The operation number at which the power goes (undefined: never). */
  cutAt: number | undefined;
  dead = false;
  /** False: links between directories fail with EXDEV (see the module comment). */
  links = true;
  /**
   * Files berth may only read (another owner, mode 0644): opening them for writing fails with
   * EACCES, and linking them with EPERM (Linux's default fs.protected_hardlinks).
   */
  readonly readOnly = new Set<string>();

  constructor() {
    this.newInode(true); // root "/", id 1, durable by definition
  }

  private newInode(dir: boolean, data = new Uint8Array(0)): Inode {
    const now = Date.now();
    const inode: Inode = { id: this.nextId++, dir, data, synced: new Uint8Array(0), entries: new Map(), syncedEntries: new Map(), mtimeMs: now, ctimeMs: now };
    this.inodes.set(inode.id, inode);
    return inode;
  }

  /**
   * Random latency: with it, every operation first waits a random number of turns of the
   * microtask queue (an fsync up to 32, anything else up to 4), so concurrent requests
   * interleave as they do on a real disk, where an fsync is slow and other work completes
   * meanwhile. An operation takes effect when it completes.
   */
  jitter: (() => number) | undefined;

  /**
   * Called before every operation with its name and path; an operation waits for the
   * promise it returns (a test holds one operation back to force an interleaving).
   */
  gate: ((op: string, path: string) => Promise<void> | undefined) | undefined;

  private async lag(slow = false, op = "", path = ""): Promise<void> {
    if (this.gate) await this.gate(op, path);
    if (!this.jitter) return;
    for (let n = Math.floor(this.jitter() * (slow ? 32 : 4)); n > 0; n--) await null;
  }

  /** Operations done, when tracing (for debugging a failed invariant). */
  trace: string[] | undefined;

  /** Counts one mutating operation; throws EIO once the power is cut. */
  private step(path: string, what = ""): void {
    if (this.dead) throw fsError("EIO", path);
    this.counts.ops++;
    this.trace?.push(`${this.counts.ops} ${what} ${path}`);
    if (this.cutAt !== undefined && this.counts.ops >= this.cutAt) {
      this.dead = true;
      throw fsError("EIO", path);
    }
  }

  private lookup(path: string): Inode | undefined {
    let node = this.inodes.get(1)!;
    for (const part of path.split("/").filter(Boolean)) {
      if (!node.dir) return undefined;
      const id = node.entries.get(part);
      if (id === undefined) return undefined;
      node = this.inodes.get(id)!;
    }
    return node;
  }

  private parent(path: string): Inode {
    const p = this.lookup(dirname(path));
    if (!p?.dir) throw fsError("ENOENT", path);
    return p;
  }

  private nlink(id: number): number {
    let n = 0;
    for (const inode of this.inodes.values()) if (inode.dir) for (const v of inode.entries.values()) if (v === id) n++;
    return n;
  }

  stat(path: string): FileInfo | undefined {
    const n = this.lookup(path);
    if (!n) return undefined;
    return { size: n.data.byteLength, mtimeMs: n.mtimeMs, ctimeMs: n.ctimeMs, ino: n.id, nlink: n.dir ? 2 : this.nlink(n.id), isFile: !n.dir, isDirectory: n.dir };
  }

  async readFile(path: string): Promise<Uint8Array> {
    const n = this.lookup(path);
    if (!n || n.dir) throw fsError("ENOENT", path);
    return n.data.slice();
  }

  readdir(path: string): string[] {
    const n = this.lookup(path);
    return n?.dir ? [...n.entries.keys()] : [];
  }

  async mkdirp(path: string): Promise<void> {
    await this.lag(false, "mkdirp", path);
    let node = this.inodes.get(1)!;
    for (const part of path.split("/").filter(Boolean)) {
      const id = node.entries.get(part);
      if (id !== undefined) {
        node = this.inodes.get(id)!;
        if (!node.dir) throw fsError("ENOTDIR", path);
        continue;
      }
      const child = this.newInode(true);
      this.step(path, `mkdir(${child.id})`);
      node.entries.set(part, child.id);
      node = child;
    }
  }

  async openAppend(path: string): Promise<AppendFile> {
    await this.lag(false, "open", path);
    if (this.readOnly.has(path)) throw fsError("EACCES", path);
    let file = this.lookup(path);
    if (!file) {
      const p = this.parent(path);
      this.step(path);
      file = this.newInode(false);
      p.entries.set(basename(path), file.id);
    }
    const f = file;
    const disk = this;
    return {
      async write(chunks) {
        await disk.lag(false, "write", path);
        disk.step(path);
        const total = chunks.reduce((s, c) => s + c.byteLength, 0);
        const out = new Uint8Array(f.data.byteLength + total);
        out.set(f.data);
        let at = f.data.byteLength;
        for (const c of chunks) {
          out.set(c, at);
          at += c.byteLength;
        }
        f.data = out;
        f.mtimeMs = f.ctimeMs = Date.now();
      },
      async truncate(size) {
        await disk.lag(false, "truncate", path);
        disk.step(path);
        f.data = f.data.slice(0, size);
      },
      async sync() {
        await disk.lag(true, "sync", path);
        disk.step(path);
        disk.counts.fileSyncs++;
        f.synced = f.data.slice();
      },
      async close() {},
    };
  }

  async link(src: string, dst: string): Promise<boolean> {
    await this.lag(false, "link", dst);
    const s = this.lookup(src);
    if (!s || s.dir) throw fsError("ENOENT", src);
    if (!this.links && dirname(src) !== dirname(dst)) throw fsError("EXDEV", dst);
    if (this.readOnly.has(src)) throw fsError("EPERM", src);
    const p = this.parent(dst);
    if (p.entries.has(basename(dst))) return false;
    this.step(dst);
    p.entries.set(basename(dst), s.id);
    s.ctimeMs = Date.now();
    return true;
  }

  async copy(src: string, dst: string): Promise<boolean> {
    const s = this.lookup(src);
    if (!s || s.dir) throw fsError("ENOENT", src);
    this.parent(dst);
    // As realDisk.copy: a temp file in the target's directory, its data fsynced, then linked.
    const tmp = `${dirname(dst)}/${TEMP_PREFIX}sim-${++this.tmp}`;
    const f = await this.openAppend(tmp);
    try {
      await f.write([s.data.slice()]);
      await f.sync();
      return await this.link(tmp, dst);
    } finally {
      if (!this.dead) await this.unlink(tmp);
    }
  }

  async rename(src: string, dst: string): Promise<void> {
    await this.lag(false, "rename", dst);
    const sp = this.parent(src);
    const id = sp.entries.get(basename(src));
    if (id === undefined) throw fsError("ENOENT", src);
    const dp = this.parent(dst);
    this.step(dst);
    sp.entries.delete(basename(src));
    dp.entries.set(basename(dst), id);
  }

  async unlink(path: string): Promise<void> {
    await this.lag(false, "unlink", path);
    const p = this.lookup(dirname(path));
    if (!p?.dir || !p.entries.has(basename(path))) return;
    this.step(path);
    const id = p.entries.get(basename(path))!;
    p.entries.delete(basename(path));
    const n = this.inodes.get(id);
    if (n) n.ctimeMs = Date.now();
  }

  async removeTree(path: string): Promise<void> {
    await this.lag(false, "removeTree", path);
    const p = this.lookup(dirname(path));
    if (!p?.dir || !p.entries.has(basename(path))) return;
    this.step(path);
    p.entries.delete(basename(path));
  }

  async syncDir(path: string): Promise<void> {
    await this.lag(true, "syncDir", path);
    const n = this.lookup(path);
    if (!n?.dir) throw fsError("ENOENT", path);
    this.step(path, `syncDir(${n.id})`);
    this.counts.dirSyncs++;
    n.syncedEntries = new Map(n.entries);
  }

  async writeAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
    const tmp = `${dirname(path)}/${TEMP_PREFIX}sim-${++this.tmp}`;
    if (this.lookup(tmp)) throw fsError("EEXIST", tmp); // the real one opens with "w"; names never repeat here
    const f = await this.openAppend(tmp);
    await f.write([typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes]);
    await f.sync();
    await this.rename(tmp, path);
    await this.syncDir(dirname(path));
  }

  /** Creates `path` and makes it durable at once (a mount point that exists before the test). */
  async mountPoint(path: string): Promise<void> {
    await this.mkdirp(path);
    const parts = path.split("/").filter(Boolean);
    for (let i = 0; i <= parts.length; i++) await this.syncDir(`/${parts.slice(0, i).join("/")}`);
  }

  /**
   * The disk after a power loss. Without `random`: only what was durable, reachable from the
   * root. With it: what was durable, and each change that was not, kept or lost at random
   * (see the module comment).
   */
  survivors(random?: () => number): SimDisk {
    const next = new SimDisk();
    next.inodes.clear();
    const pick = <T>(options: T[]): T => options[Math.floor(random!() * options.length)]!;
    const copy = (id: number): void => {
      if (next.inodes.has(id)) return;
      const old = this.inodes.get(id)!;
      const entries = old.dir ? new Map(old.syncedEntries) : new Map<string, number>();
      let data = old.synced.slice();
      if (random && old.dir) {
        for (const name of new Set([...old.entries.keys(), ...old.syncedEntries.keys()])) {
          const now = old.entries.get(name);
          if (now === old.syncedEntries.get(name) || random() < 0.5) continue;
          if (now === undefined) entries.delete(name);
          else entries.set(name, now);
        }
      } else if (random && !sameBytes(old.data, old.synced)) {
        // what the last fsync made durable and the current bytes still share is kept in every case
        let common = 0;
        while (common < Math.min(old.data.byteLength, old.synced.byteLength) && old.data[common] === old.synced[common]) common++;
        const zeros = new Uint8Array(old.data.byteLength);
        zeros.set(old.data.subarray(0, common));
        const short = old.data.slice(0, common + Math.floor(random() * (old.data.byteLength - common + 1)));
        data = pick([old.synced, old.data, short, zeros]).slice();
      }
      const inode: Inode = { id, dir: old.dir, data, synced: data.slice(), entries, syncedEntries: new Map(entries), mtimeMs: old.mtimeMs, ctimeMs: old.ctimeMs };
      next.inodes.set(id, inode);
      for (const child of entries.values()) copy(child);
    };
    copy(1);
    next.nextId = this.nextId;
    next.tmp = this.tmp;
    next.links = this.links;
    for (const path of this.readOnly) next.readOnly.add(path);
    return next;
  }

  /** Every file path under `dir`, recursively. */
  files(dir: string): string[] {
    const out: string[] = [];
    const walk = (path: string) => {
      const n = this.lookup(path);
      if (!n) return;
      if (!n.dir) return void out.push(path);
      for (const name of n.entries.keys()) walk(`${path}/${name}`);
    };
    walk(dir);
    return out;
  }
}
