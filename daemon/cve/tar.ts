/**
 * A streaming tar reader for image layers: it walks the archive header by header, hands
 * each entry to a chooser, keeps the bytes of the few entries the chooser wants (up to the
 * bound it gives) and skips everything else without holding it. It reads POSIX ustar
 * (with the 155-byte name prefix), GNU long names and long link names (`L`/`K` entries),
 * PAX extended headers (`x`: path, linkpath, size), and base-256 sizes. Header checksums
 * are verified, so a layer that is not a tar archive fails with a clear error instead of
 * being read as garbage. Layers are sniffed for gzip and zstd and decompressed as a
 * stream ({@link decompressedLayer}); nothing is written to disk.
 */

/** One archive entry as the chooser sees it. */
export interface TarEntry {
  /** Path without a leading `./` or `/` and without a trailing `/`. */
  path: string;
  type: "file" | "dir" | "symlink" | "hardlink" | "other";
  size: number;
  linkname: string;
}

/** Raised for an archive that cannot be read (bad header, truncated, an entry too large). */
export class TarError extends Error {}

/** Longest GNU long name or PAX header accepted. */
const MAX_META = 1 << 20;
const BLOCK = 512;

/** Pulls exact byte counts out of a chunked stream, holding at most one chunk plus a request. */
class ByteReader {
  private chunks: Uint8Array[] = [];
  private have = 0;
  private done = false;
  /** Bytes consumed so far. */
  consumed = 0;

  constructor(private readonly reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> }) {}

  private async fill(n: number): Promise<boolean> {
    while (this.have < n && !this.done) {
      const { value, done } = await this.reader.read();
      if (done || !value) this.done = true;
      else if (value.byteLength > 0) {
        this.chunks.push(value);
        this.have += value.byteLength;
      }
    }
    return this.have >= n;
  }

  /** Exactly `n` bytes, or undefined at the end of the stream (a short tail is an error). */
  async read(n: number): Promise<Uint8Array | undefined> {
    if (!(await this.fill(n))) {
      if (this.have === 0) return undefined;
      throw new TarError(`the archive ends in the middle of an entry (${this.have} of ${n} bytes left)`);
    }
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const take = Math.min(c.byteLength, n - off);
      out.set(c.subarray(0, take), off);
      off += take;
      if (take === c.byteLength) this.chunks.shift();
      else this.chunks[0] = c.subarray(take);
    }
    this.have -= n;
    this.consumed += n;
    return out;
  }

  /** Passes `n` bytes to `sink` chunk by chunk. */
  async pipe(n: number, sink: TarSink): Promise<void> {
    while (n > 0) {
      if (this.have === 0 && !(await this.fill(1))) throw new TarError(`the archive ends in the middle of an entry (${n} bytes missing)`);
      const c = this.chunks[0]!;
      const take = Math.min(c.byteLength, n);
      await sink.write(c.subarray(0, take));
      if (take === c.byteLength) this.chunks.shift();
      else this.chunks[0] = c.subarray(take);
      this.have -= take;
      this.consumed += take;
      n -= take;
    }
  }

  /** Drops `n` bytes without keeping them; `lenient`: the stream may end first (padding). */
  async skip(n: number, lenient = false): Promise<void> {
    while (n > 0) {
      if (this.have === 0 && !(await this.fill(1))) {
        if (lenient) return;
        throw new TarError(`the archive ends in the middle of an entry (${n} bytes missing)`);
      }
      const c = this.chunks[0]!;
      const take = Math.min(c.byteLength, n);
      if (take === c.byteLength) this.chunks.shift();
      else this.chunks[0] = c.subarray(take);
      this.have -= take;
      this.consumed += take;
      n -= take;
    }
  }
}

const decoder = new TextDecoder();

function cstring(b: Uint8Array, start: number, len: number): string {
  let end = start;
  while (end < start + len && b[end] !== 0) end++;
  return decoder.decode(b.subarray(start, end));
}

function octal(b: Uint8Array, start: number, len: number): number {
  if (b[start]! & 0x80) {
    // GNU base-256: big-endian binary after the marker bit
    let n = b[start]! & 0x7f;
    for (let i = start + 1; i < start + len; i++) n = n * 256 + b[i]!;
    return n;
  }
  const text = cstring(b, start, len).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarError(`a tar header has a malformed number field "${text}"`);
  return parseInt(text, 8);
}

function checksumOk(h: Uint8Array): boolean {
  let stored: number;
  try {
    stored = octal(h, 148, 8);
  } catch {
    return false;
  }
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return sum === stored;
}

function normalize(p: string): string {
  while (p.startsWith("./")) p = p.slice(2);
  p = p.replace(/^\/+/, "").replace(/\/+$/, "");
  return p === "." ? "" : p;
}

function parsePax(data: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  const text = decoder.decode(data);
  let i = 0;
  while (i < text.length) {
    const sp = text.indexOf(" ", i);
    if (sp < 0) break;
    const len = Number(text.slice(i, sp));
    if (!Number.isInteger(len) || len <= 0) throw new TarError(`a PAX header has a malformed record length "${text.slice(i, sp)}"`);
    // lengths count bytes; the records here are ASCII keys with (mostly) ASCII values
    const record = text.slice(sp + 1, i + len - 1);
    const eq = record.indexOf("=");
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    i += len;
  }
  return out;
}

/**
 * Decides per entry: return the most bytes to keep (the entry is then passed to `found`
 * with its content; an entry larger than that is an error), `false` to skip its bytes, or
 * a {@link TarSink} to receive a large file's bytes chunk by chunk (never held whole).
 * Non-file entries are always passed to `found` without content when the chooser says keep.
 */
