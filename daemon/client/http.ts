/**
 * The HTTP client every client command uses (repos, images, rm, search, sync, gc, bench, and
 * the cve and trust commands): one registry, its credentials, a custom CA, a timeout, and
 * the Docker token flow (https://distribution.github.io/distribution/spec/auth/token/):
 * a 401 from /v2 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…` is answered by
 * asking the realm for a token (with Basic credentials when there are some), caching it per
 * scope, and retrying once; a `Basic` challenge is answered with Basic credentials. The admin
 * API (/api/v1) gets Basic credentials (a password or an API key), or the admin token as
 * Bearer. Every failure is a {@link ClientError} with its exit code. Talks only HTTP: it
 * imports nothing of the daemon.
 */
import { readFileSync } from "node:fs";
import { ClientError, EXIT, exitForStatus, messageOfBody } from "./errors";
import type { RegistryEntry } from "./credentials";

/** Options of a {@link RegistryClient}. */
export interface ClientOptions {
  /** Time to wait for the answer's status and headers, in ms (default 30 s); bodies stream without a limit. */
  timeoutMs?: number;
  /** CA file that overrides the entry's `ca`. */
  ca?: string;
}

/** Extra request options: the scope a /v2 token must grant (`repository:NAME:pull`). */
export interface RequestOptions extends RequestInit {
  scope?: string;
}

/** The challenge parameters of a WWW-Authenticate header (first scheme only). */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  const params: Record<string, string> = {};
  if (!m) return { scheme: "", params };
  for (const p of m[2]!.matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3]!;
  return { scheme: m[1]!.toLowerCase(), params };
}

/** A connection to one registry. */
export class RegistryClient {
  /** The registry's base URL, without a trailing slash. */
  readonly url: string;
  private readonly tls: { ca: string } | undefined;
  private readonly timeoutMs: number;
  private readonly tokens = new Map<string, string>();
  private basicFirst = false;

  constructor(
    readonly entry: RegistryEntry,
    options: ClientOptions = {},
  ) {
    this.url = entry.url.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 30_000;
    const caFile = options.ca ?? entry.ca;
    if (caFile) {
      try {
        this.tls = { ca: readFileSync(caFile, "utf8") };
      } catch (err) {
        throw new ClientError(`cannot read the CA file "${caFile}": ${(err as Error).message}`, EXIT.usage);
      }
    }
  }

  /** The Basic Authorization value, when there are credentials. */
  private basic(): string | undefined {
    const e = this.entry;
    if (e.password === undefined) return undefined;
    return `Basic ${Buffer.from(`${e.username ?? "berth"}:${e.password}`).toString("base64")}`;
  }

