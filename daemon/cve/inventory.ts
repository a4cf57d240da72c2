/**
 * The package inventory of an image, read from its layers in order without extracting
 * them: each layer is streamed through the tar reader, which keeps only the package
 * databases and os-release (each with a bound), and whiteouts are applied across layers as
 * the OCI image spec's layer rules say: a `.wh.<name>` entry deletes `<name>` (and
 * everything under it) from the layers below, and `.wh..wh..opq` in a directory hides
 * everything the layers below put in that directory. A file a layer adds replaces the one
 * below; a layer that puts a directory or a link where a kept file was also hides it.
 */
import { decompressedLayer, readTar, type TarEntry } from "./tar";
import { parseApkInstalled, parseDpkgStatus, parseOsRelease, parseRpmSqlite, type InstalledPackage, type OsRelease } from "./packages";

/** Largest text package database or os-release kept (bytes). */
export const MAX_TEXT_DB = 16 << 20;
/** Largest rpm sqlite database kept (bytes); it is read into memory to be opened. */
export const MAX_RPM_DB = 48 << 20;
/** Most status.d files kept. */
const MAX_STATUS_D = 20_000;

const RPM_DBS = ["var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite"];

/** How many bytes of `path` the scanner keeps, or false when it does not want the file. */
export function wanted(path: string): number | false {
  if (path === "var/lib/dpkg/status" || path === "lib/apk/db/installed" || path === "etc/os-release" || path === "usr/lib/os-release") return MAX_TEXT_DB;
  if (path.startsWith("var/lib/dpkg/status.d/")) {
    const rest = path.slice("var/lib/dpkg/status.d/".length);
    return rest && !rest.includes("/") && !rest.endsWith(".md5sums") ? 1 << 20 : false;
  }
  if (RPM_DBS.includes(path)) return MAX_RPM_DB;
  return false;
}

/** The files kept so far, as the merged view of the layers read. */
export class LayerView {
  readonly files = new Map<string, Uint8Array>();

  /** Reads one layer (an uncompressed or compressed tar stream) on top of the view. */
  async apply(layer: ReadableStream<Uint8Array>, signal?: AbortSignal): Promise<void> {
    const added = new Map<string, Uint8Array>();
    const removed: string[] = [];
    const opaque: string[] = [];
    const choose = (e: TarEntry): number | false => {
      const slash = e.path.lastIndexOf("/");
      const base = e.path.slice(slash + 1);
      if (base.startsWith(".wh.")) return 0; // whiteouts: kept (they have no content)
      if (e.type !== "file") return this.files.has(e.path) || added.has(e.path) ? 0 : false;
      return wanted(e.path);
    };
    await readTar(decompressedLayer(layer), choose, (e, content) => {
      const slash = e.path.lastIndexOf("/");
      const dir = slash >= 0 ? e.path.slice(0, slash) : "";
      const base = e.path.slice(slash + 1);
      if (base === ".wh..wh..opq") opaque.push(dir);
      else if (base.startsWith(".wh.")) removed.push(dir ? `${dir}/${base.slice(4)}` : base.slice(4));
      else if (content) {
        if (e.path.startsWith("var/lib/dpkg/status.d/") && added.size + this.files.size > MAX_STATUS_D) return;
        added.set(e.path, content);
      } else {
        // a directory or link over a kept file hides it
        added.delete(e.path);
        removed.push(e.path);
      }
    }, signal);
    const under = (p: string, root: string) => root === "" || p === root || p.startsWith(`${root}/`);
    for (const path of [...this.files.keys()]) {
      if (removed.some((r) => under(path, r)) || opaque.some((d) => path !== d && under(path, d))) this.files.delete(path);
    }
    for (const [path, content] of added) this.files.set(path, content);
  }

  /** The inventory of the view: OS and packages. */
  inventory(): Inventory {
    const os = this.files.get("etc/os-release") ?? this.files.get("usr/lib/os-release");
    const packages: InstalledPackage[] = [];
    const errors: string[] = [];
    const dpkg = this.files.get("var/lib/dpkg/status");
    if (dpkg) packages.push(...parseDpkgStatus(dpkg));
    for (const [path, content] of this.files) if (path.startsWith("var/lib/dpkg/status.d/")) packages.push(...parseDpkgStatus(content, false));
    const apk = this.files.get("lib/apk/db/installed");
    if (apk) packages.push(...parseApkInstalled(apk));
    for (const p of RPM_DBS) {
      const rpm = this.files.get(p);
      if (!rpm) continue;
      try {
        packages.push(...parseRpmSqlite(rpm));
      } catch (err) {
        errors.push((err as Error).message);
      }
      break;
    }
    return { os: os ? parseOsRelease(os) : undefined, packages, errors };
  }
}

/** What an image holds. */
export interface Inventory {
  os: OsRelease | undefined;
  packages: InstalledPackage[];
  /** Package databases found but unreadable (the rest of the inventory still stands). */
  errors: string[];
}

/** Reads `layers` (bottom first) and returns the image's inventory. */
export async function inventoryOf(layers: Iterable<() => Promise<ReadableStream<Uint8Array>>> | AsyncIterable<() => Promise<ReadableStream<Uint8Array>>>, signal?: AbortSignal): Promise<Inventory> {
  const view = new LayerView();
  for await (const open of layers) await view.apply(await open(), signal);
  return view.inventory();
}