export type TarChooser = (entry: TarEntry) => number | false | TarSink;

/** Receives one entry's bytes in order; awaited per chunk (backpressure). */
export interface TarSink {
  write(chunk: Uint8Array): void | Promise<void>;
}

/**
 * Reads the tar archive in `stream` to its end (or its end-of-archive blocks), calling
 * `found` for every entry `choose` keeps. `onBytes` is told how many archive bytes each step
 * consumed (for the IO budget). Throws {@link TarError} on a malformed archive.
 */
export async function readTar(
  stream: ReadableStream<Uint8Array>,
  choose: TarChooser,
  found: (entry: TarEntry, content: Uint8Array | undefined) => void,
  signal?: AbortSignal,
): Promise<void> {
  const reader = stream.getReader();
  const r = new ByteReader(reader);
  try {
    let longName: string | undefined;
    let longLink: string | undefined;
    let pax: Map<string, string> | undefined;
    for (;;) {
      signal?.throwIfAborted();
      const h = await r.read(BLOCK);
      if (!h) return; // a stream that ends without end blocks: accepted, as GNU tar does
      if (h.every((x) => x === 0)) return; // end-of-archive
      if (!checksumOk(h)) throw new TarError(`the layer is not a tar archive (bad header checksum at byte ${r.consumed - BLOCK})`);
      const flag = String.fromCharCode(h[156]!);
      let size = octal(h, 124, 12);
      if (pax?.has("size")) size = Number(pax.get("size"));
      const padded = Math.ceil(size / BLOCK) * BLOCK;
      if (flag === "L" || flag === "K" || flag === "x" || flag === "g") {
        if (size > MAX_META) throw new TarError(`a tar metadata entry of ${size} bytes is larger than the ${MAX_META} allowed`);
        const body = (await r.read(size)) ?? new Uint8Array(0);
        await r.skip(padded - size, true);
        if (flag === "L") longName = cstring(body, 0, body.length);
        else if (flag === "K") longLink = cstring(body, 0, body.length);
        else if (flag === "x") pax = parsePax(body);
        continue; // global headers ('g') carry nothing the scanner needs
      }
      let name = cstring(h, 0, 100);
      const magic = cstring(h, 257, 6);
      if (magic === "ustar") {
        const prefix = cstring(h, 345, 155);
        if (prefix) name = `${prefix}/${name}`;
      }
      let linkname = cstring(h, 157, 100);
      if (longName !== undefined) name = longName;
      if (longLink !== undefined) linkname = longLink;
      if (pax?.has("path")) name = pax.get("path")!;
      if (pax?.has("linkpath")) linkname = pax.get("linkpath")!;
      longName = longLink = pax = undefined;
      const type: TarEntry["type"] =
        flag === "0" || flag === "\0" || flag === "7" ? "file" : flag === "5" ? "dir" : flag === "2" ? "symlink" : flag === "1" ? "hardlink" : "other";
      // only regular files carry data; for the others a size field is not data to skip
      const dataBytes = type === "file" || type === "other" ? size : 0;
      const pad = type === "file" || type === "other" ? padded - size : 0;
      const entry: TarEntry = { path: normalize(name), type, size: type === "file" ? size : 0, linkname };
      const keep = choose(entry);
      if (typeof keep === "object") {
        if (type === "file") await r.pipe(size, keep);
        else await r.skip(dataBytes);
        await r.skip(pad, true);
        found(entry, undefined);
        continue;
      }
      if (keep === false || type !== "file") {
        await r.skip(dataBytes);
        await r.skip(pad, true); // the last entry's padding may be missing (umoci writes no end blocks)
        if (keep !== false) found(entry, undefined);
        continue;
      }
      if (size > keep) throw new TarError(`${entry.path} has ${size} bytes, more than the ${keep} the scanner reads`);
      const data = size === 0 ? new Uint8Array(0) : (await r.read(size))!;
      await r.skip(pad, true);
      found(entry, data);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/**
 * The uncompressed tar stream of a layer blob: gzip and zstd are recognised by their magic
 * bytes (the media type is only a hint, and some images lie), anything else is read as a
 * plain tar.
 */
export function decompressedLayer(blob: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = blob.getReader();
  let inner: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(reason?: unknown): Promise<void> } | undefined;
  return new ReadableStream<Uint8Array>({
    async start() {
      // read until there are 4 bytes to sniff
      const parts: Uint8Array[] = [];
      let n = 0;
      while (n < 4) {
        const { value, done } = await reader.read();
        if (done) break;
        parts.push(value);
        n += value.byteLength;
      }
      let first: Uint8Array | undefined = parts.length === 1 ? parts[0] : Buffer.concat(parts);
      const b = first ?? new Uint8Array(0);
      // created only now: a stream pulls as soon as it exists
      const head = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (first) {
            controller.enqueue(first);
            first = undefined;
            return;
          }
          const { value, done } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        },
        cancel(reason) {
          return reader.cancel(reason);
        },
      });
      let out: ReadableStream<Uint8Array> = head;
      if (b[0] === 0x1f && b[1] === 0x8b) out = head.pipeThrough(inflate("gzip"));
      else if (b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) out = head.pipeThrough(inflate("zstd"));
      inner = out.getReader();
    },
    async pull(controller) {
      try {
        const { value, done } = await inner!.read();
        if (done || !value) controller.close();
        else controller.enqueue(value);
      } catch (err) {
        controller.error(new TarError(`the layer cannot be decompressed: ${(err as Error).message}`));
      }
    },
    cancel(reason) {
      return inner?.cancel(reason) ?? reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

function inflate(format: string): TransformStream<Uint8Array, Uint8Array> {
  return new DecompressionStream(format as "gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
}
