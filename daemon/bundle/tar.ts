/**
 * The tar container of a bundle (POSIX ustar, with pax extended headers for long names and
 * sizes of 8 GiB and more), written and read with bounded memory:
 * - {@link TarWriter} appends entries to a file; an entry's bytes come as a stream of
 *   chunks and are written as they arrive, so a blob is never whole in memory;
 * - {@link scanTar} reads the headers only, seeking past every entry's data, and answers
 *   where each file's bytes lie in the archive, so an importer reads any entry by range in
 *   any order (index.json first, then the manifests, then the blobs) without unpacking.
 * A truncated archive (an entry's data or the two closing zero blocks missing) and a damaged
 * header (bad checksum) are errors naming the entry and the offset.
 */
import { open, type FileHandle } from "node:fs/promises";

const BLOCK = 512;
const ZERO = new Uint8Array(BLOCK * 2);

/** Where one regular file's bytes are in an archive. */
export interface TarEntry {
  name: string;
  /** Byte offset of the data in the archive file. */
  offset: number;
  size: number;
}

/** A damaged or truncated archive (the message says where). */
export class TarError extends Error {}

function octal(buf: Uint8Array, at: number, width: number, value: number): void {
  const text = value.toString(8).padStart(width - 1, "0");
  for (let i = 0; i < width - 1; i++) buf[at + i] = text.charCodeAt(i);
  buf[at + width - 1] = 0;
}

function ascii(buf: Uint8Array, at: number, width: number, text: string): void {
  const bytes = new TextEncoder().encode(text);
  buf.set(bytes.subarray(0, width), at);
}

/** One 512-byte header block (type "0" a file, "5" a directory, "x" pax attributes). */
function header(name: string, size: number, type: string, mode: number): Uint8Array {
  const h = new Uint8Array(BLOCK);
  ascii(h, 0, 100, name);
  octal(h, 100, 8, mode);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, Math.min(size, 0o77777777777));
  octal(h, 136, 12, 0);
  h.fill(0x20, 148, 156);
  h[156] = type.charCodeAt(0);
  ascii(h, 257, 6, "ustar");
  ascii(h, 263, 2, "00");
  let sum = 0;
  for (const b of h) sum += b;
  octal(h, 148, 7, sum);
  h[155] = 0x20;
  return h;
}

/** A pax record "LEN key=value\n" (LEN counts itself). */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/** Writes an archive to a new file, entry by entry. */
export class TarWriter {
  private written = 0;
  private constructor(private readonly fh: FileHandle) {}

  /** Creates (truncates) `path` for writing. */
  static async create(path: string): Promise<TarWriter> {
    return new TarWriter(await open(path, "w", 0o644));
  }

  /** Bytes written so far. */
  get size(): number {
    return this.written;
  }

  private async put(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      const { bytesWritten } = await this.fh.write(bytes, at, bytes.length - at);
      at += bytesWritten;
    }
    this.written += bytes.length;
  }

  private async headers(name: string, size: number, type: string, mode: number): Promise<void> {
    const pax: string[] = [];
    if (Buffer.byteLength(name) > 99) pax.push(paxRecord("path", name));
    if (size > 0o77777777777) pax.push(paxRecord("size", String(size)));
    if (pax.length > 0) {
      const body = new TextEncoder().encode(pax.join(""));
      await this.put(header("PaxHeader", body.length, "x", 0o644));
      await this.put(body);
      await this.pad(body.length);
    }
    await this.put(header(name.slice(0, 99), size, type, mode));
  }

  private async pad(size: number): Promise<void> {
    const rest = size % BLOCK;
    if (rest) await this.put(new Uint8Array(BLOCK - rest));
  }

  /** A directory entry (`name` ends with "/"). */
  async directory(name: string): Promise<void> {
    await this.headers(name, 0, "5", 0o755);
  }

  /**
   * A file of exactly `size` bytes, from `chunks`; throws (the archive is then unusable)
   * when they add up to anything else.
   */
  async file(name: string, size: number, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    await this.headers(name, size, "0", 0o644);
    let n = 0;
    for await (const chunk of chunks) {
      n += chunk.length;
      if (n > size) throw new TarError(`"${name}" has more than the ${size} bytes announced`);
      await this.put(chunk);
    }
    if (n !== size) throw new TarError(`"${name}" has ${n} bytes, not the ${size} announced`);
    await this.pad(size);
  }

  /** Writes the closing blocks, flushes to disk and closes the file. */
  async close(): Promise<void> {
    await this.put(ZERO);
    await this.fh.sync();
    await this.fh.close();
  }

  /** Closes the file without finishing the archive (after a failure). */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}

