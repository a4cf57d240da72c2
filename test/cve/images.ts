/**
 * Test images for the scanner: OCI layouts built with umoci from real package databases
 * (this machine's dpkg status, an apk installed database, an rpm sqlite database whose rows
 * are RPM header blobs built here from the header format), and a reader that streams their
 * layers the way the scanner reads blobs.
 */
import { Database } from "bun:sqlite";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { runOk } from "../helpers/clients";

const EPOCH = "1970-01-01T00:00:00Z";

/** One step of an image: a layer adding files, or whiting out / making a directory opaque. */
export type Step =
  | { files: Record<string, string | Uint8Array> }
  | { whiteout: string }
  | { opaque: string; files: Record<string, string | Uint8Array> };

/** Builds `layout:tag` with one layer per step (umoci). Returns the layer digests bottom first. */
export async function buildImage(work: string, layout: string, steps: Step[], tag = "v1"): Promise<string[]> {
  await runOk(["umoci", "init", "--layout", layout]);
  await runOk(["umoci", "new", "--image", `${layout}:${tag}`]);
  await runOk(["umoci", "config", "--image", `${layout}:${tag}`, "--created", EPOCH, "--history.created", EPOCH, "--os", "linux", "--architecture", "amd64"]);
  let n = 0;
  for (const step of steps) {
    if ("whiteout" in step) {
      await runOk(["umoci", "insert", "--image", `${layout}:${tag}`, "--history.created", EPOCH, "--whiteout", step.whiteout]);
      continue;
    }
    const src = join(work, `step${n++}`);
    const base = "opaque" in step ? join(src, step.opaque) : src;
    mkdirSync(base, { recursive: true });
    for (const [path, content] of Object.entries(step.files)) {
      const file = join(base, path);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, content);
    }
    if ("opaque" in step) await runOk(["umoci", "insert", "--image", `${layout}:${tag}`, "--history.created", EPOCH, "--opaque", base, `/${step.opaque}`]);
    else await runOk(["umoci", "insert", "--image", `${layout}:${tag}`, "--history.created", EPOCH, src, "/"]);
  }
  return layersOf(layout, tag);
}

/** The layer digests of `layout:tag`, bottom first. */
export function layersOf(layout: string, tag = "v1"): string[] {
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const d = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag)!;
  const manifest = JSON.parse(readFileSync(blobPath(layout, d.digest), "utf8")) as { layers: { digest: string }[] };
  return manifest.layers.map((l) => l.digest);
}

/** The file of a blob of a layout. */
export function blobPath(layout: string, digest: string): string {
  const [alg, hex] = digest.split(":");
  return join(layout, "blobs", alg!, hex!);
}

/** Openers of the layers of `layout:tag` as streams. */
export function layerStreams(layout: string, tag = "v1"): (() => Promise<ReadableStream<Uint8Array>>)[] {
  return layersOf(layout, tag).map((d) => async () => Bun.file(blobPath(layout, d)).stream() as ReadableStream<Uint8Array>);
}

/** An apk installed database in apk's own format (two packages, one with an origin). */
export const APK_INSTALLED = `C:Q1abc=
P:musl
V:1.2.4-r2
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>

C:Q1def=
P:libssl3
V:3.1.4-r0
A:x86_64
o:openssl
m:Ariadne Conaway <ariadne@dereferenced.org>

C:Q1ghi=
P:busybox
V:1.36.1-r5
A:x86_64
o:busybox
`;

/** rpm header tag types (rpmtag.h). */
const INT32 = 4;
const STRING = 6;
const BIN = 7;

/**
 * One RPM header blob as rpm writes it into its database: the entry and data counts, a
 * region entry (HEADERIMMUTABLE, tag 63) first, the tag entries sorted by tag, then the
 * data store with INT32 values 4-aligned and strings NUL-terminated, and the region
 * trailer at the end of the data.
 */
export function rpmHeaderBlob(tags: Record<number, string | number>): Uint8Array {
  const entries: { tag: number; type: number; offset: number; count: number }[] = [];
  const data: number[] = [];
  const enc = new TextEncoder();
  for (const tag of Object.keys(tags).map(Number).sort((a, b) => a - b)) {
    const v = tags[tag]!;
    if (typeof v === "number") {
      while (data.length % 4) data.push(0);
      entries.push({ tag, type: INT32, offset: data.length, count: 1 });
      data.push((v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
    } else {
      entries.push({ tag, type: STRING, offset: data.length, count: 1 });
      data.push(...enc.encode(v), 0);
    }
  }
  const il = entries.length + 1;
  const trailerAt = data.length;
  // region trailer: tag 63, BIN, offset = -(il * 16), count 16
  const trailer = new DataView(new ArrayBuffer(16));
  trailer.setInt32(0, 63);
  trailer.setUint32(4, BIN);
  trailer.setInt32(8, -(il * 16));
  trailer.setUint32(12, 16);
  data.push(...new Uint8Array(trailer.buffer));
  const out = new Uint8Array(8 + il * 16 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, il);
  view.setUint32(4, data.length);
  const all = [{ tag: 63, type: BIN, offset: trailerAt, count: 16 }, ...entries];
  all.forEach((e, i) => {
    view.setInt32(8 + i * 16, e.tag);
    view.setUint32(12 + i * 16, e.type);
    view.setInt32(16 + i * 16, e.offset);
    view.setUint32(20 + i * 16, e.count);
  });
  out.set(data, 8 + il * 16);
  return out;
}

/** An rpm sqlite database (rpm >= 4.16 layout: `Packages(hnum, blob)` plus a `Name` index table). */
export function rpmSqlite(pkgs: { name: string; version: string; release: string; epoch?: number; arch?: string; srpm?: string }[]): Uint8Array {
  const db = new Database(":memory:");
  db.exec("CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)");
  db.exec("CREATE TABLE 'Name' (key TEXT NOT NULL, hnum INTEGER NOT NULL, idx INTEGER NOT NULL, FOREIGN KEY (hnum) REFERENCES 'Packages'(hnum))");
  for (const p of pkgs) {
    const tags: Record<number, string | number> = { 1000: p.name, 1001: p.version, 1002: p.release, 1022: p.arch ?? "x86_64" };
    if (p.epoch !== undefined) tags[1003] = p.epoch;
    if (p.srpm) tags[1044] = p.srpm;
    const { lastInsertRowid } = db.prepare("INSERT INTO Packages (blob) VALUES (?)").run(rpmHeaderBlob(tags));
    db.prepare("INSERT INTO Name VALUES (?, ?, 0)").run(p.name, lastInsertRowid);
  }
  db.prepare("INSERT INTO Packages (blob) VALUES (?)").run(rpmHeaderBlob({ 1000: "gpg-pubkey", 1001: "fd431d51", 1002: "4ae0493b" }));
  const bytes = db.serialize();
  db.close();
  return bytes;
}
