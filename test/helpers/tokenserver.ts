/**
 * A minimal token service for docker-registry's `auth: token` (the distribution token
 * protocol): Bun.serve on 127.0.0.1 port 0, Basic credentials checked on every token
 * request, and the requested scopes granted as an RS256 JWT whose `x5c` header carries a
 * self-signed certificate (made with openssl) that the registry trusts via
 * `rootcertbundle`. Wrong or missing credentials get 401. Every request is recorded.
 */
import { createPrivateKey, createSign, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runOk } from "./clients";

/** One token request the service answered. */
export interface TokenRequest {
  user: string | undefined;
  service: string | null;
  scopes: string[];
  status: number;
}

/** A running token service. */
export interface TokenServer extends Disposable {
  /** The realm URL to configure in the registry. */
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  /** PEM file with the signing certificate, for `rootcertbundle`. */
  readonly rootCertBundle: string;
  requests(): TokenRequest[];
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");

/** Starts a token service accepting `username`/`password`; key and certificate go in `dir`. */
export async function startTokenServer(dir: string, username: string, password: string): Promise<TokenServer> {
  const keyFile = join(dir, "token.key");
  const certFile = join(dir, "token.crt");
  await runOk(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyFile, "-out", certFile, "-days", "2", "-subj", "/CN=berth test token signer"]);
  const key = createPrivateKey(readFileSync(keyFile));
  const certDer = new X509Certificate(readFileSync(certFile)).raw;
  const service = "berth-test-upstream";
  const issuer = "berth-test-issuer";
  const log: TokenRequest[] = [];

  const sign = (sub: string, scopes: string[]) => {
    const now = Math.floor(Date.now() / 1000);
    const access = scopes.flatMap((s) => {
      // "repository:team/app:pull,push" (the name may hold no colon; actions are comma-separated)
      const first = s.indexOf(":");
      const last = s.lastIndexOf(":");
      if (first < 0 || last <= first) return [];
      return [{ type: s.slice(0, first), name: s.slice(first + 1, last), actions: s.slice(last + 1).split(",") }];
    });
    const header = b64url(JSON.stringify({ alg: "RS256", typ: "JWT", x5c: [certDer.toString("base64")] }));
    const claims = b64url(JSON.stringify({ iss: issuer, sub, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: crypto.randomUUID(), access }));
    const signature = createSign("RSA-SHA256").update(`${header}.${claims}`).sign(key);
    return `${header}.${claims}.${b64url(signature)}`;
  };

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      const scopes = url.searchParams.getAll("scope").flatMap((s) => s.split(" ")).filter((s) => s !== "");
      const m = /^Basic\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "");
      const decoded = m ? Buffer.from(m[1]!, "base64").toString() : "";
      const at = decoded.indexOf(":");
      const user = at >= 0 ? decoded.slice(0, at) : undefined;
      const ok = url.pathname === "/token" && user === username && decoded.slice(at + 1) === password;
      log.push({ user, service: url.searchParams.get("service"), scopes, status: ok ? 200 : 401 });
      if (!ok) return Response.json({ errors: [{ code: "UNAUTHORIZED", message: "bad credentials" }] }, { status: 401 });
      const token = sign(user!, scopes);
      return Response.json({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() });
    },
  });
  return {
    realm: `http://127.0.0.1:${server.port}/token`,
    service,
    issuer,
    rootCertBundle: certFile,
    requests: () => log,
    [Symbol.dispose]() {
      server.stop(true);
    },
  };
}
