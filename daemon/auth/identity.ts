/**
 * The seam between identity (who is asking: daemon/auth/*) and authorization (what they may
 * do: daemon/access/*). Identity is decided once per request, before dispatch, by the HTTP
 * front, and handed down as a small immutable value; nothing below `http/` sees a header.
 *
 * Every identity source (htpasswd, API keys, the token service's JWTs, client certificates,
 * LDAP) produces the same {@link Principal}; policies name users and groups, never the
 * source. An anonymous request has no principal (`undefined`).
 */

/** What a policy grants on a repository (Docker token spec scope actions use the same words; `*` = all). */
export type Action = "pull" | "push" | "delete";

/** Every action, in the order the docs list them. */
export const ACTIONS: readonly Action[] = ["pull", "push", "delete"];

/** How an identity was established (for logs and the audit trail; policies never look at it). */
export type IdentitySource = "htpasswd" | "apikey" | "token" | "mtls" | "ldap" | "admin-token";

/** A repository glob and the actions a credential is limited to (API keys, tokens). */
export interface ScopeLimit {
  repos: readonly string[];
  actions: readonly Action[];
}

/** An authenticated identity. */
export interface Principal {
  /** The user name (htpasswd user, API key owner, certificate subject, LDAP uid). */
  readonly name: string;
  /** Groups (LDAP attribute, configured groups of htpasswd users); may be empty. */
  readonly groups: readonly string[];
  readonly source: IdentitySource;
  /**
   * Limits carried by the credential itself: an API key's repository scopes, a token's
   * `access` claims. The policy's grant is intersected with them. Absent: no extra limit.
   */
  readonly limits?: readonly ScopeLimit[];
  /** An API key's id, for its last-use record and the audit trail. */
  readonly keyId?: string;
}

/**
 * The answer of a credential check. `unknown` means "not mine" (the next source is asked);
 * `denied` means the credential is known and wrong (counted as a failed login); `unavailable`
 * means the source could not decide (an LDAP server down): fail closed with 503.
 */
export type Verdict =
  | { kind: "ok"; principal: Principal }
  | { kind: "unknown" }
  | { kind: "denied"; reason: string }
  | { kind: "unavailable"; reason: string };

/** A source that checks a user name and password (htpasswd, API keys, LDAP). */
export interface PasswordSource {
  readonly name: IdentitySource;
  verify(user: string, password: string, signal?: AbortSignal): Promise<Verdict>;
}
