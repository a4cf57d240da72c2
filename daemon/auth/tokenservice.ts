/**
 * The built-in token service (distribution's docs/spec/auth/token.md and oauth.md): clients
 * that got a `Bearer` challenge ask `GET /auth/token?service=…&scope=…` with Basic credentials
 * (or none, for what anonymous may do), or `POST /auth/token` with an OAuth2 password grant
 * form (containerd), and get a short-lived ES256 JWT whose `access` claims are the requested
 * scopes intersected with what the policy grants. The password is checked once per token,
 * not once per request.
 *
 * Refresh tokens are not issued: a client whose token expires asks again with the credentials
 * it holds (every client does). A refresh token would be a long-lived bearer secret that needs
 * its own store and revocation; API keys already are that, revocable and scoped.
 * `grant_type=refresh_token` is answered 400 `unsupported_grant_type`.
 */
import { errorBody } from "../oci/errors";
import { readTextAtMost } from "../platform/bodytext";
import type { Action, Principal, Verdict } from "./identity";
import { type AccessEntry, b64url, type SigningKey, signJwt, type TokenClaims } from "./jwt";
import { MAX_SCOPES, parseScope, type RequestedScope } from "./scope";
import { type NameMatcher, globMatcher } from "../oci/glob";

/** Checks a user name and password (the core's chain of PasswordSources). */
export type PasswordCheck = (user: string, password: string, signal?: AbortSignal) => Promise<Verdict>;

/** The policy: may `principal` (undefined: anonymous) do `action` on `repo`. */
export type Authorize = (principal: Principal | undefined, repo: string, action: Action) => boolean;

/** What the token service needs. */
export interface TokenServiceOptions {
  key: SigningKey;
  /** `iss` of every token. */
  issuer: string;
  /** The service name clients pass back (`aud` of every token). */
  service: string;
  /** Token lifetime in seconds. */
  ttl: number;
  passwords: PasswordCheck;
  authorize: Authorize;
  /** Seconds since the epoch; default the clock. */
  now?: () => number;
}

/** Longest POST form accepted. */
const MAX_FORM_BYTES = 16 * 1024;
const JSON_HEADERS = { "Content-Type": "application/json", "Cache-Control": "no-store" };

type Creds = { user: string; password: string } | "malformed" | undefined;

