/**
 * The package databases an image carries, parsed from the bytes the layer reader kept:
 * dpkg's status file (and the one-paragraph files of status.d that distroless images use),
 * apk's installed database, rpm's sqlite database (each row an RPM header blob), and
 * os-release. Pure functions over bytes; nothing here reads a file.
 */
import { openSnapshot, type SqlDatabase } from "../platform/sqlite";
import type { VersionFormat } from "./versions";

/** One installed package. */
export interface InstalledPackage {
  name: string;
  /** The full version as the format writes it (rpm: [epoch:]version-release). */
  version: string;
  format: VersionFormat;
  arch?: string;
  /** The source package (dpkg Source, apk origin, rpm source rpm's name) when it differs. */
  source?: string;
  /** The source package's version when the database gives one of its own. */
  sourceVersion?: string;
}

/** The fields of os-release the matcher needs. */
export interface OsRelease {
  id: string;
  versionId: string;
  codename: string;
  idLike: string[];
  prettyName: string;
}

const decoder = new TextDecoder();

/** Splits an RFC 822-like control file into paragraphs of field → value. */
function paragraphs(text: string, sep = ":"): Map<string, string>[] {
  const out: Map<string, string>[] = [];
  let cur = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split("\n")) {
    if (line.trim() === "") {
      if (cur.size) out.push(cur);
      cur = new Map();
      last = undefined;
      continue;
    }
    if ((line[0] === " " || line[0] === "\t") && last) {
      cur.set(last, `${cur.get(last)}\n${line.trim()}`);
      continue;
    }
    const i = line.indexOf(sep);
    if (i <= 0) continue;
    last = line.slice(0, i);
    cur.set(last, line.slice(i + 1).trim());
  }
  if (cur.size) out.push(cur);
  return out;
}

/**
 * Packages of a dpkg status file: only paragraphs whose Status says installed (status.d
 * files have no Status field and list installed packages only). `Source: name (version)`
 * gives the source package and its own version.
 */
export function parseDpkgStatus(bytes: Uint8Array, requireStatus = true): InstalledPackage[] {
  const out: InstalledPackage[] = [];
  for (const p of paragraphs(decoder.decode(bytes))) {
    const name = p.get("Package");
    const version = p.get("Version");
    if (!name || !version) continue;
    const status = p.get("Status");
    if (status !== undefined ? !/\binstalled$/.test(status) || /not-installed|config-files/.test(status) : requireStatus) continue;
    const pkg: InstalledPackage = { name, version, format: "dpkg" };
    const arch = p.get("Architecture");
    if (arch) pkg.arch = arch;
    const source = p.get("Source");
    if (source) {
      const m = /^(\S+)(?:\s*\(([^)]+)\))?/.exec(source);
      if (m && m[1] !== name) pkg.source = m[1]!;
      if (m?.[2]) pkg.sourceVersion = m[2];
    }
    out.push(pkg);
  }
  return out;
}

/** Packages of apk's installed database (`P:` name, `V:` version, `A:` arch, `o:` origin). */
export function parseApkInstalled(bytes: Uint8Array): InstalledPackage[] {
  const out: InstalledPackage[] = [];
  for (const p of paragraphs(decoder.decode(bytes))) {
    const name = p.get("P");
    const version = p.get("V");
    if (!name || !version) continue;
    const pkg: InstalledPackage = { name, version, format: "apk" };
    const arch = p.get("A");
    if (arch) pkg.arch = arch;
    const origin = p.get("o");
    if (origin && origin !== name) pkg.source = origin;
    out.push(pkg);
  }
  return out;
}

/** The RPM header tags read (rpmtag.h numbering). */
export const RPMTAG = { NAME: 1000, VERSION: 1001, RELEASE: 1002, EPOCH: 1003, ARCH: 1022, SOURCERPM: 1044 } as const;

/**
 * Reads the tags above from one RPM header blob as rpm stores it in its database: a count
 * of index entries and of data bytes (big-endian 32-bit each), the 16-byte index entries
 * (tag, type, offset, count), then the data store. Strings are NUL-terminated; EPOCH is an
 * INT32. Returns undefined for a blob that does not hold together.
 */
