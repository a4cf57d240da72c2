/**
 * A client for one upstream registry speaking the distribution API over fetch: URLs tried
 * in fallback order, TLS verification with a custom CA and client certificates, the auth
 * flows registries use (a `Bearer` challenge in WWW-Authenticate answered from the token
 * realm, or `Basic`), retries with exponential backoff for background work, request and
 * byte rate limits, and the circuit breaker that makes an unreachable upstream fail fast.
 *
 * Every failure is an {@link UpstreamError}; a 404 is `not-found`.
 */
import { readFileSync } from "node:fs";
import { parse } from "smol-toml";
import type { SyncRegistryConfig } from "../config/sync";
import type { Logger } from "../log";
import { TokenBucket } from "../scheduler/budget";
import { Breaker } from "./breaker";
import { UpstreamError, classifyFetchError } from "./errors";
import { abortableSleep } from "../platform/sleep";

/** Credentials read from a registry's `credentials_file`. */
export type Credentials = { username: string; password: string } | { token: string };

/** Reads and checks a credentials file (TOML: `username` + `password`, or `token`). */
export function readCredentials(path: string): Credentials {
  let doc: Record<string, unknown>;
  try {
    doc = parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`credentials file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message.split("\n")[0]}`);
  }
  for (const key of Object.keys(doc)) if (!["username", "password", "token"].includes(key)) throw new Error(`credentials file ${path}: unknown key "${key}"`);
  if (typeof doc.token === "string" && doc.username === undefined) return { token: doc.token };
  if (typeof doc.username === "string" && typeof doc.password === "string") return { username: doc.username, password: doc.password };
  throw new Error(`credentials file ${path}: give username and password, or token`);
}

/** Options of one request. */
export interface UpstreamRequest {
  method?: "GET" | "HEAD";
  accept?: string;
  signal?: AbortSignal;
  /** Background requests retry with backoff; foreground ones try each URL once. */
  background?: boolean;
  /** The repository the request concerns (the scope of a Bearer token). */
  repo?: string;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses a WWW-Authenticate header (one challenge). */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = p[2] ?? p[3] ?? "";
  return { scheme: m[1]!.toLowerCase(), params };
}

const sleep = abortableSleep;

/** The client of one upstream. */
export class UpstreamClient {
  readonly name: string;
  readonly breaker: Breaker;
  private readonly tls: Record<string, unknown> | undefined;
  private readonly tokens = new Map<string, { value: string; expires: number }>();
  private basicOnly = false;
  private preferred = 0;
  private readonly requests: TokenBucket;
  private readonly bytes: TokenBucket;
  /** Requests sent, for the admin API. */
  sent = 0;

  constructor(
    private readonly config: SyncRegistryConfig,
    private readonly credentials: Credentials | undefined,
    private readonly log: Logger,
  ) {
    this.name = config.name;
    const tls: Record<string, unknown> = {};
    if (!config.tlsVerify) tls.rejectUnauthorized = false;
    const read = (key: string, path: string) => {
      try {
        return readFileSync(path, "utf8");
      } catch (err) {
        throw new Error(`${key} ${path}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? "error"})`);
      }
    };
    if (config.caFile) tls.ca = read("ca_file", config.caFile);
    if (config.certFile) {
      tls.cert = read("cert_file", config.certFile);
      tls.key = read("key_file", config.keyFile);
    }
    this.tls = Object.keys(tls).length > 0 ? tls : undefined;
    this.requests = new TokenBucket(config.requestsPerSecond, Math.max(1, config.requestsPerSecond));
    this.bytes = new TokenBucket(config.bytesPerSecond, config.bytesPerSecond, config.bytesPerSecond);
    this.breaker = new Breaker({ name: config.name, failures: config.breakerFailures, probeIntervalMs: config.probeIntervalMs, probe: () => this.ping() }, log);
  }

