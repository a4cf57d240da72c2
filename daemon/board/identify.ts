/**
 * Identifying the board cheaply and synchronously from /proc and /sys (used at start-up for
 * `[board] profile = "auto"`): the device-tree model, the CPU architecture, the memory, and
 * the block device holding a path (and whether it is an SD card). No processes are spawned.
 */
import { existsSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { arch, totalmem } from "node:os";
import { basename, dirname, resolve } from "node:path";

/** What identifies a board. */
export interface Identity {
  /** Device-tree model ("Raspberry Pi 4 Model B Rev 1.4"); "" where there is no device tree (x64). */
  model: string;
  /** Node's architecture name: "arm64", "x64", "arm", ... */
  arch: string;
  memoryBytes: number;
}

/** Reads a text file, or "" when it cannot be read. NUL bytes (device tree strings) are dropped. */
export function readText(path: string): string {
  try {
    return readFileSync(path, "utf8").replaceAll("\0", "").trim();
  } catch {
    return "";
  }
}

/** The running machine's identity. */
export function identifyBoard(): Identity {
  const model = readText("/proc/device-tree/model") || readText("/sys/firmware/devicetree/base/model");
  return { model, arch: arch(), memoryBytes: totalmem() };
}

/** The block device holding a path. */
export interface BlockDevice {
  /** Partition or device name ("mmcblk0p2", "sda1", "nvme0n1p1"); "" when not a block device (overlay, tmpfs). */
  name: string;
  /** The whole disk ("mmcblk0", "sda"); equals name when not partitioned. */
  disk: string;
  /** "sd" (SD card), "emmc", "nvme", "rotational", "ssd", or "unknown". */
  kind: "sd" | "emmc" | "nvme" | "rotational" | "ssd" | "unknown";
  /** "major:minor" of the file system's device. */
  devno: string;
}

/** Finds the block device under `path` (its nearest existing ancestor when it does not exist yet). */
export function blockDeviceOf(path: string): BlockDevice {
  let p = resolve(path);
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  const dev = statSync(p).dev;
  const major = Number((BigInt(dev) >> 8n) & 0xfffn) | Number((BigInt(dev) >> 32n) & ~0xfffn);
  const minor = Number(BigInt(dev) & 0xffn) | Number((BigInt(dev) >> 12n) & ~0xffn);
  const devno = `${major}:${minor}`;
  let target = "";
  try {
    target = readlinkSync(`/sys/dev/block/${devno}`);
  } catch {
    return { name: "", disk: "", kind: "unknown", devno };
  }
  const name = basename(target);
  const parent = basename(dirname(target));
  const disk = existsSync(`/sys/dev/block/${devno}/partition`) ? parent : name;
  return { name, disk, kind: diskKind(disk), devno };
}

function diskKind(disk: string): BlockDevice["kind"] {
  if (disk.startsWith("mmcblk")) {
    const type = readText(`/sys/block/${disk}/device/type`);
    if (type === "SD") return "sd";
    if (type === "MMC") return "emmc";
    return "unknown";
  }
  if (disk.startsWith("nvme")) return "nvme";
  const rotational = readText(`/sys/block/${disk}/queue/rotational`);
  if (rotational === "1") return "rotational";
  if (rotational === "0") return "ssd";
  return "unknown";
}
