/**
 * Request rate limits per client address, in two method classes: reads (GET, HEAD, OPTIONS)
 * and writes (everything else: POST, PATCH, PUT, DELETE). Each class is a token bucket of
 * `burst` requests refilled at `perSecond`; a request that finds its bucket empty is refused
 * with 429 TOOMANYREQUESTS and a `Retry-After` saying when one token will be back.
 *
 * Memory is bounded: at most `maxClients` addresses are tracked. The map keeps insertion
 * order and a client is moved to the end when it is seen again, so the first entries are the
 * least recently seen; when the map is full the oldest is dropped. Dropping a bucket forgets
 * that client's debt (it starts again with a full burst), which lets an attacker rotating
 * through more than `maxClients` addresses reset a heavy client's bucket: the price of a
 * fixed bound, and no worse than having no limit.
 *
 * The limiter runs in the HTTP front before authentication, so unauthenticated floods are
 * limited too. The health probes (/livez, /readyz) are never limited (http/app.ts).
 */
import { errorBody } from "../oci/errors";

/** One method class's bucket: `perSecond` refill (0 = unlimited) and `burst` capacity. */
export interface RateClass {
  perSecond: number;
  burst: number;
}

/** Options for {@link RateLimiter}. */
export interface RateLimitOptions {
  read: RateClass;
  write: RateClass;
  /** Addresses tracked at most; the least recently seen is forgotten first. */
  maxClients: number;
}

interface Bucket {
  readTokens: number;
  readAt: number;
  writeTokens: number;
  writeAt: number;
}

/** True for the methods counted as reads. */
export function isReadMethod(method: string): boolean {
  return method === "GET" || method === "HEAD" || method === "OPTIONS";
}

/**
 * Token buckets per client address. `now` is a millisecond clock (tests pass a fake one).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly read: RateClass;
  private readonly write: RateClass;
  private readonly maxClients: number;
  private readonly now: () => number;

  constructor(options: RateLimitOptions, now: () => number = () => performance.now()) {
    this.read = options.read;
    this.write = options.write;
    this.maxClients = Math.max(1, options.maxClients);
    this.now = now;
  }

  /** True when at least one class has a limit (a limiter with none need not be installed). */
  static active(options: RateLimitOptions): boolean {
    return options.read.perSecond > 0 || options.write.perSecond > 0;
  }

  /** Addresses tracked right now. */
  size(): number {
    return this.buckets.size;
  }

  /**
   * Takes one token for a request of `address` in the read or write class. Returns 0 when
   * the request may proceed, else the whole seconds (at least 1) until a token is back.
   */
  take(address: string, read: boolean): number {
    const cls = read ? this.read : this.write;
    if (cls.perSecond <= 0) return 0;
    const now = this.now();
    let b = this.buckets.get(address);
    if (b === undefined) {
      if (this.buckets.size >= this.maxClients) this.buckets.delete(this.buckets.keys().next().value!);
      b = { readTokens: this.read.burst, readAt: now, writeTokens: this.write.burst, writeAt: now };
    } else {
      // most recently seen last: the first entry is the one to forget
      this.buckets.delete(address);
    }
    this.buckets.set(address, b);
    if (read) {
      const tokens = Math.min(cls.burst, b.readTokens + ((now - b.readAt) / 1000) * cls.perSecond);
      b.readAt = now;
      if (tokens >= 1) {
        b.readTokens = tokens - 1;
        return 0;
      }
      b.readTokens = tokens;
      return Math.max(1, Math.ceil((1 - tokens) / cls.perSecond));
    }
    const tokens = Math.min(cls.burst, b.writeTokens + ((now - b.writeAt) / 1000) * cls.perSecond);
    b.writeAt = now;
    if (tokens >= 1) {
      b.writeTokens = tokens - 1;
      return 0;
    }
    b.writeTokens = tokens;
    return Math.max(1, Math.ceil((1 - tokens) / cls.perSecond));
  }
}

/**
 * The 429 answer for a limited request: the OCI error body (TOOMANYREQUESTS) with
 * `Retry-After`; no body for HEAD.
 */
export function tooManyRequests(method: string, retryAfterSeconds: number, detail: string): Response {
  return new Response(method === "HEAD" ? null : errorBody("TOOMANYREQUESTS", detail), {
    status: 429,
    headers: {
      "Content-Type": "application/json",
      "Retry-After": String(retryAfterSeconds),
      "Docker-Distribution-API-Version": "registry/2.0",
    },
  });
}