  /** True when `GET /v2/` answers with any HTTP status (the upstream is reachable). */
  async ping(): Promise<boolean> {
    for (const base of this.config.urls) {
      try {
        const res = await fetch(`${base}/v2/`, { signal: AbortSignal.timeout(this.config.timeoutMs), tls: this.tls } as RequestInit);
        await res.body?.cancel();
        return true;
      } catch {
        // try the next URL
      }
    }
    return false;
  }

  /**
   * Sends a request for `path` (starting with /v2/). Resolves with a 2xx response whose
   * body is rate-limited; throws {@link UpstreamError} otherwise.
   */
  async request(path: string, opts: UpstreamRequest = {}): Promise<Response> {
    const attempts = opts.background ? this.config.retries + 1 : 1;
    let last: UpstreamError | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) {
        const delay = Math.min(30_000, this.config.retryDelayMs * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4);
        await sleep(delay, opts.signal);
      }
      try {
        return await this.once(path, opts);
      } catch (err) {
        last = err instanceof UpstreamError ? err : classifyFetchError(err, this.name, this.config.timeoutMs);
        if (opts.signal?.aborted) throw last;
        if (!last.retryable || last.fault === "down") break;
        this.log.debug("upstream request failed; retrying", { upstream: this.name, path, attempt, error: last.detail });
      }
    }
    throw last!;
  }

  private async once(path: string, opts: UpstreamRequest): Promise<Response> {
    if (this.breaker.state === "down") throw new UpstreamError("down", this.name, this.breaker.describeDown());
    let outage: UpstreamError | undefined;
    const n = this.config.urls.length;
    for (let i = 0; i < n; i++) {
      const index = (this.preferred + i) % n;
      const base = this.config.urls[index]!;
      let res: Response;
      try {
        res = await this.send(base, path, opts);
      } catch (err) {
        const e = classifyFetchError(err, this.name, this.config.timeoutMs);
        if (opts.signal?.aborted) throw e;
        if (!e.outage) throw e;
        outage = e;
        continue;
      }
      if (res.status >= 500) {
        await res.body?.cancel();
        outage = new UpstreamError("server", this.name, `answered ${res.status} for ${path}`);
        continue;
      }
      this.preferred = index;
      this.breaker.success();
      return this.check(res, path);
    }
    this.breaker.failure(outage!.detail);
    throw outage!;
  }

  private async check(res: Response, path: string): Promise<Response> {
    if (res.ok) return this.limitBody(res);
    await res.body?.cancel();
    if (res.status === 404) throw new UpstreamError("not-found", this.name, `${path.replace(/^\/v2\//, "")} was not found`);
    if (res.status === 401 || res.status === 403) throw new UpstreamError("auth", this.name, `refused berth's credentials (${res.status}) for ${path}`);
    if (res.status === 429) throw new UpstreamError("ratelimited", this.name, "is rate-limiting berth (429)");
    throw new UpstreamError("invalid", this.name, `answered ${res.status} for ${path}`);
  }

  private async send(base: string, path: string, opts: UpstreamRequest): Promise<Response> {
    for (let i = 0; i < 1000; i++) {
      const wait = this.requests.waitMs();
      if (wait === 0) break;
      await sleep(wait, opts.signal);
    }
    this.requests.charge(1);
    let res = await this.fetchOnce(base, path, opts, this.authorization(opts.repo));
    if (res.status === 401 && this.credentials !== undefined || res.status === 401 && res.headers.get("www-authenticate")?.toLowerCase().startsWith("bearer")) {
      const challenge = parseChallenge(res.headers.get("www-authenticate") ?? "");
      await res.body?.cancel();
      const auth = challenge ? await this.answer(challenge, base, opts) : undefined;
      if (auth) res = await this.fetchOnce(base, path, opts, auth);
      else res = await this.fetchOnce(base, path, opts, undefined);
    }
    return res;
  }

  private async fetchOnce(base: string, path: string, opts: UpstreamRequest, authorization: string | undefined): Promise<Response> {
    const headers: Record<string, string> = { "User-Agent": "berth-sync" };
    if (opts.accept) headers.Accept = opts.accept;
    if (authorization) headers.Authorization = authorization;
    // this timeout covers the response headers; limitBody bounds each wait for body bytes
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new DOMException("timed out", "TimeoutError")), this.config.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout.signal]) : timeout.signal;
    this.sent++;
    try {
      return await fetch(`${base}${path}`, { method: opts.method ?? "GET", headers, signal, redirect: "follow", tls: this.tls } as RequestInit);
    } catch (err) {
      if (timeout.signal.aborted) throw new UpstreamError("timeout", this.name, `no answer within ${this.config.timeoutMs} ms`);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private basic(): string | undefined {
    const c = this.credentials;
    if (!c || !("username" in c)) return undefined;
    return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
  }

  /** The Authorization header to send before any challenge (cached token, or Basic once known). */
  private authorization(repo: string | undefined): string | undefined {
    const c = this.credentials;
    if (c && "token" in c) return `Bearer ${c.token}`;
    if (this.basicOnly) return this.basic();
    const cached = this.tokens.get(repo ?? "");
    if (cached && cached.expires > Date.now()) return `Bearer ${cached.value}`;
    return undefined;
  }

  /** Answers a challenge: Basic with the credentials, or a token fetched from the Bearer realm. */
  private async answer(challenge: Challenge, base: string, opts: UpstreamRequest): Promise<string | undefined> {
    if (challenge.scheme === "basic") {
      this.basicOnly = true;
      return this.basic();
    }
    if (challenge.scheme !== "bearer" || !challenge.params.realm) return undefined;
    const realm = new URL(challenge.params.realm, base);
    if (challenge.params.service) realm.searchParams.set("service", challenge.params.service);
    const scope = challenge.params.scope ?? (opts.repo ? `repository:${opts.repo}:pull` : undefined);
    if (scope) realm.searchParams.set("scope", scope);
    const headers: Record<string, string> = {};
    const basic = this.basic();
    if (basic) headers.Authorization = basic;
    let res: Response;
    try {
      res = await fetch(realm, { headers, signal: AbortSignal.timeout(this.config.timeoutMs), tls: this.tls } as RequestInit);
    } catch (err) {
      throw classifyFetchError(err, this.name, this.config.timeoutMs);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new UpstreamError("auth", this.name, `token service ${realm.origin} refused berth (${res.status})`);
    }
    const body = (await res.json().catch(() => ({}))) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new UpstreamError("auth", this.name, `token service ${realm.origin} sent no token`);
    const ttl = Math.max(30, body.expires_in ?? 60) * 1000;
    this.tokens.set(opts.repo ?? "", { value: token, expires: Date.now() + ttl - 10_000 });
    return `Bearer ${token}`;
  }

  /**
   * Guards a response body: a body that sends nothing for `timeout_ms` fails with a
   * `timeout` (a stalled or dripping upstream must not hold a fetch forever), and the byte
   * rate limit applies.
   */
  private limitBody(res: Response): Response {
    if (!res.body) return res;
    const bucket = this.config.bytesPerSecond > 0 ? this.bytes : undefined;
    const idleMs = this.config.timeoutMs;
    const name = this.name;
    const reader = res.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const stalled = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new UpstreamError("timeout", name, `the response body stalled: no bytes for ${idleMs} ms`)), idleMs);
        });
        let next: Awaited<ReturnType<typeof reader.read>>;
        try {
          next = await Promise.race([reader.read(), stalled]);
        } catch (err) {
          reader.cancel(err).catch(() => {});
          throw err;
        } finally {
          clearTimeout(timer);
        }
        if (next.done) return controller.close();
        for (let i = 0; bucket && i < 1000; i++) {
          const wait = bucket.waitMs();
          if (wait === 0) break;
          await sleep(wait);
        }
        bucket?.charge(next.value.byteLength);
        controller.enqueue(next.value);
      },
      cancel: (reason) => reader.cancel(reason),
    });
    return new Response(body, { status: res.status, headers: res.headers });
  }

  /** Name, URLs, breaker state and request count, for the admin API. */
  info() {
    return { name: this.name, urls: this.config.urls, preferredUrl: this.config.urls[this.preferred], requests: this.sent, ...this.breaker.info() };
  }
}
