/**
 * XXH64 (seed 0) in plain JavaScript, streaming, for runtimes without a native one (the
 * Node.js build): Grype's database archives name their database's checksum as xxh64. BigInt
 * arithmetic keeps it exact; it is slow (tens of MB/s) and only runs on an import. The Bun
 * builds use Bun.hash.xxHash64 instead (platform/hash.ts).
 */

const MASK = (1n << 64n) - 1n;
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & MASK;
const round = (acc: bigint, input: bigint) => (rotl((acc + input * P2) & MASK, 31n) * P1) & MASK;
const merge = (acc: bigint, v: bigint) => (((acc ^ round(0n, v)) * P1 + P4) & MASK);

/** An incremental XXH64 with seed 0. */
export class Xxh64 {
  private v1 = (P1 + P2) & MASK;
  private v2 = P2;
  private v3 = 0n;
  private v4 = (0n - P1) & MASK;
  private total = 0;
  private readonly buf = new Uint8Array(32);
  private buffered = 0;
  private readonly view = new DataView(this.buf.buffer);

  /** Feeds bytes. */
  update(data: Uint8Array): this {
    this.total += data.length;
    let i = 0;
    if (this.buffered > 0) {
      const take = Math.min(32 - this.buffered, data.length);
      this.buf.set(data.subarray(0, take), this.buffered);
      this.buffered += take;
      i = take;
      if (this.buffered < 32) return this;
      this.stripe(this.view, 0);
      this.buffered = 0;
    }
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (; i + 32 <= data.length; i += 32) this.stripe(dv, i);
    if (i < data.length) {
      this.buf.set(data.subarray(i), 0);
      this.buffered = data.length - i;
    }
    return this;
  }

  private stripe(dv: DataView, at: number): void {
    this.v1 = round(this.v1, dv.getBigUint64(at, true));
    this.v2 = round(this.v2, dv.getBigUint64(at + 8, true));
    this.v3 = round(this.v3, dv.getBigUint64(at + 16, true));
    this.v4 = round(this.v4, dv.getBigUint64(at + 24, true));
  }

  /** The hash of everything fed, as a 64-bit unsigned BigInt. */
  digest(): bigint {
    let h: bigint;
    if (this.total >= 32) {
      h = (rotl(this.v1, 1n) + rotl(this.v2, 7n) + rotl(this.v3, 12n) + rotl(this.v4, 18n)) & MASK;
      h = merge(h, this.v1);
      h = merge(h, this.v2);
      h = merge(h, this.v3);
      h = merge(h, this.v4);
    } else {
      h = P5;
    }
    h = (h + BigInt(this.total)) & MASK;
    let i = 0;
    const n = this.buffered;
    for (; i + 8 <= n; i += 8) {
      h ^= round(0n, this.view.getBigUint64(i, true));
      h = (rotl(h, 27n) * P1 + P4) & MASK;
    }
    if (i + 4 <= n) {
      h ^= (BigInt(this.view.getUint32(i, true)) * P1) & MASK;
      h = (rotl(h, 23n) * P2 + P3) & MASK;
      i += 4;
    }
    for (; i < n; i++) {
      h ^= (BigInt(this.buf[i]!) * P5) & MASK;
      h = (rotl(h, 11n) * P1) & MASK;
    }
    h ^= h >> 33n;
    h = (h * P2) & MASK;
    h ^= h >> 29n;
    h = (h * P3) & MASK;
    h ^= h >> 32n;
    return h;
  }
}
