/**
 * The request authenticator: decides once per request, in the HTTP front, who is asking.
 *   - no `Authorization` header: a client certificate (when that hook is plugged in), else
 *     anonymous; nothing async, nothing allocated beyond the answer;
 *   - `Basic`: the user and password are checked against the {@link AuthChain};
 *   - `Bearer`: the admin token (`[http] admin_token_file`) is the admin; a web UI session
 *     token (`berthui.…`, auth/uisession.ts) is its login's principal; any other token goes
 *     to the {@link TokenVerifier} when one is plugged in.
 * A credential that is present but bad is refused (401), never treated as anonymous: a
 * wrong password must fail `podman login` even where anonymous pulls are allowed.
 */
import { timingSafeEqual } from "node:crypto";
import { type AuthChain, MAX_CREDENTIAL_CHARS } from "./chain";
import type { AuthContext, AuthEvents, ClientCertIdentity, TokenVerdict, TokenVerifier } from "./hooks";
import type { Principal, Verdict } from "./identity";

/** Longest Authorization header looked at. */
const MAX_HEADER_CHARS = 8192;

/** Who is asking: an identity, anonymous, or a refusal (bad credential, source down, locked out). */
export type Identified =
  | { kind: "anonymous" }
  | { kind: "principal"; principal: Principal }
  | { kind: "refused"; status: 401 | 429 | 503; reason: string; retryAfter?: number };

const ANONYMOUS: Identified = { kind: "anonymous" };

/** The principal of the admin token. */
export const ADMIN_TOKEN_PRINCIPAL: Principal = Object.freeze({ name: "admin-token", groups: [], source: "admin-token" });

/** What {@link Authenticator} uses. */
export interface AuthenticatorOptions {
  chain: AuthChain;
  /** The Basic realm of challenges when no token verifier is plugged in. */
  realm: string;
  adminToken?: string;
  tokens?: TokenVerifier;
  clientCert?: ClientCertIdentity;
  events?: AuthEvents;
  /** The web UI's sessions (with `[ui] enabled`); empty until the first UI login. */
  sessions?: UiSessionSlot;
}

/** Every web UI session token starts with this (auth/uisession.ts); such tokens never reach the JWT verifier. */
export const UI_SESSION_PREFIX = "berthui.";
/** Where the web UI logs in and out (auth/uisession.ts). */
export const UI_SESSION_PATH = "/auth/ui/session";

/** The web UI's sessions (`[ui] enabled` with `[auth]`): the store is loaded on the first UI login (auth/uisession.ts). */
export interface UiSessionSlot {
  store?: {
    verify(token: string): { principal: Principal } | { reason: string };
    handle(req: Request, who: Identified): Response;
  };
  /** Seconds a session lives without a request (`[ui] session_ttl`). */
  idle: number;
  /** Whether the API key with this id still holds (a session opened with a key ends with it). */
  keyActive(id: string): boolean;
  /** The clock, epoch ms (tests set one before the first login); default `Date.now`. */
  now?: () => number;
}

/** Decides the identity of requests; see the file comment. */
export class Authenticator {
  private readonly adminToken: Buffer | undefined;
  private readonly basicChallenge: string;

  constructor(readonly options: AuthenticatorOptions) {
    this.adminToken = options.adminToken === undefined ? undefined : Buffer.from(options.adminToken);
    this.basicChallenge = `Basic realm="${options.realm.replace(/["\\]/g, "")}", charset="UTF-8"`;
  }

  /** The `WWW-Authenticate` value for a 401 (`scope`: "repository:<name>:<actions>", for the Bearer challenge). */
  challenge(req: Request, scope?: string): string {
    return this.options.tokens ? this.options.tokens.challenge(req, scope) : this.basicChallenge;
  }

  /**
   * The identity of `req`; synchronous unless a credential has to be checked. `address`
   * gives the peer's address; it is asked only when a credential or certificate is there,
   * so an anonymous request costs one header lookup.
   */
  identify(req: Request, address: () => string | undefined, peer?: unknown): Identified | Promise<Identified> {
    const header = req.headers.get("authorization");
    if (header === null) {
      const cert = this.options.clientCert;
      if (!cert) return ANONYMOUS;
      const ctx = { req, address: address() };
      const verdict = cert.identify(ctx, peer);
      return verdict === undefined ? ANONYMOUS : this.settle(verdict, undefined, ctx);
    }
    const ctx: AuthContext = { req, address: address() };
    if (header.length > MAX_HEADER_CHARS) return this.fail(undefined, "the Authorization header is too long", ctx);
    const space = header.indexOf(" ");
    const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
    const value = space < 0 ? "" : header.slice(space + 1).trim();
    if (scheme === "basic") return this.basic(value, ctx);
    if (scheme === "bearer") return this.bearer(value, ctx);
    return this.fail(undefined, `unsupported authorization scheme "${scheme.slice(0, 20)}"`, ctx);
  }

