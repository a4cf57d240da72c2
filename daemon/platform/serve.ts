/**
 * The HTTP server seam (Bun.serve) and file-backed response bodies, which Bun sends
 * with sendfile(2) so blob bytes never pass through JavaScript. Every request goes through
 * rawtarget.ts, which tells whether its target was rewritten by the URL parser. The Node.js
 * build (armv7) replaces this module with node/serve.ts, which has the same exports.
 */
import { AddressInUseError } from "./addressinuse";
import { rawTargetRoutes } from "./rawtarget";
import { type ClientCertificate, listenTlsFront, type TlsFront } from "./tlsfront";

export type { ClientCertificate } from "./tlsfront";

/** A running server. */
export interface Server {
  readonly port: number;
  readonly hostname: string;
  /** Stops accepting; with `force`, also closes open connections. */
  stop(force?: boolean): Promise<void>;
  /** Requests being served right now. */
  pendingRequests(): number;
  /** With client certificates asked for: the private loopback port the TLS front relays to (tests). */
  readonly relayPort?: number;
}

/** Options for {@link serve}. */
export interface ServeOptions {
  hostname: string;
  port: number;
  /** Largest request body accepted, in bytes. */
  maxRequestBodySize: number;
  /** Seconds a connection may stay idle (Bun allows at most 255). */
  idleTimeout: number;
  /**
   * PEM certificate and key files; HTTPS when given. With `clientCaFile`, clients are asked
   * for a certificate (optional) and requests are told the verified one (see tlsfront.ts).
   */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string };
  /**
   * The answer when the runtime fails while sending a response (e.g. opening a file body
   * under EMFILE happens after the handler returned); without it, Bun answers 500.
   */
  error?: (err: Error) => Response;
}

/** The connection a request came on: its peer's address, and how its target was sent. */
export interface RequestPeer {
  requestIP(request: Request): { address: string } | null;
  /**
   * True when the request target as sent had `.`/`..` segments or backslashes that the URL
   * parser resolved before `request.url` was built (see rawtarget.ts): route nothing on it.
   */
  rewritten?(request: Request): boolean;
  /**
   * The client certificate of the request's connection; present only when the server asks
   * for client certificates (`tls.clientCaFile`). Undefined when the client sent none.
   */
  clientCertificate?(request: Request): ClientCertificate | undefined;
}

export { AddressInUseError } from "./addressinuse";

/**
 * Starts an HTTP server that answers every request with `fetch` (told the request's peer).
 * The port is never shared: `reusePort: false` is passed explicitly, so a second process on
 * the same address fails here with {@link AddressInUseError} instead of taking half of the
 * connections. (Measured with Bun 1.4.5: with `development: false` and `reusePort` left
 * unset, two processes both bound 127.0.0.1:<port>; without `development` they did not.)
 */
export async function serve(fetch: (request: Request, peer: RequestPeer) => Promise<Response> | Response, options: ServeOptions): Promise<Server> {
  let server: ReturnType<typeof listen>;
  try {
    if (options.tls?.clientCaFile) return serveWithClientCertificates(fetch, options, options.tls as Required<ServeOptions>["tls"] & { clientCaFile: string });
    server = listen(fetch, options);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") throw new AddressInUseError(options.hostname, options.port);
    throw err;
  }
  return {
    port: server.port ?? options.port,
    hostname: server.hostname ?? options.hostname,
    stop: (force) => server.stop(force),
    pendingRequests: () => server.pendingRequests,
  };
}

/**
 * HTTPS asking for client certificates: the TLS front on the configured address relays to a
 * plaintext Bun.serve on a private loopback port, and requests are told their connection's
 * real peer and certificate. A request to the loopback port that did not come through the
 * front (another local process) is refused with 403.
 */
function serveWithClientCertificates(
  fetch: (request: Request, peer: RequestPeer) => Promise<Response> | Response,
  options: ServeOptions,
  tls: { certFile: string; keyFile: string; clientCaFile: string },
): Server {
  let front: TlsFront | undefined;
  const relayed = lastRequestMemo((request: Request, bun: Bun.Server<undefined>) => {
    const port = bun.requestIP(request)?.port;
    return port === undefined ? undefined : front?.peerOf(port);
  });
  const inner = listen(
    (request, peer) => {
      const bun = (peer as RequestPeer & { bun: Bun.Server<undefined> }).bun;
      const via = relayed(request, bun);
      if (!via) return notRelayed();
      return fetch(request, {
        requestIP: (r) => relayed(r, bun) ?? null,
        rewritten: peer.rewritten,
        clientCertificate: (r) => relayed(r, bun)?.client,
      });
    },
    { ...options, hostname: "127.0.0.1", port: 0, tls: undefined },
  );
  try {
    front = listenTlsFront({
      hostname: options.hostname,
      port: options.port,
      certFile: tls.certFile,
      keyFile: tls.keyFile,
      caFile: tls.clientCaFile,
      upstreamPort: inner.port!,
      idleTimeout: options.idleTimeout,
    });
  } catch (err) {
    void inner.stop(true);
    throw err;
  }
  const f = front;
  return {
    port: f.port,
    hostname: f.hostname,
    async stop(force) {
      f.stop(force);
      await inner.stop(force);
    },
    pendingRequests: () => inner.pendingRequests,
    relayPort: inner.port!,
  };
}

/** The answer on the loopback port to a connection that did not come through the TLS front. */
function notRelayed(): Response {
  const detail = "connect to the TLS port; this port serves only connections relayed by it";
  return Response.json({ errors: [{ code: "DENIED", message: "requested access to the resource is denied", detail }] }, { status: 403 });
}

/**
 * `fn` remembering its answer for the last request it was asked about. The front, the rate
 * limiter, the authenticator and the /v2 handler each ask for the peer of the same request,
 * one after the other in the same tick; Bun's `requestIP` costs ~0.5 us a call, the check here
 * a comparison. Keyed on the request object itself, so another request always asks afresh.
 */
function lastRequestMemo<A extends unknown[], R>(fn: (request: Request, ...rest: A) => R): (request: Request, ...rest: A) => R {
  let last: Request | undefined;
  let answer: R;
  return (request, ...rest) => {
    if (request !== last) {
      answer = fn(request, ...rest);
      last = request;
    }
    return answer;
  };
}

function listen(fetch: (request: Request, peer: RequestPeer) => Promise<Response> | Response, options: ServeOptions) {
  const rewritten = new WeakSet<Request>();
  let peer: RequestPeer | undefined; // one per server, made on the first request
  const raw = rawTargetRoutes<Bun.Server<undefined>>(
    (request, bun) => fetch(request, (peer ??= { requestIP: lastRequestMemo((r: Request) => bun.requestIP(r)), rewritten: (r) => rewritten.has(r), bun } as RequestPeer)),
    rewritten,
  );
  return Bun.serve({
    hostname: options.hostname,
    port: options.port,
    reusePort: false,
    maxRequestBodySize: options.maxRequestBodySize,
    idleTimeout: options.idleTimeout,
    development: false,
    ...(options.tls ? { tls: { cert: Bun.file(options.tls.certFile), key: Bun.file(options.tls.keyFile) } } : {}),
    routes: raw.routes,
    fetch: raw.fallback,
    ...(options.error ? { error: options.error } : {}),
  });
}

/** A response body that streams `length` bytes of a file from `offset`. */
export function fileBody(path: string, offset?: number, length?: number): Blob {
  const file = Bun.file(path);
  return offset === undefined ? file : file.slice(offset, offset + (length ?? 0));
}