function readOctal(h: Uint8Array, at: number, width: number): number {
  if (h[at]! & 0x80) {
    // base-256 (GNU) for large values
    let v = 0;
    for (let i = at + 1; i < at + width; i++) v = v * 256 + h[i]!;
    return v;
  }
  const text = new TextDecoder().decode(h.subarray(at, at + width)).replace(/[\0 ]+$/g, "").trim();
  return text === "" ? 0 : parseInt(text, 8);
}

function readString(h: Uint8Array, at: number, width: number): string {
  const end = h.subarray(at, at + width).indexOf(0);
  return new TextDecoder().decode(h.subarray(at, end < 0 ? at + width : at + end));
}

function parsePax(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/(\d+) ([^=]+)=([^\n]*)\n/g)) out.set(m[2]!, m[3]!);
  return out;
}

/** Reads `length` bytes at `position` exactly, or throws a TarError (truncated). */
async function readExact(fh: FileHandle, position: number, length: number, what: string): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let at = 0;
  while (at < length) {
    const { bytesRead } = await fh.read(buf, at, length - at, position + at);
    if (bytesRead === 0) throw new TarError(`the archive is truncated: ${what} at byte ${position} is incomplete`);
    at += bytesRead;
  }
  return buf;
}

/**
 * Lists the regular files of the archive at `path` (names without a leading "./"), reading
 * only headers. Throws a {@link TarError} for a truncated or damaged archive.
 */
export async function scanTar(path: string): Promise<Map<string, TarEntry>> {
  const fh = await open(path, "r");
  try {
    const total = (await fh.stat()).size;
    const out = new Map<string, TarEntry>();
    let pos = 0;
    let pax = new Map<string, string>();
    let longName: string | undefined;
    for (let count = 0; ; count++) {
      if (count > 1_000_000) throw new TarError("the archive has more than 1,000,000 entries");
      if (pos + BLOCK > total) {
        throw new TarError(pos >= total ? `the archive is truncated: it ends at byte ${total} without its end-of-archive blocks` : `the archive is truncated: it ends inside the header at byte ${pos}`);
      }
      const h = await readExact(fh, pos, BLOCK, "a header");
      if (h.every((b) => b === 0)) return out;
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
      if (sum !== readOctal(h, 148, 8)) throw new TarError(`the archive is damaged: the header at byte ${pos} has a wrong checksum`);
      const type = String.fromCharCode(h[156]! || 0x30);
      let name = readString(h, 0, 100);
      const prefix = readString(h, 345, 155);
      if (prefix && readString(h, 257, 6) === "ustar") name = `${prefix}/${name}`;
      let size = readOctal(h, 124, 12);
      if (pax.has("size")) size = Number(pax.get("size"));
      if (pax.has("path")) name = pax.get("path")!;
      if (longName !== undefined) name = longName;
      const data = pos + BLOCK;
      const next = data + Math.ceil(size / BLOCK) * BLOCK;
      if (data + size > total) throw new TarError(`the archive is truncated: "${name}" needs ${size} bytes from byte ${data}, the file has ${total}`);
      if (type === "x" || type === "L") {
        if (size > 1 << 20) throw new TarError(`the extended header at byte ${pos} is larger than 1 MiB`);
        const text = new TextDecoder().decode(await readExact(fh, data, size, "an extended header"));
        if (type === "x") pax = parsePax(text);
        else longName = text.replace(/\0+$/, "");
      } else {
        if (type === "0" || type === "7") out.set(name.replace(/^\.\//, ""), { name, offset: data, size });
        pax = new Map();
        longName = undefined;
      }
      pos = next;
    }
  } finally {
    await fh.close();
  }
}

/** Reads one entry whole (small files: index.json, manifests; callers check the size). */
export async function readEntry(path: string, entry: TarEntry): Promise<Uint8Array> {
  const fh = await open(path, "r");
  try {
    return await readExact(fh, entry.offset, entry.size, `"${entry.name}"`);
  } finally {
    await fh.close();
  }
}

/** Streams one entry in chunks of at most `chunk` bytes (one buffer in memory at a time). */
export async function* entryChunks(path: string, entry: TarEntry, chunk = 1 << 20): AsyncGenerator<Uint8Array> {
  const fh = await open(path, "r");
  try {
    for (let at = 0; at < entry.size; ) {
      const n = Math.min(chunk, entry.size - at);
      yield await readExact(fh, entry.offset + at, n, `"${entry.name}"`);
      at += n;
    }
  } finally {
    await fh.close();
  }
}
