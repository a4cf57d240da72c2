/**
 * The registry side of the token service: `Authorization: Bearer <jwt>` -> a Verdict. The
 * token must be an ES256 JWT signed by the service's key (matched by `kid`), for this
 * service (`aud`) from this issuer (`iss`), within its validity (30 s of clock skew). The
 * principal it yields carries the token's `access` claims as limits, so the policy's grant is
 * intersected with what the token was issued for. A token obtained with an API key stops
 * working the moment the key is revoked (the key store is asked on each use; a map lookup).
 *
 * Never throws: garbage is `denied`, counted as a failed credential.
 */
import type { TokenVerdict, TokenVerifier } from "./hooks";
import type { Principal } from "./identity";
import { type SigningKey, verifyJwt } from "./jwt";
import { accessToLimits, bearerChallenge, realmFor } from "./scope";

/** The verifier; `verify` takes no context (tests call it bare) and answers a token seen before synchronously. */
export interface JwtVerifier extends TokenVerifier {
  verify(token: string): TokenVerdict | Promise<TokenVerdict>;
}

/** Verified tokens remembered (by their exact text), so a client's token is checked once, not per request. */
const CACHE_ENTRIES = 512;

/** What {@link createTokenVerifier} needs. */
export interface TokenVerifierOptions {
  /** The keys whose tokens are accepted (the current one; older ones during a rotation). */
  keys: readonly SigningKey[];
  issuer: string;
  service: string;
  /** The token endpoint's external URL for challenges; "" or absent: from the request's Host. */
  realm?: string;
  /** Clock skew tolerated, seconds (default 30). */
  skew?: number;
  /** Is the API key with this id still valid (not revoked, not expired)? */
  keyActive?: (id: string) => boolean;
  /** Seconds since the epoch; default the clock. */
  now?: () => number;
}

/** Builds the verifier of the built-in token service's JWTs. */
export function createTokenVerifier(o: TokenVerifierOptions): JwtVerifier {
  const keys = new Map(o.keys.map((k) => [k.kid, k.publicKey] as const));
  const skew = o.skew ?? 30;
  const cache = new Map<string, { verdict: TokenVerdict; exp: number; nbf: number; keyId?: string }>();
  return {
    challenge(req, scope) {
      return bearerChallenge({ realm: realmFor(req, o.realm || undefined), service: o.service, ...(scope !== undefined && { scope }) });
    },
    verify(token) {
      const now = o.now?.() ?? Math.floor(Date.now() / 1000);
      const hit = cache.get(token);
      if (hit) {
        // the signature and claims were checked for exactly this text; time and revocation still apply
        if (now > hit.exp + skew || now + skew < hit.nbf) {
          cache.delete(token);
          return { kind: "denied", reason: "token has expired" };
        }
        if (hit.keyId !== undefined && o.keyActive && !o.keyActive(hit.keyId)) return { kind: "denied", reason: `API key "${hit.keyId}" behind the token was revoked or has expired` };
        return hit.verdict;
      }
      return verifyJwt(token, { keys, issuer: o.issuer, audience: o.service, skew, now }).then((r): TokenVerdict => {
        if (!r.ok) return { kind: "denied", reason: r.reason };
        const c = r.claims;
        if (c.kid !== undefined && o.keyActive && !o.keyActive(c.kid)) return { kind: "denied", reason: `API key "${c.kid}" behind the token was revoked or has expired` };
        const verdict: TokenVerdict = c.sub === "" ? { kind: "anonymous" } : {
          kind: "ok",
          principal: {
            name: c.sub,
            groups: c.grp ?? [],
            source: "token",
            limits: accessToLimits(c.access),
            ...(c.kid !== undefined && { keyId: c.kid }),
          } satisfies Principal,
        };
        if (cache.size >= CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
        cache.set(token, { verdict, exp: c.exp, nbf: c.nbf, ...(c.kid !== undefined && { keyId: c.kid }) });
        return verdict;
      });
    },
  };
}
