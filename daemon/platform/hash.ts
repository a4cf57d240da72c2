/**
 * Incremental hashing for verify-while-streaming. Bun.CryptoHasher is used when present (it
 * is several times faster than node:crypto under Bun); node:crypto otherwise, which keeps a
 * Node.js build possible.
 */
import { createHash } from "node:crypto";
import { closeSync, createReadStream, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";
import type { Algorithm } from "../oci/digest";

/** A running hash whose state can be forked (to undo a failed chunk). */
export interface Hasher {
  update(chunk: Uint8Array): void;
  /** An independent copy of the current state. */
  copy(): Hasher;
  /** Lowercase hex of the hash so far; the hasher must not be used afterwards. */
  hex(): string;
}

interface BunHasherLike {
  update(data: Uint8Array): unknown;
  copy(): BunHasherLike;
  digest(encoding: "hex"): string;
}

const BunHasher = (globalThis as { Bun?: { CryptoHasher?: new (alg: string) => BunHasherLike } }).Bun?.CryptoHasher;

class WrappedBunHasher implements Hasher {
  constructor(private readonly inner: BunHasherLike) {}
  update(chunk: Uint8Array): void {
    this.inner.update(chunk);
  }
  copy(): Hasher {
    return new WrappedBunHasher(this.inner.copy());
  }
  hex(): string {
    return this.inner.digest("hex");
  }
}

class NodeHasher implements Hasher {
  constructor(private readonly inner: ReturnType<typeof createHash>) {}
  update(chunk: Uint8Array): void {
    this.inner.update(chunk);
  }
  copy(): Hasher {
    return new NodeHasher(this.inner.copy());
  }
  hex(): string {
    return this.inner.digest("hex");
  }
}

/** A new hasher for a digest algorithm. */
export function createHasher(algorithm: Algorithm): Hasher {
  return BunHasher ? new WrappedBunHasher(new BunHasher(algorithm)) : new NodeHasher(createHash(algorithm));
}

/** Hashes bytes in memory (manifests only: they are capped in size). */
export function hashBytes(algorithm: Algorithm, bytes: Uint8Array): string {
  const h = createHasher(algorithm);
  h.update(bytes);
  return h.hex();
}

/** Size of the one buffer {@link hashFile} reads into. */
const HASH_READ_BYTES = 256 * 1024;
/** Read buffers kept for the next {@link hashFile} calls (a scrub hashes thousands of small files). */
const spare: Uint8Array[] = [];
const MAX_SPARE = 4;

/**
 * Files of at most this many bytes (by the caller's size hint) are hashed synchronously, in
 * one read into one shared buffer. Reading a page-cache-sized file blocks for microseconds,
 * far less than the four trips through the runtime's thread pool (open, read, read to the
 * end, close) that an asynchronous read costs, each with its promise, request and file
 * handle: a scrub of 120,000 tiny blobs made that garbage faster than it was collected and
 * the resident set peaked ~8 MiB higher than the walk alone.
 */
export const SYNC_HASH_BYTES = 64 * 1024;
/** The one buffer of {@link hashSmallFile}: synchronous code never shares it with another call. */
let syncBuffer: Uint8Array | undefined;

type OneShot = (algorithm: string, data: Uint8Array, encoding: "hex") => string;
const bunOneShot = (BunHasher as unknown as { hash?: OneShot } | undefined)?.hash?.bind(BunHasher);

/** Hashes bytes at once, without a hasher object under Bun. */
function hashNow(algorithm: Algorithm, bytes: Uint8Array): string {
  return bunOneShot ? bunOneShot(algorithm, bytes, "hex") : createHash(algorithm).update(bytes).digest("hex");
}

/**
 * Hashes a file of at most {@link SYNC_HASH_BYTES} synchronously; undefined when it holds
 * more than that (it grew or its size hint was wrong: the caller hashes it the slow way).
 */
function hashSmallFile(algorithm: Algorithm, path: string): string | undefined {
  // one byte more than the limit tells a file at the limit from a longer one
  const buffer = (syncBuffer ??= new Uint8Array(SYNC_HASH_BYTES + 1));
  const fd = openSync(path, "r");
  try {
    let filled = 0;
    for (;;) {
      const n = readSync(fd, buffer, filled, buffer.length - filled, null);
      if (n === 0) break;
      filled += n;
      if (filled > SYNC_HASH_BYTES) return undefined;
    }
    return hashNow(algorithm, buffer.subarray(0, filled));
  } finally {
    closeSync(fd);
  }
}

/**
 * Hashes a file by reading it into one buffer, reused for every read: memory use is that
 * buffer, and a scrub of gigabytes leaves no garbage behind (a read stream allocated a new
 * chunk per read, which the collector reclaimed lazily: a scrub peaked far above the limit).
 * The buffer goes back to a small pool of spares, so hashing many small files does not
 * allocate one per file either. With `sizeHint` (the size the caller saw) of at most
 * {@link SYNC_HASH_BYTES}, the file is read synchronously instead (see there).
 */
export async function hashFile(algorithm: Algorithm, path: string, sizeHint?: number): Promise<string> {
  if (sizeHint !== undefined && sizeHint <= SYNC_HASH_BYTES) {
    const hex = hashSmallFile(algorithm, path);
    if (hex !== undefined) return hex;
  }
  const h = createHasher(algorithm);
  const file = await open(path, "r");
  const buffer = spare.pop() ?? new Uint8Array(HASH_READ_BYTES);
  try {
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      h.update(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
    }
  } finally {
    if (spare.length < MAX_SPARE) spare.push(buffer);
    await file.close();
  }
  return h.hex();
}

const BunSha256 = (globalThis as { Bun?: { SHA256?: { hash(data: string, encoding: "base64"): string } } }).Bun?.SHA256;

/** SHA-256 of a short text, base64 (Bun's one-shot hash: half the cost of a node:crypto hasher on a hot path). */
export function sha256Base64(text: string): string {
  return BunSha256 ? BunSha256.hash(text, "base64") : createHash("sha256").update(text).digest("base64");
}

/** SHA-256 of a short text, as bytes. */
export function sha256Bytes(text: string): Uint8Array {
  return BunHasher ? (new BunHasher("sha256").update(new TextEncoder().encode(text)) as BunHasherLike & { digest(): Uint8Array }).digest() : createHash("sha256").update(text).digest();
}

const BunNative = (globalThis as { Bun?: { mmap(path: string): Uint8Array; hash: { xxHash64(data: Uint8Array): bigint } } }).Bun;

/** XXH64 (seed 0) of a file, 16 hex digits: mapped and hashed natively under Bun, streamed through platform/xxh64.ts elsewhere. */
export async function xxh64File(path: string): Promise<string> {
  if (BunNative) return BunNative.hash.xxHash64(BunNative.mmap(path)).toString(16).padStart(16, "0");
  const { Xxh64 } = await import("./xxh64");
  const h = new Xxh64();
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Uint8Array);
  return h.digest().toString(16).padStart(16, "0");
}
