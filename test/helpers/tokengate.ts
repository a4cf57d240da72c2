/**
 * A stand-in for the HTTP front's authentication (issue 10's core, h-acore), for end-to-end
 * tests of the token service and API keys with real clients before the core is wired in: a
 * Bun.serve on 127.0.0.1 port 0 that serves berth's own `/auth/token` and `/api/v1/keys`
 * handlers, checks every /v2 request (Bearer through berth's TokenVerifier, Basic through a
 * password chain of a fixed user and berth's ApiKeyStore), answers 401 with berth's Bearer
 * challenge, and proxies what is allowed to a real berth daemon. Only the request
 * classification (method -> action, path -> repository) is the test's own.
 */
import type { Server } from "bun";
import { ApiKeyStore } from "../../daemon/auth/apikeys";
import type { Action, Principal, Verdict } from "../../daemon/auth/identity";
import { bearerChallenge, realmFor } from "../../daemon/auth/scope";
import { generateSigningKey } from "../../daemon/auth/tokenkey";
import { basicCredentials, createTokenService, withinLimits, type Authorize } from "../../daemon/auth/tokenservice";
import { createTokenVerifier } from "../../daemon/auth/tokenverifier";
import { createKeysApi, isKeysPath } from "../../daemon/http/keys";
import { errorBody } from "../../daemon/oci/errors";

/** A running gate. */
export interface TokenGate extends Disposable {
  readonly url: string;
  readonly host: string;
  readonly keys: ApiKeyStore;
  /** Token requests answered, with the scopes asked. */
  readonly tokenRequests: { method: string; scopes: string[]; user?: string; status: number }[];
}

const SERVICE = "berth-test";

/** `/v2/<name>/(manifests|blobs|tags|referrers)/…` -> name; undefined for /v2/ and the catalog. */
function repoOf(path: string): string | undefined {
  const m = /^\/v2\/(.+?)\/(manifests|blobs|tags|referrers)(\/|$)/.exec(path);
  return m?.[1];
}

const actionOf = (method: string): Action => (method === "GET" || method === "HEAD" ? "pull" : method === "DELETE" ? "delete" : "push");

/** Starts a gate in front of `upstream` (a berth daemon's URL) for user `user`/`password`. */
export function startTokenGate(o: { upstream: string; keyStorePath: string; user: string; password: string; authorize: Authorize }): Promise<TokenGate> {
  return (async () => {
    const key = await generateSigningKey();
    const keys = ApiKeyStore.open(o.keyStorePath, { flushInterval: 0 });
    const principalOf: Principal = { name: o.user, groups: [], source: "htpasswd" };
    const passwords = async (user: string, password: string): Promise<Verdict> => {
      const v = await keys.verify(user, password);
      if (v.kind !== "unknown") return v;
      if (user !== o.user) return { kind: "unknown" };
      return password === o.password ? { kind: "ok", principal: principalOf } : { kind: "denied", reason: "wrong password" };
    };
    const tokenRequests: TokenGate["tokenRequests"] = [];
    const tokens = createTokenService({ key, issuer: "berth", service: SERVICE, ttl: 300, passwords, authorize: o.authorize });
    const verifier = createTokenVerifier({ keys: [key], issuer: "berth", service: SERVICE, keyActive: (id) => keys.isActive(id) });
    const keysApi = createKeysApi(keys);

    async function identify(req: Request): Promise<{ principal?: Principal } | "bad"> {
      const h = req.headers.get("authorization");
      if (h === null) return {};
      if (/^bearer /i.test(h)) {
        const v = await verifier.verify(h.slice(7).trim());
        return v.kind === "ok" ? { principal: v.principal } : v.kind === "anonymous" ? {} : "bad";
      }
      const creds = basicCredentials(h);
      if (creds === undefined || creds === "malformed") return "bad";
      const v = await passwords(creds.user, creds.password);
      return v.kind === "ok" ? { principal: v.principal } : "bad";
    }

    const server: Server<undefined> = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const url = new URL(req.url);
        if (url.pathname === "/auth/token") {
          const res = await tokens(req);
          const scopes = req.method === "GET" ? url.searchParams.getAll("scope") : [];
          const creds = basicCredentials(req.headers.get("authorization"));
          tokenRequests.push({ method: req.method, scopes, user: typeof creds === "object" ? creds.user : undefined, status: res.status });
          return res;
        }
        const who = await identify(req);
        if (isKeysPath(url.pathname)) {
          if (who === "bad" || !who.principal) return new Response(JSON.stringify({ error: "log in" }), { status: 401, headers: { "WWW-Authenticate": 'Basic realm="berth"' } });
          return keysApi(req, url.pathname, { principal: who.principal, admin: false });
        }
        const repo = repoOf(url.pathname);
        const action = actionOf(req.method);
        const principal = who === "bad" ? undefined : who.principal;
        const allowed = who !== "bad" && (repo === undefined ? principal !== undefined : withinLimits(principal, repo, action) && o.authorize(principal, repo, action));
        if (!allowed) {
          const scope = repo === undefined ? {} : { scope: { repository: repo, actions: (action === "pull" ? ["pull"] : ["pull", "push"]) as Action[] } };
          const challenge = bearerChallenge({ realm: realmFor(req, undefined), service: SERVICE, ...scope, ...(who === "bad" && { error: "invalid_token" }) });
          // a Basic identity without the right is 403; a token without the scope gets a new challenge (401)
          const status = principal && principal.source !== "token" && repo !== undefined ? 403 : 401;
          return new Response(errorBody(status === 403 ? "DENIED" : "UNAUTHORIZED", `"${action}" on "${repo ?? "/v2/"}"`), { status, headers: { "Content-Type": "application/json", "WWW-Authenticate": challenge, "Docker-Distribution-API-Version": "registry/2.0" } });
        }
        const headers = new Headers(req.headers);
        headers.delete("authorization");
        headers.delete("host");
        const res = await fetch(`${o.upstream}${url.pathname}${url.search}`, { method: req.method, headers, body: req.body, redirect: "manual", duplex: "half" } as RequestInit);
        return new Response(res.body, { status: res.status, headers: res.headers });
      },
    });
    return {
      url: `http://127.0.0.1:${server.port}`,
      host: `127.0.0.1:${server.port}`,
      keys,
      tokenRequests,
      [Symbol.dispose]() {
        server.stop(true);
        keys.close();
      },
    };
  })();
}
