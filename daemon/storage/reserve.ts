/**
 * The reserve file, `<root>/.berth/reserve`: a few hundred KiB to a few MiB of zeros kept on
 * disk so that a full file system (filled by berth or by anything else) can still take the
 * writes that free space. A delete rewrites index.json through a temp file and records the
 * change in meta.db; both need a little room before anything is freed. When such a write
 * finds the disk full, the reserve is released (unlinked, which frees its blocks at once)
 * and the write tried again. The file is made again once there is room, before any upload
 * bytes are admitted, so pushes never eat into it.
 *
 * Size: 1% of the file system, at least 256 KiB and at most 8 MiB; enough for the
 * index.json of a repository with thousands of tags and the WAL pages of the change.
 */
import { join } from "node:path";
import type { Disk } from "../platform/disk";
import type { Logger } from "../log";
import { isNoSpace } from "./errors";

const MIN_BYTES = 256 * 1024;
const MAX_BYTES = 8 * 1024 * 1024;
/** How often a missing reserve is tried again (it is tried before upload bytes are admitted). */
const RETRY_MS = 5_000;

/** The size of the reserve for a file system of `total` bytes. */
export function reserveBytes(total: number): number {
  return Math.min(MAX_BYTES, Math.max(MIN_BYTES, Math.floor(total / 100 / 4096) * 4096));
}

/** Keeps and spends the reserve file of one root. */
export class Reserve {
  readonly path: string;
  private present: boolean | undefined;
  private lastTry = 0;
  /** Times the reserve was released for a write that frees space. */
  released = 0;

  constructor(
    internalDir: string,
    private readonly disk: Disk,
    private readonly space: () => { free: number; total: number },
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.path = join(internalDir, "reserve");
  }

  /**
   * Makes the reserve file if it is missing and the disk has room for it with as much again
   * to spare; never fails (a full disk simply leaves it missing until the next try). Cheap
   * when the file is there: no system call. Tries at most every few seconds.
   */
  async restore(): Promise<void> {
    if (this.present === true) return;
    const t = this.now();
    if (this.present === false && t - this.lastTry < RETRY_MS) return;
    this.lastTry = t;
    try {
      const { free, total } = this.space();
      const size = reserveBytes(total);
      const info = this.disk.stat(this.path);
      if (info?.isFile && info.size >= size) {
        this.present = true;
        return;
      }
      if (free < 2 * size + (info?.size ?? 0)) {
        this.present = false;
        return;
      }
      // Not synced: after a power cut a lost or short reserve is simply made again.
      const tmp = `${this.path}.new`;
      await this.disk.unlink(tmp);
      const file = await this.disk.openAppend(tmp);
      try {
        await file.write([new Uint8Array(size)]);
      } finally {
        await file.close();
      }
      await this.disk.rename(tmp, this.path);
      this.present = true;
    } catch (err) {
      this.present = false;
      await this.disk.unlink(`${this.path}.new`).catch(() => {});
      if (!isNoSpace(err)) this.log.warn("the reserve file could not be made", { path: this.path, error: String(err) });
    }
  }

  /** Unlinks the reserve to make room for a write that frees space; false when there was none. */
  async release(): Promise<boolean> {
    if (!this.disk.stat(this.path)) {
      this.present = false;
      return false;
    }
    await this.disk.unlink(this.path);
    this.present = false;
    this.lastTry = this.now();
    this.released++;
    this.log.warn("the disk is full: released the reserve file for a write that frees space; it is made again once there is room", { path: this.path });
    return true;
  }
}
