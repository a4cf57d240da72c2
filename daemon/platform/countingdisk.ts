/**
 * A {@link Disk} that counts what goes through it: bytes written (file data, atomic
 * replacements, copies) and operations (writes, fsyncs of files and directories, links,
 * renames, unlinks, directory creations, tree removals). It is berth's own write
 * accounting, beside the kernel's /proc/self/io, for the flash write budget. SQLite's
 * writes to meta.db do not pass through here; /proc/self/io covers them.
 */
import type { AppendFile, Disk } from "./disk";

/** Counters of one {@link countingDisk}. */
export interface DiskCounters {
  bytesWritten: number;
  writes: number;
  fileSyncs: number;
  dirSyncs: number;
  links: number;
  renames: number;
  unlinks: number;
  mkdirs: number;
  removeTrees: number;
  copies: number;
}

/**
 * Wraps `inner`, counting into the returned `counters`. `onReplace` is told the size of each
 * atomic replacement (index.json and the like, built whole in memory before the write): the
 * memory governor counts them as it counts request bodies, since a busy repository's
 * rewrites of a large index.json churn more memory than the small pushes that cause them.
 */
export function countingDisk(inner: Disk, onReplace?: (bytes: number) => void): { disk: Disk; counters: DiskCounters } {
  const c: DiskCounters = { bytesWritten: 0, writes: 0, fileSyncs: 0, dirSyncs: 0, links: 0, renames: 0, unlinks: 0, mkdirs: 0, removeTrees: 0, copies: 0 };
  const disk: Disk = {
    stat: (p) => inner.stat(p),
    readFile: (p) => inner.readFile(p),
    readdir: (p) => inner.readdir(p),
    mkdirp: (p) => (c.mkdirs++, inner.mkdirp(p)),
    async openAppend(path) {
      const f = await inner.openAppend(path);
      const wrapped: AppendFile = {
        async write(chunks) {
          await f.write(chunks);
          c.writes++;
          for (const ch of chunks) c.bytesWritten += ch.byteLength;
        },
        truncate: (n) => f.truncate(n),
        sync: () => (c.fileSyncs++, f.sync()),
        close: () => f.close(),
      };
      return wrapped;
    },
    link: (s, d) => (c.links++, inner.link(s, d)),
    async copy(s, d) {
      c.copies++;
      const made = await inner.copy(s, d);
      if (made) c.bytesWritten += inner.stat(d)?.size ?? 0;
      return made;
    },
    rename: (s, d) => (c.renames++, inner.rename(s, d)),
    unlink: (p) => (c.unlinks++, inner.unlink(p)),
    removeTree: (p) => (c.removeTrees++, inner.removeTree(p)),
    syncDir: (p) => (c.dirSyncs++, inner.syncDir(p)),
    async writeAtomic(path, bytes) {
      await inner.writeAtomic(path, bytes);
      c.writes++;
      c.fileSyncs++;
      c.renames++;
      c.dirSyncs++;
      const size = typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.byteLength;
      c.bytesWritten += size;
      onReplace?.(size);
    },
  };
  return { disk, counters: c };
}
