/**
 * Login attempts: the failed-login lockout (auth/lockout.ts) and the audit trail's login
 * events, plugged into the authenticator as its {@link AuthEvents} observer.
 *
 * - `gate` is asked before a password is checked: a locked source or user is refused at
 *   once (429 with `Retry-After`): no password hash is computed for it and no connection is
 *   held, so a locked-out client costs the others nothing.
 * - `loginFailed` counts a failure for the source and the user when a user was named (a
 *   password guess); a bad or expired Bearer token or a malformed header is audited but not
 *   counted (tokens cannot be guessed, and clients behind one NAT address re-fetch expired
 *   tokens all day). An identity source that could not decide (LDAP down) is neither.
 * - `loginOk` forgets the user's failures when a password was accepted (not a token or key).
 * Requests without credentials never reach any of these: anonymous `/v2/` probes are never
 * slowed.
 */
import type { AuditTrail } from "../audit/audit";
import type { AuthContext, AuthEvents } from "./hooks";
import type { Principal } from "./identity";
import type { LoginLockout } from "./lockout";

/** Failed-login lockout and login audit events, as the authenticator's observer. */
export class LoginAttempts implements AuthEvents {
  constructor(
    private readonly lockout: LoginLockout | undefined,
    private readonly audit?: AuditTrail,
  ) {}

  /** Seconds to wait when `user` or the request's source is locked out; undefined: verify. */
  gate(user: string, ctx: AuthContext): number | undefined {
    if (!this.lockout) return undefined;
    const state = this.lockout.check(user, ctx.address);
    return state.locked ? state.retryAfterSeconds : undefined;
  }

  /**
   * A password was accepted: the user's failures and doublings are forgotten. A token, an
   * API key or a certificate proves no password, so it forgets nothing: a user's devices
   * pulling with tokens all day must not keep resetting a password guess spread over many
   * addresses.
   */
  loginOk(principal: Principal): void {
    if (principal.source !== "htpasswd" && principal.source !== "ldap") return;
    this.lockout?.succeeded(principal.name);
  }

  /** Credentials were refused (`unavailable`: the source could not decide, not the client's fault). */
  loginFailed(user: string | undefined, reason: string, ctx: AuthContext, unavailable?: boolean): void {
    const state = user !== undefined && !unavailable ? this.lockout?.failed(user, ctx.address) : undefined;
    this.audit?.loginFailed(user, ctx.address, reason, state?.locked ? state.retryAfterSeconds : undefined);
  }
}
