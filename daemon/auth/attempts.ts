/**
 * Login attempts in the HTTP front: the failed-login lockout (auth/lockout.ts) and the audit
 * trail's login events joined to the authenticator. The front asks {@link LoginAttempts.refuse}
 * before any credential is verified (a locked source or user gets an immediate 429 with
 * `Retry-After`: no password hash is computed for it and no connection is held); the
 * authenticator reports each verdict through {@link LoginAttempts.failed} and
 * {@link LoginAttempts.succeeded} (the core's AuthEvents observer).
 *
 * Only requests that carry credentials are attempts: an anonymous `/v2/` probe, or any
 * request without an `Authorization` header, is never refused or counted here.
 */
import type { AuditTrail } from "../audit/audit";
import { errorBody } from "../oci/errors";
import type { LoginLockout } from "./lockout";

/** Longest Authorization header whose Basic user name is read (longer ones are not logins). */
const MAX_HEADER = 8192;

/**
 * The user name of a Basic `Authorization` header; undefined for another scheme, bad
 * base64, no colon, or an oversize header. Never throws.
 */
export function basicUser(header: string | null): string | undefined {
  if (header === null || header.length > MAX_HEADER) return undefined;
  if (!/^basic /i.test(header)) return undefined;
  const encoded = header.slice(6).trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded)) return undefined;
  const decoded = Buffer.from(encoded, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : decoded.slice(0, colon);
}

/** Failed-login lockout and login audit events, for the front and the authenticator. */
export class LoginAttempts {
  constructor(
    private readonly lockout: LoginLockout | undefined,
    private readonly audit?: AuditTrail,
  ) {}

  /**
   * The 429 for a request with credentials from a locked source, or for a locked user;
   * undefined when it may be verified (or carries no credentials).
   */
  refuse(req: Request, address: string | undefined): Response | undefined {
    if (!this.lockout) return undefined;
    const header = req.headers.get("authorization");
    if (header === null) return undefined;
    const user = basicUser(header);
    const state = this.lockout.check(user, address);
    if (!state.locked) return undefined;
    const who = state.scope === "source" ? `address ${address}` : `user "${user}"`;
    const detail = `too many failed logins from ${who}; retry after ${state.retryAfterSeconds} s`;
    return new Response(req.method === "HEAD" ? null : errorBody("TOOMANYREQUESTS", detail), {
      status: 429,
      headers: {
        "Content-Type": "application/json",
        "Retry-After": String(state.retryAfterSeconds),
        "Docker-Distribution-API-Version": "registry/2.0",
      },
    });
  }

  /** Credentials were refused: counted for the source and the user, and audited. */
  failed(user: string | undefined, address: string | undefined, reason: string): void {
    const state = this.lockout?.failed(user, address);
    this.audit?.loginFailed(user, address, reason, state?.locked ? state.retryAfterSeconds : undefined);
  }

  /** Credentials were accepted: the user's failures are forgotten. */
  succeeded(user: string | undefined): void {
    this.lockout?.succeeded(user);
  }
}