/** Decodes `Authorization: Basic …`; "malformed" for a Basic header that does not decode. */
export function basicCredentials(header: string | null): Creds {
  if (header === null || !/^basic /i.test(header)) return undefined;
  const b64 = header.slice(6).trim();
  if (b64.length > 4096 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) return "malformed";
  const text = Buffer.from(b64, "base64").toString("utf8");
  const colon = text.indexOf(":");
  if (colon < 0) return "malformed";
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

function unauthorized(detail: string): Response {
  return new Response(errorBody("UNAUTHORIZED", detail), {
    status: 401,
    headers: { ...JSON_HEADERS, "WWW-Authenticate": 'Basic realm="berth"' },
  });
}

function oauthError(status: number, error: string, description: string): Response {
  return new Response(JSON.stringify({ error, error_description: description }), { status, headers: JSON_HEADERS });
}

/**
 * The handler of `GET` and `POST /auth/token`. Mounted behind the HTTP front, it is given the
 * identity the front decided from the `Authorization` header (`front.principal`; bad
 * credentials never reach it); standalone (tests), it checks Basic credentials itself. The
 * POST password grant's credentials are in the form, so they are always checked here.
 */
export type TokenHandler = (req: Request, front?: FrontIdentity) => Promise<Response>;

/** A form login's outcome: a Verdict, or too many failed logins (429 with Retry-After). */
export type LoginResult = Verdict | { kind: "throttled"; retryAfter: number };

/** What the HTTP front hands the endpoint. */
export interface FrontIdentity {
  /** Who the `Authorization` header says is asking (undefined: anonymous). */
  principal: Principal | undefined;
  /**
   * Checks the OAuth2 form's user and password the way the front checks Basic credentials
   * (failed-login slow-down and lockout, audit events, the verified-credential cache).
   * Absent: the `passwords` check of the options.
   */
  login?: (user: string, password: string) => Promise<LoginResult>;
}

/** Makes the handler of `GET` and `POST /auth/token`. */
export function createTokenService(o: TokenServiceOptions): TokenHandler {
  const now = o.now ?? (() => Math.floor(Date.now() / 1000));

  async function authenticate(creds: Creds, login?: FrontIdentity["login"]): Promise<{ principal?: Principal } | Response> {
    if (creds === "malformed") return unauthorized("the Basic credentials do not decode");
    if (creds === undefined || (creds.user === "" && creds.password === "")) return {};
    const v = await (login ?? o.passwords)(creds.user, creds.password);
    if (v.kind === "ok") return { principal: v.principal };
    if (v.kind === "throttled") {
      return new Response(errorBody("TOOMANYREQUESTS", "too many failed logins; retry later"), { status: 429, headers: { ...JSON_HEADERS, "Retry-After": String(v.retryAfter) } });
    }
    if (v.kind === "unavailable") return new Response(errorBody("UNKNOWN", `the credentials could not be checked: ${v.reason}`), { status: 503, headers: JSON_HEADERS });
    return unauthorized(`incorrect user name or password for "${creds.user.slice(0, 64)}"`);
  }

  function grant(principal: Principal | undefined, scopes: RequestedScope[]): AccessEntry[] {
    const byRepo = new Map<string, Set<Action>>();
    let catalog = false;
    for (const s of scopes) {
      if (s.kind === "catalog") {
        // a limited credential (API key) would widen to "**" through a catalog token: not granted
        catalog ||= principal?.limits === undefined;
        continue;
      }
      const set = byRepo.get(s.name) ?? new Set<Action>();
      for (const a of s.actions) if (withinLimits(principal, s.name, a) && o.authorize(principal, s.name, a)) set.add(a);
      byRepo.set(s.name, set);
    }
    const access: AccessEntry[] = [];
    for (const [name, set] of byRepo) if (set.size > 0) access.push({ type: "repository", name, actions: [...set] });
    if (catalog) access.push({ type: "registry", name: "catalog", actions: ["*"] });
    return access;
  }

  async function issue(principal: Principal | undefined, scopes: RequestedScope[], oauth: boolean): Promise<Response> {
    const iat = now();
    const claims: TokenClaims = {
      iss: o.issuer,
      sub: principal?.name ?? "",
      aud: o.service,
      exp: iat + o.ttl,
      nbf: iat - 1,
      iat,
      jti: b64url(crypto.getRandomValues(new Uint8Array(16))),
      access: grant(principal, scopes),
      ...(principal && { grp: [...principal.groups], src: principal.source }),
      ...(principal?.keyId !== undefined && { kid: principal.keyId }),
    };
    const token = await signJwt(o.key, claims);
    const body: Record<string, unknown> = { token, access_token: token, expires_in: o.ttl, issued_at: new Date(iat * 1000).toISOString() };
    if (oauth) {
      body.token_type = "Bearer";
      body.scope = claims.access.map((e) => `${e.type}:${e.name}:${e.actions.join(",")}`).join(" ");
    }
    return new Response(JSON.stringify(body), { headers: JSON_HEADERS });
  }

  function scopesOf(raw: string[]): RequestedScope[] | Response {
    const list = raw.flatMap((s) => s.split(" ")).filter((s) => s.length > 0);
    if (list.length > MAX_SCOPES) return oauthError(400, "invalid_scope", `${list.length} scopes requested, at most ${MAX_SCOPES} are accepted`);
    return list.map(parseScope).filter((s): s is RequestedScope => s !== undefined);
  }

  function checkService(service: string | null): Response | undefined {
    if (service === null || service === "" || service === o.service) return undefined;
    return oauthError(400, "invalid_request", `unknown service "${service.slice(0, 128)}"; this registry's is "${o.service}"`);
  }

  async function get(req: Request, url: URL, front: { principal: Principal | undefined } | undefined): Promise<Response> {
    const bad = checkService(url.searchParams.get("service"));
    if (bad) return bad;
    const scopes = scopesOf(url.searchParams.getAll("scope"));
    if (scopes instanceof Response) return scopes;
    const who = front ?? (await authenticate(basicCredentials(req.headers.get("authorization"))));
    if (who instanceof Response) return who;
    // a token exchanged for a fresh one would be a refresh token: a stolen token renewed for
    // ever, outliving its user's password change or removal (see the file comment)
    if (who.principal?.source === "token") return unauthorized("a token cannot be exchanged for another; ask with a user name and password or an API key");
    return issue(who.principal, scopes, false);
  }

  async function post(req: Request, front: FrontIdentity | undefined): Promise<Response> {
    const length = Number(req.headers.get("content-length") ?? "0");
    if (length > MAX_FORM_BYTES) return oauthError(400, "invalid_request", `form of ${length} bytes is larger than ${MAX_FORM_BYTES}`);
    let form: URLSearchParams;
    try {
      // counted as it streams: a chunked body has no length to check first
      const text = await readTextAtMost(req, MAX_FORM_BYTES);
      if (text === undefined) return oauthError(400, "invalid_request", `form is larger than ${MAX_FORM_BYTES} bytes, or could not be read`);
      form = new URLSearchParams(text);
    } catch {
      return oauthError(400, "invalid_request", "the form body could not be read");
    }
    const bad = checkService(form.get("service"));
    if (bad) return bad;
    const grantType = form.get("grant_type");
    if (grantType === "refresh_token") return oauthError(400, "unsupported_grant_type", "berth issues no refresh tokens; ask again with the user name and password");
    if (grantType !== "password") return oauthError(400, "unsupported_grant_type", `grant_type "${String(grantType).slice(0, 64)}" is not supported; use "password"`);
    const user = form.get("username");
    const password = form.get("password");
    if (user === null || password === null) return oauthError(400, "invalid_request", "the password grant needs username and password");
    const scopes = scopesOf(form.getAll("scope"));
    if (scopes instanceof Response) return scopes;
    const who = await authenticate({ user, password }, front?.login);
    if (who instanceof Response) return who;
    return issue(who.principal, scopes, true);
  }

  return async (req, front) => {
    let url: URL;
    try {
      url = new URL(req.url, "http://localhost");
    } catch {
      return oauthError(400, "invalid_request", "the request target is not a URL");
    }
    if (req.method === "GET" || req.method === "HEAD") return get(req, url, front);
    if (req.method === "POST") return post(req, front);
    return new Response(errorBody("UNSUPPORTED", `method ${req.method} is not supported on the token endpoint`), { status: 405, headers: { ...JSON_HEADERS, Allow: "GET, POST" } });
  };
}

const globCache = new Map<string, NameMatcher>();

/** True when the credential's own limits (an API key's scopes) allow `action` on `repo`. */
export function withinLimits(principal: Principal | undefined, repo: string, action: Action): boolean {
  const limits = principal?.limits;
  if (limits === undefined) return true;
  return limits.some((l) => l.actions.includes(action) && l.repos.some((g) => {
    let re = globCache.get(g);
    if (!re) {
      if (globCache.size > 1024) globCache.clear();
      globCache.set(g, (re = globMatcher(g)));
    }
    return re.test(repo);
  }));
}
