/**
 * Compact JWS/JWT with one algorithm, ES256 (ECDSA P-256 with SHA-256, RFC 7518 §3.4), on
 * WebCrypto: what the built-in token service signs and what the registry verifies. Nothing
 * else is accepted: `alg` must be exactly "ES256" (so `none`, HS256 keyed with the public key,
 * RS256 and friends are refused before any key is touched), `kid` must name a known key, the
 * signature must be the 64-byte r||s form, and the claims are checked for issuer, audience,
 * expiry and not-before with a small clock skew.
 *
 * {@link verifyJwt} never throws: any malformed input (bad base64url, bad JSON, a huge token,
 * wrong types) is a reason string, and the caller answers 401.
 */

/** Longest token accepted; a JWT with a few dozen access entries is well under this. */
export const MAX_TOKEN_LENGTH = 8192;

/** The claims berth's tokens carry (distribution's docs/spec/auth/jwt.md, plus `grp`). */
export interface TokenClaims {
  iss: string;
  /** The user name; "" for a token issued to an anonymous client. */
  sub: string;
  aud: string;
  exp: number;
  nbf: number;
  iat: number;
  jti: string;
  access: AccessEntry[];
  /** The principal's groups at issuance (policies name groups; the registry re-evaluates them). */
  grp?: string[];
  /** How the subject authenticated at the token endpoint (htpasswd, apikey, ldap…). */
  src?: string;
  /** The API key the token was obtained with, if any. */
  kid?: string;
}

/** One `access` claim entry: a resource and the actions granted on it. */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

/** A key that signs tokens. */
export interface SigningKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

/** What a verification checks besides the signature. */
export interface VerifyOptions {
  /** Verification keys by `kid`. */
  keys: ReadonlyMap<string, CryptoKey>;
  issuer: string;
  audience: string;
  /** Seconds since the epoch; default now. */
  now?: number;
  /** Clock skew tolerated on exp/nbf/iat, seconds (default 30). */
  skew?: number;
}

/** A verification's outcome: the claims, or why the token is refused. */
export type VerifyResult = { ok: true; claims: TokenClaims } | { ok: false; reason: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const B64URL = /^[A-Za-z0-9_-]*$/;

/** base64url without padding (RFC 7515 §2). */
export function b64url(data: Uint8Array | string): string {
  return Buffer.from(typeof data === "string" ? encoder.encode(data) : data).toString("base64url");
}

/**
 * Strict base64url decoding: undefined for anything but the canonical unpadded encoding
 * (so no two strings decode to the same bytes, and a token cannot be altered unnoticed).
 */
export function fromB64url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!B64URL.test(text) || text.length % 4 === 1) return undefined;
  const bytes = Buffer.from(text, "base64url");
  if (bytes.toString("base64url") !== text) return undefined;
  return new Uint8Array(bytes);
}

/** Signs `claims` with `key` as a compact JWS with header {alg: ES256, typ: JWT, kid}. */
export async function signJwt(key: SigningKey, claims: TokenClaims): Promise<string> {
  const header = b64url(JSON.stringify({ alg: "ES256", typ: "JWT", kid: key.kid }));
  const payload = b64url(JSON.stringify(claims));
  const input = `${header}.${payload}`;
  const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key.privateKey, encoder.encode(input));
  return `${input}.${b64url(new Uint8Array(sig))}`;
}

function parseJson(part: string): Record<string, unknown> | undefined {
  const bytes = fromB64url(part);
  if (bytes === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(decoder.decode(bytes));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === "string");

function accessEntries(value: unknown): AccessEntry[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const out: AccessEntry[] = [];
  for (const e of value) {
    if (typeof e !== "object" || e === null) return undefined;
    const { type, name, actions } = e as Record<string, unknown>;
    if (typeof type !== "string" || typeof name !== "string" || !isStrings(actions)) return undefined;
    out.push({ type, name, actions });
  }
  return out;
}

/** Verifies a compact JWS and its claims; never throws. */
export async function verifyJwt(token: string, options: VerifyOptions): Promise<VerifyResult> {
  try {
    return await verifyInner(token, options);
  } catch (err) {
    return { ok: false, reason: `token could not be verified (${(err as Error).message})` };
  }
}

async function verifyInner(token: string, o: VerifyOptions): Promise<VerifyResult> {
  if (typeof token !== "string" || token.length === 0) return { ok: false, reason: "empty token" };
  if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: `token of ${token.length} characters is longer than ${MAX_TOKEN_LENGTH}` };
  const parts = token.split(".");
  if (parts.length !== 3) return { ok: false, reason: `token has ${parts.length} parts, not 3` };
  const [h, p, s] = parts as [string, string, string];
  const header = parseJson(h);
  if (!header) return { ok: false, reason: "token header is not base64url JSON" };
  if (header.alg !== "ES256") return { ok: false, reason: `token algorithm "${String(header.alg)}" is not ES256` };
  if (header.crit !== undefined) return { ok: false, reason: "token header has critical extensions" };
  if (typeof header.kid !== "string") return { ok: false, reason: "token header has no kid" };
  const key = o.keys.get(header.kid);
  if (!key) return { ok: false, reason: `token key "${header.kid.slice(0, 64)}" is unknown` };
  const sig = fromB64url(s);
  if (!sig || sig.length !== 64) return { ok: false, reason: "token signature is not a 64-byte ES256 signature" };
  const valid = await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, sig, encoder.encode(`${h}.${p}`));
  if (!valid) return { ok: false, reason: "token signature does not verify" };
  const c = parseJson(p);
  if (!c) return { ok: false, reason: "token claims are not base64url JSON" };
  const now = o.now ?? Math.floor(Date.now() / 1000);
  const skew = o.skew ?? 30;
  if (c.iss !== o.issuer) return { ok: false, reason: `token issuer "${String(c.iss)}" is not "${o.issuer}"` };
  const aud = c.aud;
  if (!(aud === o.audience || (isStrings(aud) && aud.includes(o.audience)))) return { ok: false, reason: `token audience is not "${o.audience}"` };
  for (const k of ["exp", "nbf", "iat"] as const) {
    if (typeof c[k] !== "number" || !Number.isFinite(c[k])) return { ok: false, reason: `token claim ${k} is not a number` };
  }
  if (now > (c.exp as number) + skew) return { ok: false, reason: "token has expired" };
  if (now + skew < (c.nbf as number)) return { ok: false, reason: "token is not valid yet" };
  if (now + skew < (c.iat as number)) return { ok: false, reason: "token was issued in the future" };
  if (typeof c.sub !== "string" || typeof c.jti !== "string") return { ok: false, reason: "token claims sub and jti must be strings" };
  const access = accessEntries(c.access ?? []);
  if (!access) return { ok: false, reason: "token claim access is malformed" };
  if (c.grp !== undefined && !isStrings(c.grp)) return { ok: false, reason: "token claim grp is malformed" };
  const claims: TokenClaims = {
    iss: o.issuer,
    sub: c.sub,
    aud: o.audience,
    exp: c.exp as number,
    nbf: c.nbf as number,
    iat: c.iat as number,
    jti: c.jti,
    access,
    ...(c.grp !== undefined && { grp: c.grp as string[] }),
    ...(typeof c.src === "string" && { src: c.src }),
    ...(typeof c.kid === "string" && { kid: c.kid }),
  };
  return { ok: true, claims };
}
