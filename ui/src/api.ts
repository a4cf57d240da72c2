/**
 * How the UI talks to berth: only its public HTTP APIs (/v2, /api/v1, /auth/token, the
 * health probes). Logging in trades the user's password (or API key) once for a UI session
 * token (`POST /auth/ui/session`, daemon/auth/uisession.ts); only that token and the user
 * name are kept, in sessionStorage (this tab only, gone when it closes), never the password.
 * The token is sent as a Bearer `Authorization` header by this module alone, with
 * `credentials: "omit"`: no cookie and no browser-cached credential is ever attached, so
 * another site's page cannot make the browser act for the user (no CSRF surface). Each
 * request renews the session on the server; once it has expired (idle too long, the
 * registry restarted, the API key revoked), the first refused request forgets it and the
 * UI goes back to the login page, saying why.
 */

const TOKEN = "berth.session";
const USER = "berth.user";
/** Where the UI logs in and out (daemon/auth/authenticator.ts UI_SESSION_PATH). */
const SESSION_PATH = "/auth/ui/session";

/** An API answer that was not 2xx, with the server's message. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The logged-in user's name, or undefined. */
export function user(): string | undefined {
  return sessionStorage.getItem(USER) ?? undefined;
}

/** The Basic credential of `name`/`password` (sent once, to log in; never stored). */
export function basicOf(name: string, password: string): string {
  const bytes = new TextEncoder().encode(`${name}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

/**
 * Trades `name`/`password` for a session token and keeps the token for this tab. Returns
 * undefined when logged in, else the server's refusal.
 */
export async function login(name: string, password: string): Promise<ApiError | undefined> {
  const res = await call(SESSION_PATH, { method: "POST" }, basicOf(name, password));
  if (res.status !== 201) return res.status === 404 ? new ApiError(404, "this registry has no [auth]: there is nothing to log in to") : failure(res);
  const body = (await res.json()) as { token: string; user: string };
  sessionStorage.setItem(TOKEN, body.token);
  sessionStorage.setItem(USER, body.user);
  expiredNotice = undefined;
  return undefined;
}

/** Logs out: the tab forgets the session, and the server ends it (resolves once it answered). */
export async function logout(): Promise<void> {
  const token = sessionStorage.getItem(TOKEN);
  forget();
  if (token) await call(SESSION_PATH, { method: "DELETE" }, `Bearer ${token}`).catch(() => undefined);
}

function forget(): void {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(USER);
}

let expiredNotice: string | undefined;
let onExpired: (() => void) | undefined;

/** What the login page says after a session ended by itself (once). */
export function takeExpiredNotice(): string | undefined {
  const n = expiredNotice;
  expiredNotice = undefined;
  return n;
}

/** Called when the session turns out to have expired (main.ts shows the login page). */
export function whenExpired(fn: () => void): void {
  onExpired = fn;
}

/** fetch() with the session's token (or `credential`), never cookies, never cached. */
export async function call(path: string, init: RequestInit = {}, credential?: string): Promise<Response> {
  const headers = new Headers(init.headers);
  const token = credential === undefined ? sessionStorage.getItem(TOKEN) : null;
  const auth = credential ?? (token ? `Bearer ${token}` : undefined);
  if (auth && !headers.has("Authorization")) headers.set("Authorization", auth);
  const res = await fetch(path, { ...init, headers, credentials: "omit", cache: "no-store" });
  // the session ended on the server (only the session's own requests tell: a login's 401 is a wrong password)
  if (res.status === 401 && token && sessionStorage.getItem(TOKEN) === token) {
    forget();
    resetRights();
    expiredNotice = "Your session has ended (idle too long, logged out elsewhere, or the registry restarted); log in again.";
    onExpired?.();
  }
  return res;
}

/** The error message of a failed answer: OCI `{errors:[…]}`, admin `{error}`, or the status. */
export async function failure(res: Response): Promise<ApiError> {
  let msg = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (Array.isArray(body?.errors) && body.errors[0]) msg = `${body.errors[0].code}: ${body.errors[0].message}${body.errors[0].detail ? ` (${typeof body.errors[0].detail === "string" ? body.errors[0].detail : JSON.stringify(body.errors[0].detail)})` : ""}`;
    else if (typeof body?.error === "string") msg = body.error;
    else if (typeof body?.error_description === "string") msg = body.error_description;
  } catch {
    // not JSON: the status line says enough
  }
  return new ApiError(res.status, msg);
}

/** GET `path` as JSON; throws {@link ApiError} on a non-2xx answer. */
export async function json<T = unknown>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await call(path, init);
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

/** Media types a manifest GET accepts. */
export const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

/** A manifest or index by tag or digest, with its digest. */
export async function manifest(repo: string, ref: string): Promise<{ digest: string; body: Manifest }> {
  const res = await call(`/v2/${repo}/manifests/${encodeURIComponent(ref)}`, { headers: { Accept: MANIFEST_ACCEPT } });
  if (!res.ok) throw await failure(res);
  return { digest: res.headers.get("Docker-Content-Digest") ?? ref, body: (await res.json()) as Manifest };
}

/** A descriptor (OCI image-spec descriptor.md). */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

/** An image manifest or an index. */
export interface Manifest {
  mediaType?: string;
  artifactType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** What the signed-in identity may do, as the server says. */
export interface Rights {
  /** The admin API answers (reads; changes may still be refused, e.g. off-loopback without a token). */
  admin: boolean;
  /** Repositories where delete was granted (asked lazily). */
  delete: Map<string, boolean>;
}

/** The server's flags, from index.html's meta tags. */
export const server = {
  auth: document.querySelector('meta[name="berth-auth"]')?.getAttribute("content") === "on",
  tokens: document.querySelector('meta[name="berth-token"]')?.getAttribute("content") === "on",
  keys: document.querySelector('meta[name="berth-keys"]')?.getAttribute("content") === "on",
  search: document.querySelector('meta[name="berth-search"]')?.getAttribute("content") === "on",
};

/** Asks the search API (zot's GraphQL at /v2/_zot/ext/search); throws on an error answer. */
export async function search<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await call("/v2/_zot/ext/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query, variables }) });
  if (!res.ok) throw await failure(res);
  const body = (await res.json()) as { data?: T; errors?: { message: string }[] };
  if (body.errors?.length) throw new ApiError(200, `search: ${body.errors.map((e) => e.message).join("; ")}`);
  return body.data as T;
}

/** A vulnerability summary as search gives it (zot's ImageVulnerabilitySummary). */
export interface VulnSummary {
  MaxSeverity?: string | null;
  Count?: number | null;
}

/** "not scanned", "none found", or "HIGH (3)". */
export function vulnText(v: VulnSummary | null | undefined): string {
  if (!v || !v.MaxSeverity) return "not scanned";
  if (v.MaxSeverity === "NONE" || v.Count === 0) return "none found";
  return `${v.MaxSeverity} (${v.Count ?? "?"})`;
}

/** A severity badge: "bad" from HIGH up, plain below; `data-severity` names the level. */
export function vulnBadge(v: VulnSummary | null | undefined, prefix = ""): HTMLElement {
  const el = document.createElement("span");
  const sev = v?.MaxSeverity ?? "";
  el.className = `badge${/CRITICAL|HIGH/.test(sev) && (v?.Count ?? 0) > 0 ? " bad" : sev === "NONE" || v?.Count === 0 ? " ok" : ""}`;
  el.setAttribute("data-severity", sev || "unscanned");
  el.textContent = `${prefix}${vulnText(v)}`;
  return el;
}

/** One signature as search reports it (zot's SignatureSummary). */
export interface SignatureSummary {
  Tool?: string | null;
  IsTrusted?: boolean | null;
  Author?: string | null;
}

/**
 * The signature status of an image: "verified" (a signature checked against a trusted key,
 * with its signer), "unverified" (signatures, none trusted), "signed" (a signature refers to
 * it, but nothing checked it: [trust] off), or "unsigned".
 */
export function signatureBadge(isSigned: boolean | null | undefined, infos: SignatureSummary[] | null | undefined, referred = false): HTMLElement {
  const list = infos ?? [];
  const trusted = list.filter((s) => s.IsTrusted);
  const el = document.createElement("span");
  const who = (l: SignatureSummary[]) => [...new Set(l.map((s) => `${s.Tool ?? "?"}: ${s.Author || "unknown signer"}`))].join(", ");
  const [state, cls, title] = trusted.length > 0 ? ["verified", "badge ok", `Verified: ${who(trusted)}`]
    : list.length > 0 ? ["unverified", "badge bad", `No signature verifies with a trusted key (${who(list)})`]
    : isSigned || referred ? ["signed", "badge", "A signature refers to this image; berth did not verify it ([trust] off)"]
    : ["unsigned", "badge", "No signature"];
  el.className = cls;
  el.setAttribute("data-signature", state);
  el.title = title;
  el.textContent = trusted.length > 0 ? `verified: ${[...new Set(trusted.map((s) => s.Author || s.Tool))].join(", ")}` : state;
  return el;
}

let rights: Promise<Rights> | undefined;

/** The identity's rights (asked once per login). */
export function myRights(): Promise<Rights> {
  // with [auth], an anonymous caller is no admin: no need to ask (and log a 401)
  if (server.auth && !user()) return Promise.resolve({ admin: false, delete: new Map() });
  return (rights ??= call("/api/v1/info").then((r) => ({ admin: r.ok, delete: new Map() }), () => ({ admin: false, delete: new Map() })));
}

/** Forgets the rights (after a login or logout). */
export function resetRights(): void {
  rights = undefined;
}

/**
 * May this identity delete in `repo`? Without [auth] the registry is open (the server still
 * decides); an admin may; otherwise the token endpoint's grant says (it never grants more
 * than the policy allows). Without a token service a non-admin is not offered deletes.
 */
export async function mayDelete(repo: string): Promise<boolean> {
  if (!server.auth) return true;
  if (!user()) return false;
  const r = await myRights();
  if (r.admin) return true;
  if (!server.tokens) return false;
  const known = r.delete.get(repo);
  if (known !== undefined) return known;
  let granted = false;
  try {
    const res = await call(`/auth/token?scope=${encodeURIComponent(`repository:${repo}:delete`)}`);
    if (res.ok) {
      const body = (await res.json()) as { token?: string; access_token?: string };
      const jwt = body.token ?? body.access_token ?? "";
      const claims = JSON.parse(atob(jwt.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/")));
      granted = (claims.access ?? []).some((a: { name: string; actions: string[] }) => a.name === repo && a.actions.includes("delete"));
    }
  } catch {
    granted = false;
  }
  r.delete.set(repo, granted);
  return granted;
}
