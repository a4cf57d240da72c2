/**
 * The plug-in points of authentication, for the parts built beside the core: the token
 * service (a {@link TokenVerifier} and its endpoint), client certificates (a
 * {@link ClientCertIdentity}), and audit / lockout (an {@link AuthEvents} observer). Extra
 * password sources (API keys, LDAP) register on the AuthChain (auth/chain.ts). Every hook
 * is optional; an absent one costs nothing per request.
 */
import type { Principal, Verdict } from "./identity";

/** Where the token endpoint mounts in the HTTP front (Docker registry token spec). */
export const TOKEN_PATH = "/auth/token";

/** What a request looks like to a hook: the request and the peer's address (when known). */
export interface AuthContext {
  readonly req: Request;
  /** The client's address; undefined in socketless tests. */
  readonly address: string | undefined;
}

/** A Bearer token's verdict: a {@link Verdict}, or a valid token that names no identity. */
export type TokenVerdict = Verdict | { kind: "anonymous" };

/**
 * Checks Bearer tokens (the token service's JWTs). `verify` answers `ok` with a principal
 * whose `limits` are the token's access claims, `denied` for a bad, expired or foreign
 * token, `unknown` for a token that is not of this verifier (then the request is refused).
 * `challenge` builds the `WWW-Authenticate` value sent with every 401: the realm of the
 * token endpoint, the service, and, when a repository is concerned, the scope
 * (`repository:<name>:<actions>`, actions comma-separated, e.g. "pull,push").
 */
export interface TokenVerifier {
  verify(token: string, ctx: AuthContext): TokenVerdict | Promise<TokenVerdict>;
  challenge(req: Request, scope: string | undefined): string;
}

/**
 * The token endpoint (`GET /auth/token?service=&scope=`), mounted at {@link TOKEN_PATH}.
 * The front authenticates the request first (Basic against the AuthChain, a client
 * certificate, ...) and hands over the principal (undefined: anonymous); bad credentials
 * never reach it (401). `grant(principal, repo)` is the policy's answer (actions the
 * principal may take there), so a token never carries more than the policy allows.
 */
export type TokenEndpoint = (
  req: Request,
  principal: Principal | undefined,
  grant: (principal: Principal | undefined, repo: string) => readonly ("pull" | "push" | "delete")[],
  /** The request's context (the peer's address), for credentials the endpoint checks itself (the OAuth2 form). */
  ctx?: AuthContext,
) => Response | Promise<Response>;

/**
 * Maps a connection's client certificate to a principal. Called only for requests without
 * an `Authorization` header; `undefined` means no certificate (anonymous). `peer` is the
 * server object the front got from Bun (it can reach the TLS socket).
 */
export interface ClientCertIdentity {
  identify(ctx: AuthContext, peer: unknown): Verdict | undefined;
}

/**
 * Observes authentication and authorization (audit trail, failed-login slow-down and
 * lockout). Every method is optional and must not throw; `gate` is asked before a password
 * is checked and may refuse (429 with Retry-After) by returning the seconds to wait.
 */
export interface AuthEvents {
  gate?(user: string, ctx: AuthContext): number | undefined;
  loginOk?(principal: Principal, ctx: AuthContext): void;
  /**
   * A bad credential (`user` when one was named; `reason` for the log, never sent to the
   * client). `unavailable`: the identity source could not decide (LDAP down), which the
   * lockout does not count against the client.
   */
  loginFailed?(user: string | undefined, reason: string, ctx: AuthContext, unavailable?: boolean): void;
  /** A request refused by the policy (401 for anonymous, 403 for an identity). */
  denied?(principal: Principal | undefined, repo: string | undefined, action: string, ctx: AuthContext): void;
  /** An allowed push, tag move or delete (`reference`: tag or digest; `digest` when known). */
  changed?(principal: Principal | undefined, action: "push" | "delete", repo: string, reference: string, ctx: AuthContext): void;
}