export function parseRpmHeader(blob: Uint8Array): Record<number, string | number> | undefined {
  if (blob.byteLength < 8) return undefined;
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const il = view.getUint32(0);
  const dl = view.getUint32(4);
  const dataStart = 8 + il * 16;
  if (il > 100_000 || dataStart + dl > blob.byteLength) return undefined;
  const wanted = new Set<number>(Object.values(RPMTAG));
  const out: Record<number, string | number> = {};
  for (let i = 0; i < il; i++) {
    const at = 8 + i * 16;
    const tag = view.getInt32(at);
    if (!wanted.has(tag)) continue;
    const type = view.getUint32(at + 4);
    const offset = view.getInt32(at + 8);
    if (offset < 0 || offset >= dl) return undefined;
    const start = dataStart + offset;
    if (type === 4) {
      if (offset + 4 > dl) return undefined;
      out[tag] = view.getInt32(start);
    } else if (type === 6 || type === 8 || type === 9) {
      let end = start;
      while (end < dataStart + dl && blob[end] !== 0) end++;
      out[tag] = decoder.decode(blob.subarray(start, end));
    }
  }
  return out;
}

/** The source package name from a source rpm file name (`name-version-release.src.rpm`). */
function sourceName(srpm: string): string | undefined {
  const m = /^(.+)-[^-]+-[^-]+\.(?:no)?src\.rpm$/.exec(srpm);
  return m?.[1];
}

/**
 * Packages of rpm's sqlite database (`Packages` table, one header blob per row), opened
 * from memory. gpg-pubkey pseudo-packages are left out.
 */
export function parseRpmSqlite(bytes: Uint8Array): InstalledPackage[] {
  let db: SqlDatabase;
  try {
    // a database in WAL mode (header bytes 18 and 19 = 2) cannot open from memory; the
    // image's copy is checkpointed, so read it as a rollback-journal database
    if (bytes.byteLength > 100 && bytes[18] === 2 && bytes[19] === 2) bytes[18] = bytes[19] = 1;
    db = openSnapshot(bytes);
  } catch (err) {
    throw new Error(`the rpm database is not a sqlite database: ${(err as Error).message}`);
  }
  try {
    const out: InstalledPackage[] = [];
    const rows = db.prepare<{ blob: Uint8Array }>("SELECT blob FROM Packages").all();
    for (const { blob } of rows) {
      const h = parseRpmHeader(blob);
      if (!h) continue;
      const name = h[RPMTAG.NAME];
      const version = h[RPMTAG.VERSION];
      const release = h[RPMTAG.RELEASE];
      if (typeof name !== "string" || typeof version !== "string" || name === "gpg-pubkey") continue;
      const epoch = h[RPMTAG.EPOCH];
      const full = `${typeof epoch === "number" && epoch > 0 ? `${epoch}:` : ""}${version}${typeof release === "string" ? `-${release}` : ""}`;
      const pkg: InstalledPackage = { name, version: full, format: "rpm" };
      const arch = h[RPMTAG.ARCH];
      if (typeof arch === "string") pkg.arch = arch;
      const srpm = h[RPMTAG.SOURCERPM];
      const src = typeof srpm === "string" ? sourceName(srpm) : undefined;
      if (src && src !== name) pkg.source = src;
      out.push(pkg);
    }
    return out;
  } catch (err) {
    throw new Error(`the rpm database cannot be read: ${(err as Error).message}`);
  } finally {
    db.close();
  }
}

/** The os-release fields (shell-style KEY=value, values optionally quoted). */
export function parseOsRelease(bytes: Uint8Array): OsRelease {
  const fields = new Map<string, string>();
  for (const line of decoder.decode(bytes).split("\n")) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let v = m[2]!.trim();
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    fields.set(m[1]!, v.replace(/\\(.)/g, "$1"));
  }
  return {
    id: (fields.get("ID") ?? "").toLowerCase(),
    versionId: fields.get("VERSION_ID") ?? "",
    codename: fields.get("VERSION_CODENAME") ?? "",
    idLike: (fields.get("ID_LIKE") ?? "").toLowerCase().split(/\s+/).filter(Boolean),
    prettyName: fields.get("PRETTY_NAME") ?? "",
  };
}
