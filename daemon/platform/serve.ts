/**
 * The HTTP server seam (Bun.serve today) and file-backed response bodies, which Bun sends
 * with sendfile(2) so blob bytes never pass through JavaScript. Every request goes through
 * rawtarget.ts, which tells whether its target was rewritten by the URL parser.
 */
import { rawTargetRoutes } from "./rawtarget";

/** A running server. */
export interface Server {
  readonly port: number;
  readonly hostname: string;
  /** Stops accepting; with `force`, also closes open connections. */
  stop(force?: boolean): Promise<void>;
  /** Requests being served right now. */
  pendingRequests(): number;
}

/** Options for {@link serve}. */
export interface ServeOptions {
  hostname: string;
  port: number;
  /** Largest request body accepted, in bytes. */
  maxRequestBodySize: number;
  /** Seconds a connection may stay idle (Bun allows at most 255). */
  idleTimeout: number;
  /** PEM certificate and key files; HTTPS when given. */
  tls?: { certFile: string; keyFile: string };
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
}

/** Thrown when the address and port are taken by another socket; the message names them. */
export class AddressInUseError extends Error {
  constructor(hostname: string, port: number) {
    super(`Cannot listen on ${hostname}:${port}: the address is in use by another process; stop it or set another [http] port`);
    this.name = "AddressInUseError";
  }
}

/**
 * Starts an HTTP server that answers every request with `fetch` (told the request's peer).
 * The port is never shared: `reusePort: false` is passed explicitly, so a second process on
 * the same address fails here with {@link AddressInUseError} instead of taking half of the
 * connections. (Measured with Bun 1.4.5: with `development: false` and `reusePort` left
 * unset, two processes both bound 127.0.0.1:<port>; without `development` they did not.)
 */
export function serve(fetch: (request: Request, peer: RequestPeer) => Promise<Response> | Response, options: ServeOptions): Server {
  let server: ReturnType<typeof listen>;
  try {
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

function listen(fetch: (request: Request, peer: RequestPeer) => Promise<Response> | Response, options: ServeOptions) {
  const rewritten = new WeakSet<Request>();
  let peer: RequestPeer | undefined; // one per server, made on the first request
  const raw = rawTargetRoutes<Bun.Server<undefined>>(
    (request, bun) => fetch(request, (peer ??= { requestIP: (r) => bun.requestIP(r), rewritten: (r) => rewritten.has(r) })),
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
