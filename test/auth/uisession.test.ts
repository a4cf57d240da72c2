/**
 * The UI's session store (daemon/auth/uisession.ts) under a user who logs in over and over:
 * a low-privilege user filling the store must not end an admin's session (each login beyond
 * the bound dropped the oldest session of anyone), and one user's logins beyond the per-user
 * bound replace that user's own oldest session only.
 */
import { describe, expect, test } from "bun:test";
import { MAX_PER_USER, MAX_SESSIONS, UiSessions } from "../../daemon/auth/uisession";
import type { Principal } from "../../daemon/auth/identity";

const admin: Principal = { name: "admin", groups: [], source: "htpasswd" };
const viewer: Principal = { name: "viewer", groups: [], source: "htpasswd" };

describe("UI session bounds", () => {
  test("a user logging in past the store's bound does not end another user's session", () => {
    const store = new UiSessions(600);
    const { token } = store.open(admin);
    for (let i = 0; i < MAX_SESSIONS + 10; i++) store.open(viewer);
    expect("principal" in store.verify(token)).toBe(true);
    expect(store.size).toBeLessThanOrEqual(MAX_SESSIONS);
  });

  test("many users filling the store: a new login drops a session of the heaviest user", () => {
    const store = new UiSessions(600);
    const { token } = store.open(admin);
    const users = Math.ceil(MAX_SESSIONS / MAX_PER_USER) + 2;
    for (let u = 0; u < users; u++) for (let i = 0; i < MAX_PER_USER; i++) store.open({ name: `u${u}`, groups: [], source: "apikey" });
    expect(store.size).toBe(MAX_SESSIONS);
    expect("principal" in store.verify(token)).toBe(true);
  });

  test("one user's logins past its bound replace its own oldest session", () => {
    const store = new UiSessions(600);
    const first = store.open(viewer).token;
    const second = store.open(viewer).token;
    for (let i = 2; i < MAX_PER_USER; i++) store.open(viewer);
    expect(store.size).toBe(MAX_PER_USER);
    store.open(viewer);
    expect(store.size).toBe(MAX_PER_USER);
    expect(store.verify(first)).toEqual({ reason: expect.stringContaining("unknown") });
    expect("principal" in store.verify(second)).toBe(true);
  });
});
