/**
 * A recording pass-through proxy for end-to-end tests: Bun.serve on 127.0.0.1 port 0 that
 * forwards every request to `upstream` unchanged (Host header included, so a realm derived
 * from it points back through the tap) and records the method, path, query and the scheme
 * of the Authorization header. It shows which flow a real client used (Basic on every
 * request, or the Bearer token flow) without trusting the client's word.
 */
import type { Server } from "bun";

/** One request seen by the tap. */
export interface Tapped {
  method: string;
  path: string;
  query: URLSearchParams;
  /** "basic", "bearer", or undefined without an Authorization header. */
  scheme: string | undefined;
  /** The Basic user name, when there is one. */
  user?: string;
  status: number;
}

/** A running tap. */
export interface Tap extends Disposable {
  readonly url: string;
  readonly host: string;
  readonly seen: Tapped[];
}

/** Starts a tap in front of `upstream` (e.g. a daemon's URL). */
export function startTap(upstream: string): Tap {
  const seen: Tapped[] = [];
  const server: Server<undefined> = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      const auth = req.headers.get("authorization");
      const scheme = auth?.split(" ")[0]?.toLowerCase();
      const user = scheme === "basic" ? Buffer.from(auth!.slice(6), "base64").toString().split(":")[0] : undefined;
      const res = await fetch(`${upstream}${url.pathname}${url.search}`, { method: req.method, headers: req.headers, body: req.body, redirect: "manual", duplex: "half" } as RequestInit);
      seen.push({ method: req.method, path: url.pathname, query: url.searchParams, scheme, ...(user !== undefined && { user }), status: res.status });
      const headers = new Headers(res.headers);
      headers.delete("content-encoding");
      return new Response(res.body, { status: res.status, headers });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, host: `127.0.0.1:${server.port}`, seen, [Symbol.dispose]: () => void server.stop(true) };
}
