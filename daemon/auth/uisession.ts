/**
 * Sessions of the web UI: the UI logs in once with a user name and a password (or an API
 * key) and gets an opaque bearer token for this process, so it keeps no password anywhere:
 *
 *   POST   /auth/ui/session   Authorization: Basic …   -> 201 {token, user, expires_in}
 *   DELETE /auth/ui/session   Authorization: Bearer …  -> 204 (logout)
 *
 * A session carries the principal its login established (source, groups, an API key's
 * limits and id), so every request it makes is decided by the same access policy as the
 * password would be; a session of a key dies with the key. It expires after `idle` seconds
 * without a request (each request renews it) and after {@link MAX_LIFETIME_S} in any case;
 * then the UI asks for the password again. Sessions live in memory only: a restart ends
 * them. One user holds at most {@link MAX_PER_USER} (a new login drops that user's oldest),
 * and all users at most {@link MAX_SESSIONS} (a new one drops the oldest session of the user
 * holding the most), so logging in over and over cannot end anybody else's session. Only a
 * hash of each token is kept. No timer: expired sessions are swept when a new one is opened.
 *
 * Why not the token service's JWTs: those carry repository scopes (a UI would need one per
 * repository it shows, or a scope-less token any registry client could replay against every
 * repository), they cannot be revoked at logout, and without `[auth.token]` there is no key
 * to sign them. This module is loaded on the first login through the UI.
 */
import { createHash, randomBytes } from "node:crypto";
import { type Identified, UI_SESSION_PREFIX } from "./authenticator";
export { UI_SESSION_PATH, UI_SESSION_PREFIX } from "./authenticator";
import type { Principal } from "./identity";

/** Most sessions held; a new one beyond drops the oldest of the user holding the most. */
export const MAX_SESSIONS = 1024;
/** Most sessions of one user (by source and name); a new one beyond drops that user's oldest. */
export const MAX_PER_USER = 16;
/** Longest life of one session, seconds, however active (the UI then asks for the password again). */
export const MAX_LIFETIME_S = 8 * 3600;

interface Session {
  principal: Principal;
  /** Whose session it is, for the per-user bound (source and name). */
  owner: string;
  /** Epoch ms after which the session is gone unless used before. */
  idleUntil: number;
  /** Epoch ms after which it is gone in any case. */
  endsAt: number;
}

const JSON_HEADERS = { "Content-Type": "application/json", "Cache-Control": "no-store" };
const answer = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });

/** The UI's sessions. */
export class UiSessions {
  private readonly sessions = new Map<string, Session>();

  /**
   * `idle`: seconds a session lives without a request; `keyActive`: whether the API key with
   * this id still holds (a session opened with a key ends when it is revoked).
   */
  constructor(
    private readonly idle: number,
    private readonly keyActive?: (id: string) => boolean,
    private readonly now: () => number = Date.now,
  ) {}

  /** Opens a session for `principal`; returns its token and lifetime in seconds. */
  open(principal: Principal): { token: string; expiresIn: number } {
    const now = this.now();
    const owner = `${principal.source}\u0000${principal.name}`;
    // Map order is insertion order: the first session of an owner found is its oldest
    let own = 0;
    let ownOldest: string | undefined;
    for (const [k, s] of this.sessions) {
      if (s.owner !== owner) continue;
      if (now > s.idleUntil || now > s.endsAt) this.sessions.delete(k);
      else if (own++ === 0) ownOldest = k;
    }
    if (own >= MAX_PER_USER) this.sessions.delete(ownOldest!);
    if (this.sessions.size >= MAX_SESSIONS) {
      for (const [k, s] of this.sessions) if (now > s.idleUntil || now > s.endsAt) this.sessions.delete(k);
      // still full: the oldest session of whoever holds the most goes, never a light user's
      if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.heaviestOldest());
    }
    const token = UI_SESSION_PREFIX + randomBytes(32).toString("base64url");
    this.sessions.set(hash(token), { principal, owner, idleUntil: now + this.idle * 1000, endsAt: now + MAX_LIFETIME_S * 1000 });
    return { token, expiresIn: this.idle };
  }

  /** The principal of a live session token (renewing it), or the reason it is refused. */
  verify(token: string): { principal: Principal } | { reason: string } {
    const key = hash(token);
    const s = this.sessions.get(key);
    const now = this.now();
    if (!s) return { reason: "the UI session is unknown (logged out, or the registry restarted); log in again" };
    if (now > s.idleUntil || now > s.endsAt) {
      this.sessions.delete(key);
      return { reason: "the UI session has expired; log in again" };
    }
    if (s.principal.keyId !== undefined && this.keyActive && !this.keyActive(s.principal.keyId)) {
      this.sessions.delete(key);
      return { reason: `API key "${s.principal.keyId}" behind the UI session was revoked or has expired` };
    }
    s.idleUntil = Math.min(now + this.idle * 1000, s.endsAt);
    return { principal: s.principal };
  }

  /** The key of the oldest session of the owner holding the most sessions. */
  private heaviestOldest(): string {
    const counts = new Map<string, { n: number; oldest: string }>();
    let top: { n: number; oldest: string } | undefined;
    for (const [k, s] of this.sessions) {
      let c = counts.get(s.owner);
      if (!c) counts.set(s.owner, (c = { n: 0, oldest: k }));
      c.n++;
      if (!top || c.n > top.n) top = c;
    }
    return top!.oldest;
  }

  /** Ends the session of `token` (logout); false when there was none. */
  close(token: string): boolean {
    return this.sessions.delete(hash(token));
  }

  /** Sessions held (tests, metrics). */
  get size(): number {
    return this.sessions.size;
  }

  /**
   * The endpoint. `who` is the identity the front decided from the request's `Authorization`
   * header (a refusal never reaches here). A session is opened only from a password (Basic):
   * not from another session, a token or a certificate.
   */
  handle(req: Request, who: Identified): Response {
    const header = req.headers.get("authorization") ?? "";
    const scheme = header.slice(0, header.indexOf(" ") + 1).toLowerCase();
    if (req.method === "POST") {
      if (who.kind !== "principal" || scheme !== "basic ") return answer(401, { error: "log in with a user name and a password or an API key (Authorization: Basic)" });
      const { token, expiresIn } = this.open(who.principal);
      return answer(201, { token, user: who.principal.name, expires_in: expiresIn });
    }
    if (req.method === "DELETE") {
      const token = scheme === "bearer " ? header.slice(7).trim() : "";
      if (!token.startsWith(UI_SESSION_PREFIX)) return answer(400, { error: "log out with the session's token (Authorization: Bearer)" });
      this.close(token);
      return new Response(null, { status: 204, headers: { "Cache-Control": "no-store" } });
    }
    return new Response(JSON.stringify({ error: `method "${req.method.slice(0, 20)}" is not allowed here; use POST or DELETE` }), { status: 405, headers: { ...JSON_HEADERS, Allow: "POST, DELETE" } });
  }
}

function hash(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}