  /** One fetch with the timeout and TLS options; network failures become "unreachable". */
  private async send(url: string, init: RequestInit): Promise<Response> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`no answer within ${this.timeoutMs / 1000} s`)), this.timeoutMs);
    init.signal?.addEventListener("abort", () => controller.abort(init.signal!.reason));
    try {
      return await fetch(url, { ...init, signal: controller.signal, redirect: "follow", ...(this.tls ? { tls: this.tls } : {}) });
    } catch (err) {
      const e = err as Error & { code?: string };
      const why = controller.signal.aborted && controller.signal.reason instanceof Error ? controller.signal.reason.message : e.code && !e.message.includes(e.code) ? `${e.code}: ${e.message}` : e.message;
      throw new ClientError(`cannot reach ${new URL(url).origin}: ${why}`, EXIT.unreachable);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A request to `path` (absolute path with query) with authentication: the raw response,
   * whatever its status (callers that want errors thrown use {@link ok} or {@link json}).
   * A body given as a stream cannot be replayed after a 401: ask for a token first with
   * {@link authorize} when streaming.
   */
  async request(path: string, options: RequestOptions = {}): Promise<Response> {
    const { scope, ...init } = options;
    const admin = path.startsWith("/api/");
    const headers = new Headers(init.headers);
    if (admin) {
      const auth = this.entry.token !== undefined ? `Bearer ${this.entry.token}` : this.basic();
      if (auth) headers.set("Authorization", auth);
    } else {
      const token = this.tokens.get(scope ?? "");
      if (token) headers.set("Authorization", `Bearer ${token}`);
      else if (this.basicFirst && this.basic()) headers.set("Authorization", this.basic()!);
    }
    const res = await this.send(this.url + path, { ...init, headers });
    if (res.status !== 401 || admin || init.body instanceof ReadableStream) return res;
    const header = res.headers.get("WWW-Authenticate") ?? "";
    const challenge = parseChallenge(header);
    if (challenge.scheme === "basic" && this.basic() && !this.basicFirst) {
      await res.body?.cancel();
      this.basicFirst = true;
      headers.set("Authorization", this.basic()!);
      return this.send(this.url + path, { ...init, headers });
    }
    if (challenge.scheme === "bearer" && challenge.params.realm && !this.tokens.has(scope ?? "")) {
      await res.body?.cancel();
      const token = await this.fetchToken(challenge.params, scope);
      this.tokens.set(scope ?? "", token);
      headers.set("Authorization", `Bearer ${token}`);
      return this.send(this.url + path, { ...init, headers });
    }
    return res;
  }

  /** Asks the realm of a Bearer challenge for a token (GET with service and scope, Basic credentials when there are some). */
  private async fetchToken(params: Record<string, string>, scope: string | undefined): Promise<string> {
    const realm = new URL(params.realm!, this.url);
    if (params.service) realm.searchParams.set("service", params.service);
    for (const s of [params.scope, scope]) if (s && !realm.searchParams.getAll("scope").includes(s)) realm.searchParams.append("scope", s);
    // the realm comes from the server: credentials go only to the registry's own origin (or
    // its host over https), never to another host or over a downgrade to plain http
    const home = new URL(this.url);
    const own = realm.origin === home.origin || (realm.protocol === "https:" && realm.hostname === home.hostname);
    const basic = own ? this.basic() : undefined;
    const res = await this.send(realm.href, { headers: basic ? { Authorization: basic } : {} });
    const text = await res.text();
    if (!res.ok) {
      const why = own || !this.basic() ? "" : ` (asked without credentials: they are sent only to ${home.origin}, and the realm is another origin)`;
      throw new ClientError(`the token service at ${realm.origin}${realm.pathname} refused: ${res.status} ${messageOfBody(text)}${why}`, exitForStatus(res.status), res.status);
    }
    try {
      const j = JSON.parse(text) as { token?: string; access_token?: string };
      const token = j.token ?? j.access_token;
      if (typeof token === "string" && token) return token;
    } catch {
      // reported below
    }
    throw new ClientError(`the token service at ${realm.origin}${realm.pathname} answered no token`, EXIT.error);
  }

  /** Prepares the credentials for `scope` (a token when the registry wants one) before a streamed request. */
  async authorize(scope: string): Promise<void> {
    const res = await this.request("/v2/", { scope });
    await res.body?.cancel();
    if (res.status === 401 || res.status === 403) throw new ClientError(`${this.url} refused the credentials: ${res.status}`, EXIT.denied, res.status);
  }

  /** {@link request}, throwing a ClientError (exit code by status) unless the answer is 2xx. `what` names the thing for the message. */
  async ok(path: string, what: string, options: RequestOptions = {}): Promise<Response> {
    const res = await this.request(path, options);
    if (res.ok) return res;
    throw new ClientError(`${what}: ${res.status} ${messageOfBody(await res.text())}`, exitForStatus(res.status), res.status);
  }

  /** {@link ok} and the body as JSON. */
  async json<T>(path: string, what: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.ok(path, what, options);
    const text = await res.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ClientError(`${what}: the answer is not JSON`, EXIT.error, res.status);
    }
  }
}
