/**
 * The API key routes of the admin API, for any authenticated user (not only admins):
 *
 *   POST   /api/v1/keys        {label, expires_in?: seconds | expires?: RFC 3339, scopes?: [{repos, actions}]}
 *                              -> 201 {key, id, owner, label, created, expires, scopes}; the key is shown only here
 *   GET    /api/v1/keys        -> 200 {keys: [...]}: the caller's own keys (admins: every key), no secrets
 *   DELETE /api/v1/keys/<id>   -> 204; the owner or an admin; 404 otherwise (existence is not revealed)
 *
 * A key cannot be created by a caller who authenticated with an API key or a token: a scoped
 * credential must not mint an unscoped one. A credential limited to some repositories (a
 * scoped key, a token) can neither list nor revoke keys. Errors use the admin API's `{ error }` shape.
 * The front mounts this after deciding who the caller is; an anonymous caller gets 401 there.
 */
import { ApiKeyError, type ApiKeyInfo, type ApiKeyStore } from "../auth/apikeys";
import type { Principal } from "../auth/identity";
import { readTextAtMost } from "../platform/bodytext";

/** Who is calling, as the front decided. */
export interface KeysCaller {
  principal: Principal;
  /** Admins see and revoke every key. */
  admin: boolean;
}

const JSON_HEADERS = { "Content-Type": "application/json", "Cache-Control": "no-store" };
const MAX_BODY = 16 * 1024;
/** Where the routes live. */
export const KEYS_PATH = "/api/v1/keys";

const error = (status: number, message: string) => new Response(JSON.stringify({ error: message }), { status, headers: JSON_HEADERS });
const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });

const show = (k: ApiKeyInfo) => ({
  ...k,
  created: new Date(k.created).toISOString(),
  expires: k.expires === null ? null : new Date(k.expires).toISOString(),
  lastUsed: k.lastUsed === null ? null : new Date(k.lastUsed).toISOString(),
});

/** The routes' handler: the request, its path, and who the front decided is calling. */
export type KeysApi = (req: Request, path: string, caller: KeysCaller) => Promise<Response>;

/** Builds the handler; `now` in milliseconds (tests). */
export function createKeysApi(store: ApiKeyStore, now: () => number = Date.now): KeysApi {
  async function create(req: Request, caller: KeysCaller): Promise<Response> {
    const p = caller.principal;
    if (p.source === "apikey" || p.source === "token") return error(403, `keys cannot be created with a credential of kind "${p.source}"; log in with a password`);
    const text = await readTextAtMost(req, MAX_BODY);
    if (text === undefined) return error(400, `the request body must be JSON of at most ${MAX_BODY} bytes`);
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text);
      if (typeof body !== "object" || body === null || Array.isArray(body)) throw new Error("not an object");
    } catch {
      return error(400, "the request body is not a JSON object");
    }
    if (typeof body.label !== "string") return error(400, "label is required (a string)");
    let expires: number | null = null;
    if (body.expires_in !== undefined) {
      if (typeof body.expires_in !== "number" || !Number.isSafeInteger(body.expires_in) || body.expires_in <= 0) return error(400, `expires_in ${JSON.stringify(body.expires_in)} is not a positive number of seconds`);
      expires = now() + body.expires_in * 1000;
    } else if (body.expires !== undefined && body.expires !== null) {
      const t = typeof body.expires === "string" ? Date.parse(body.expires) : Number.NaN;
      if (Number.isNaN(t)) return error(400, `expires ${JSON.stringify(body.expires).slice(0, 64)} is not an RFC 3339 time`);
      expires = t;
    }
    try {
      const { key, info } = store.create({ owner: p.name, groups: p.groups, label: body.label, expires, scopes: body.scopes as never });
      return json(201, { key, ...show(info) });
    } catch (err) {
      if (err instanceof ApiKeyError) return error(400, err.message);
      throw err;
    }
  }

  return async (req, path, caller) => {
    // a credential limited to some repositories (a scoped key, a token) is no key manager:
    // a leaked pull-only key must not list or revoke its owner's other keys
    if (caller.principal.limits !== undefined) {
      return error(403, `keys cannot be managed with a credential limited to some repositories (a ${caller.principal.source === "token" ? "token" : "scoped API key"}); log in with a password`);
    }
    const rest = path.slice(KEYS_PATH.length);
    if (rest === "" || rest === "/") {
      if (req.method === "GET" || req.method === "HEAD") return json(200, { keys: store.list(caller.admin ? undefined : caller.principal.name).map(show) });
      if (req.method === "POST") return create(req, caller);
      return error(405, `method ${req.method} is not supported on ${KEYS_PATH}`);
    }
    const id = rest.slice(1);
    if (!/^[0-9a-f]{16}$/.test(id)) return error(404, `no API key "${id.slice(0, 40)}"`);
    if (req.method !== "DELETE") return error(405, `method ${req.method} is not supported on ${KEYS_PATH}/<id>`);
    const k = store.get(id);
    if (!k || (!caller.admin && k.owner !== caller.principal.name)) return error(404, `no API key "${id}"`);
    store.revoke(id);
    return new Response(null, { status: 204 });
  };
}
