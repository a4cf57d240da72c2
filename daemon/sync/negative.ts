/**
 * The negative cache of one upstream: answers that say "there is nothing to fetch here",
 * remembered briefly so that a client retrying a missing tag (or 300 clients asking for the
 * same one) costs one upstream request per `ttl`, not one each. Upstream rate limits (Docker
 * Hub counts every manifest request) are spent on content, not on misses.
 *
 * Two kinds of answer are kept: a 404 (`not-found`) and content whose bytes did not match
 * their digest (`digest`: the next client gets a clear 502 at once instead of another
 * truncated 200 from a fresh fetch of the same bad bytes). Outages are the breaker's
 * business and are not kept here; neither are auth or rate-limit answers.
 *
 * Bounded in entries: the least recently used entry leaves first (a Map keeps insertion
 * order; a hit re-inserts its key). `ttlMs = 0` switches the cache off.
 */
import { UpstreamError } from "./errors";

/** Options for {@link NegativeCache}. */
export interface NegativeCacheOptions {
  /** How long an answer is kept (ms); 0 = nothing is kept. */
  ttlMs: number;
  /** Most answers kept; the least recently used leaves first. */
  entries: number;
  /** The clock (tests pass their own). */
  now?: () => number;
}

/** Recent negative answers of one upstream, by key (`m:<repo>@<ref>`, `b:<repo>@<digest>`). */
export class NegativeCache {
  private readonly map = new Map<string, { error: UpstreamError; expires: number }>();
  /** Requests answered from the cache, for the admin API and metrics. */
  hits = 0;

  constructor(private readonly options: NegativeCacheOptions) {}

  /** True when `error` is an answer this cache keeps (a 404, or content that failed its digest). */
  static keeps(error: unknown): error is UpstreamError {
    return error instanceof UpstreamError && (error.fault === "not-found" || error.fault === "digest");
  }

  /** The answer remembered for `key`, while it is fresh. */
  get(key: string): UpstreamError | undefined {
    const entry = this.map.get(key);
    if (!entry) return undefined;
    this.map.delete(key);
    if (entry.expires <= this.now()) return undefined;
    this.map.set(key, entry);
    this.hits++;
    return entry.error;
  }

  /** Remembers `error` for `key` when it is a kept kind of answer and the cache is on. */
  remember(key: string, error: unknown): void {
    if (this.options.ttlMs <= 0 || this.options.entries <= 0 || !NegativeCache.keeps(error)) return;
    this.map.delete(key);
    this.map.set(key, { error, expires: this.now() + this.options.ttlMs });
    while (this.map.size > this.options.entries) this.map.delete(this.map.keys().next().value!);
  }

  /** Forgets `key` (the content arrived after all). */
  forget(key: string): void {
    this.map.delete(key);
  }

  /** Entries held now (some may have expired and not yet been looked at). */
  get size(): number {
    return this.map.size;
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }
}
