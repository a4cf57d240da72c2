/**
 * Token scopes (distribution's docs/spec/auth/scope.md): parsing the `scope` parameters a
 * client sends to the token endpoint, turning granted `access` claims into the
 * {@link ScopeLimit}s a token principal carries, and building the `WWW-Authenticate: Bearer`
 * challenge a 401 sends so clients know where to get a token and for what.
 *
 *   scope := type [ "(" class ")" ] ":" name ":" action [ "," action ]*
 *
 * The name is everything between the first and the last colon (so `host:5000/app` parses);
 * only `repository` (any class) and `registry:catalog:*` are understood, others are dropped.
 */
import { ACTIONS, type Action, type ScopeLimit } from "./identity";
import type { AccessEntry } from "./jwt";
import { nameProblem } from "../oci/names";

/** Most scopes one token request may ask for; more is a 400. */
export const MAX_SCOPES = 64;

/** A requested scope berth understands. */
export type RequestedScope =
  | { kind: "repository"; name: string; actions: Action[] }
  | { kind: "catalog" };

const isAction = (a: string): a is Action => (ACTIONS as readonly string[]).includes(a);

/** Expands `*` and drops unknown actions (the spec tells servers to ignore what they do not know). */
export function parseActions(list: string): Action[] {
  const out = new Set<Action>();
  for (const a of list.split(",")) {
    if (a === "*") for (const x of ACTIONS) out.add(x);
    else if (isAction(a)) out.add(a);
  }
  return ACTIONS.filter((a) => out.has(a));
}

/**
 * Parses one scope string; undefined for a resource type berth does not serve or an invalid
 * repository name (nothing can be granted on it).
 */
export function parseScope(scope: string): RequestedScope | undefined {
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first < 0 || last === first) return undefined;
  // a resource class, "repository(plugin)", is dropped: cut at the first "(" when the type
  // ends in ")" (a regular expression here backtracked quadratically on "((((…")
  let type = scope.slice(0, first);
  const paren = type.indexOf("(");
  if (paren >= 0 && type.endsWith(")")) type = type.slice(0, paren);
  const name = scope.slice(first + 1, last);
  const actions = scope.slice(last + 1);
  if (type === "registry" && name === "catalog" && actions.split(",").includes("*")) return { kind: "catalog" };
  if (type !== "repository" || nameProblem(name) !== undefined) return undefined;
  return { kind: "repository", name, actions: parseActions(actions) };
}

/** Converts a token's `access` claims into the limits of its principal. */
export function accessToLimits(access: readonly AccessEntry[]): ScopeLimit[] {
  const out: ScopeLimit[] = [];
  for (const e of access) {
    if (e.type === "repository" && nameProblem(e.name) === undefined) {
      const actions = parseActions(e.actions.join(","));
      if (actions.length > 0) out.push({ repos: [e.name], actions });
    } else if (e.type === "registry" && e.name === "catalog") {
      // a catalog token lists what the policy lets its subject pull
      out.push({ repos: ["**"], actions: ["pull"] });
    }
  }
  return out;
}

/** What a Bearer challenge names. */
export interface ChallengeParams {
  /** The token endpoint's absolute URL. */
  realm: string;
  service: string;
  /** The scope the failed request needed, e.g. "repository:team/app:pull,push"; none for /v2/. */
  scope?: string;
  /** RFC 6750 error, e.g. "invalid_token" or "insufficient_scope". */
  error?: string;
}

const quoted = (s: string) => `"${s.replace(/["\\]/g, "")}"`;

/** The `WWW-Authenticate` value of a 401 when the token service is on. */
export function bearerChallenge(p: ChallengeParams): string {
  let out = `Bearer realm=${quoted(p.realm)},service=${quoted(p.service)}`;
  if (p.scope !== undefined) out += `,scope=${quoted(p.scope)}`;
  if (p.error) out += `,error=${quoted(p.error)}`;
  return out;
}

/**
 * The token endpoint's URL for a request: the configured realm when set, else derived from
 * the request's scheme and Host header (what the client used to reach the registry).
 */
export function realmFor(req: Request, configured: string | undefined, path = "/auth/token"): string {
  if (configured) return configured;
  let scheme = "http:";
  let host = "localhost";
  try {
    const u = new URL(req.url);
    scheme = u.protocol;
    host = u.host;
  } catch {
    // a bare path: fall back to the Host header below
  }
  const header = req.headers.get("host");
  if (header && /^[A-Za-z0-9.\-:[\]]{1,255}$/.test(header)) host = header;
  return `${scheme}//${host}${path}`;
}