  private basic(value: string, ctx: AuthContext): Identified | Promise<Identified> {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value) || value.length % 4 !== 0) return this.fail(undefined, "Basic credentials are not valid base64", ctx);
    const text = Buffer.from(value, "base64").toString("utf8");
    // containers/image (skopeo, podman) answers a Basic challenge without credentials with
    // "Basic Og==", an empty user and password: that is an anonymous request, not a bad one
    if (text === ":") return ANONYMOUS;
    const colon = text.indexOf(":");
    if (colon <= 0) return this.fail(undefined, "Basic credentials are not of the form user:password", ctx);
    const user = text.slice(0, colon);
    const password = text.slice(colon + 1);
    if (user.length > MAX_CREDENTIAL_CHARS || password.length > MAX_CREDENTIAL_CHARS) return this.fail(undefined, "Basic credentials are too long", ctx);
    const wait = this.options.events?.gate?.(user, ctx);
    if (wait !== undefined) return { kind: "refused", status: 429, reason: "too many failed logins; retry later", retryAfter: wait };
    const cached = this.options.chain.cached(user, password);
    if (cached) return this.settle(cached, user, ctx);
    return this.options.chain.verify(user, password, ctx.req.signal).then((v) => this.settle(v, user, ctx));
  }

  private bearer(token: string, ctx: AuthContext): Identified | Promise<Identified> {
    if (this.adminToken && token.length > 0) {
      const given = Buffer.from(token);
      if (given.length === this.adminToken.length && timingSafeEqual(given, this.adminToken)) return this.ok(ADMIN_TOKEN_PRINCIPAL, ctx);
    }
    if (this.options.sessions && token.startsWith(UI_SESSION_PREFIX)) {
      const s = this.options.sessions.store?.verify(token) ?? { reason: "the UI session is unknown (the registry restarted); log in again" };
      // no loginOk: a session proves no password now (it must not reset a guesser's failures)
      return "principal" in s ? { kind: "principal", principal: s.principal } : this.fail(undefined, s.reason, ctx);
    }
    const tokens = this.options.tokens;
    if (!tokens || token.length === 0) return this.fail(undefined, "the Bearer token is not valid here", ctx);
    let verdict: TokenVerdict | Promise<TokenVerdict>;
    try {
      verdict = tokens.verify(token, ctx);
    } catch (err) {
      return this.fail(undefined, `the Bearer token was refused (${(err as Error).message})`, ctx);
    }
    if (verdict instanceof Promise) {
      return verdict.then(
        (v) => this.settle(v, undefined, ctx),
        (err) => this.fail(undefined, `the Bearer token was refused (${(err as Error).message})`, ctx),
      );
    }
    return this.settle(verdict, undefined, ctx);
  }

  private settle(verdict: TokenVerdict, user: string | undefined, ctx: AuthContext): Identified {
    switch (verdict.kind) {
      case "anonymous":
        return ANONYMOUS;
      case "ok":
        return this.ok(verdict.principal, ctx);
      case "unavailable":
        this.observe(() => this.options.events?.loginFailed?.(user, verdict.reason, ctx, true));
        return { kind: "refused", status: 503, reason: "the identity source is unavailable; retry later", retryAfter: 5 };
      case "denied":
        return this.fail(user, verdict.reason, ctx);
      case "unknown":
        return this.fail(user, "no identity source knows this credential", ctx);
    }
  }

  private ok(principal: Principal, ctx: AuthContext): Identified {
    if (this.options.events?.loginOk) this.observe(() => this.options.events?.loginOk?.(principal, ctx));
    return { kind: "principal", principal };
  }

  private fail(user: string | undefined, reason: string, ctx: AuthContext): Identified {
    this.observe(() => this.options.events?.loginFailed?.(user, reason, ctx));
    return { kind: "refused", status: 401, reason };
  }

  /** Observers must not break a request. */
  private observe(fn: () => void): void {
    try {
      fn();
    } catch {
      // an observer's fault is not the client's
    }
  }
}
