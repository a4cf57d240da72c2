/**
 * The HTTP server seam for the Node.js build (armv7, where Bun does not run): the same
 * exports as platform/serve.ts, on node:http. Requests and responses are the web-standard
 * `Request` and `Response` the handlers already use (Node.js >= 18 has them), so nothing
 * above the platform seam knows which runtime serves it.
 *
 * What differs from Bun.serve, and how it is made equal:
 * - node:http hands over the request target exactly as sent, so the raw-target check of
 *   rawtarget.ts is done on it directly (no route table needed).
 * - There is no sendfile: a file body (fileBody) is piped from a read stream, and the
 *   stream is opened only when the response is written, so an EMFILE there reaches the
 *   `error` hook as it does under Bun.
 * - `listen` is asynchronous, hence serve() returns a promise on both runtimes.
 * - Client certificates ([auth.mtls]) need Bun's TLS front: asked for here, serve() throws
 *   a clear error instead of silently serving without them.
 */
import { createReadStream, readFileSync, statSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { AddressInUseError } from "../addressinuse";
import { rawPathRewritten } from "../rawtarget";
import type { RequestPeer, Server, ServeOptions } from "../serve";

export type { ClientCertificate, RequestPeer, Server, ServeOptions } from "../serve";
export { AddressInUseError } from "../addressinuse";

/** A part of a file to send, recorded for the stream a {@link FileBody} hands to `Response`. */
interface FileRange {
  path: string;
  start: number;
  /** Inclusive end, as createReadStream takes it; undefined for "to the end". */
  end: number | undefined;
}

const fileStreams = new WeakMap<ReadableStream<Uint8Array>, FileRange>();

/**
 * A blob-like body backed by a file, which undici's `Response` accepts (it reads `size`,
 * `type` and `stream()`). The stream it returns is remembered, so the server can pipe the
 * file itself rather than pass the bytes through a web stream.
 */
class FileBody {
  readonly type = "";
  constructor(
    private readonly path: string,
    private readonly offset: number,
    readonly size: number,
    private readonly whole: boolean,
  ) {}
  get [Symbol.toStringTag]() {
    return "Blob";
  }
  stream(): ReadableStream<Uint8Array> {
    const range: FileRange = { path: this.path, start: this.offset, end: this.whole ? undefined : this.offset + this.size - 1 };
    // Opened lazily: only a body that is really read (not a HEAD, not a dropped response) opens the file.
    let node: Readable | undefined;
    const web = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        node ??= createReadStream(range.path, { start: range.start, end: range.end });
        const chunk = await new Promise<Uint8Array | null>((resolve, reject) => {
          const n = node!;
          const done = () => {
            n.off("readable", onReadable).off("end", onEnd).off("error", reject);
          };
          const onReadable = () => {
            const c = n.read() as Uint8Array | null;
            if (c !== null) (done(), resolve(c));
          };
          const onEnd = () => (done(), resolve(null));
          n.on("readable", onReadable).on("end", onEnd).on("error", reject);
          onReadable();
        });
        if (chunk === null) controller.close();
        else controller.enqueue(chunk);
      },
      cancel: () => void node?.destroy(),
    });
    fileStreams.set(web, range);
    return web;
  }
  async arrayBuffer(): Promise<ArrayBuffer> {
    const data = readFileSync(this.path);
    return data.buffer.slice(data.byteOffset + this.offset, data.byteOffset + this.offset + this.size) as ArrayBuffer;
  }
  slice(start = 0, end = this.size): FileBody {
    return new FileBody(this.path, this.offset + start, Math.max(0, Math.min(end, this.size) - start), false);
  }
}

/** A response body that streams `length` bytes of a file from `offset` (the whole file when no offset). */
export function fileBody(path: string, offset?: number, length?: number): Blob {
  // Assets bundled with the file loader (the API docs' script and styles) are named relative
  // to the bundle, which is this module's own file once bundled.
  if (!path.startsWith("/")) path = fileURLToPath(new URL(path, import.meta.url));
  if (offset === undefined) {
    let size = 0;
    try {
      size = statSync(path).size;
    } catch {
      // a missing file fails when the body is read, as under Bun
    }
    return new FileBody(path, 0, size, true) as unknown as Blob;
  }
  return new FileBody(path, offset, length ?? 0, false) as unknown as Blob;
}

/** Starts an HTTP(S) server on node:http that answers every request with `fetch`. */
export async function serve(fetch: (request: Request, peer: RequestPeer) => Promise<Response> | Response, options: ServeOptions): Promise<Server> {
  if (options.tls?.clientCaFile) {
    throw new Error("Client certificates (tls_client_ca, [auth.mtls]) need the Bun build of berth; the Node.js build serves TLS without them");
  }
  const peers = new WeakMap<Request, string>();
  const rewritten = new WeakSet<Request>();
  const peer: RequestPeer = {
    requestIP: (request) => {
      const address = peers.get(request);
      return address === undefined ? null : { address };
    },
    rewritten: (request) => rewritten.has(request),
  };
  let pending = 0;
  const scheme = options.tls ? "https" : "http";
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    pending++;
    res.once("close", () => pending--);
    void answer(req, res).catch((err) => {
      if (!res.headersSent) {
        const reply = options.error?.(err as Error) ?? new Response("Internal Server Error", { status: 500 });
        void write(reply, req, res).catch(() => res.destroy());
      } else res.destroy();
    });
  };
  const answer = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const target = req.url ?? "/";
    const absolute = !target.startsWith("/");
    const url = absolute ? target : `${scheme}://${req.headers.host ?? `${options.hostname}:${options.port}`}${target}`;
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > options.maxRequestBodySize) {
      res.writeHead(413, { "content-length": "0", connection: "close" }).end();
      req.destroy();
      return;
    }
    const method = req.method ?? "GET";
    const headers = new Headers();
    for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
    const hasBody = method !== "GET" && method !== "HEAD";
    const request = new Request(url, {
      method,
      headers,
      ...(hasBody ? { body: limited(req, options.maxRequestBodySize), duplex: "half" } : {}),
    } as RequestInit);
    peers.set(request, normaliseAddress(req.socket.remoteAddress));
    const path = absolute ? new URL(target).pathname : target.split("?", 1)[0]!;
    if (rawPathRewritten(path)) rewritten.add(request);
    const response = await fetch(request, peer);
    await write(response, req, res);
  };
  const server = options.tls
    ? https.createServer({ cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) }, handler)
    : http.createServer(handler);
  server.keepAliveTimeout = options.idleTimeout * 1000;
  server.headersTimeout = Math.max(options.idleTimeout, 10) * 1000;
  server.requestTimeout = 0; // bodies are bounded by the handlers' own deadlines
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.setTimeout(options.idleTimeout * 1000, () => socket.destroy());
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) => reject(err.code === "EADDRINUSE" ? new AddressInUseError(options.hostname, options.port) : err);
    server.once("error", fail);
    server.listen({ host: options.hostname, port: options.port, exclusive: true }, () => {
      server.off("error", fail);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    port: address.port,
    hostname: options.hostname,
    stop: (force) =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if (force) for (const s of sockets) s.destroy();
        else server.closeIdleConnections?.();
      }),
    pendingRequests: () => pending,
  };
}

/** "::ffff:127.0.0.1" as "127.0.0.1", as Bun reports it. */
function normaliseAddress(address: string | undefined): string {
  if (!address) return "";
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/** The request body as a web stream that errors once it passes `max` bytes. */
function limited(req: http.IncomingMessage, max: number): ReadableStream<Uint8Array> {
  let seen = 0;
  const source = Readable.toWeb(req) as ReadableStream<Uint8Array>;
  return source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > max) controller.error(new Error("request body too large"));
        else controller.enqueue(chunk);
      },
    }),
  );
}

/** Writes `response` to `res`: status, headers (repeated ones kept), and the body with backpressure. */
async function write(response: Response, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const head: string[] = [];
  response.headers.forEach((value, name) => {
    if (name === "set-cookie") return;
    head.push(name, value);
  });
  for (const cookie of (response.headers as Headers & { getSetCookie?: () => string[] }).getSetCookie?.() ?? []) head.push("set-cookie", cookie);
  const body = response.body;
  const file = body ? fileStreams.get(body) : undefined;
  if (file && !response.headers.has("content-length")) {
    head.push("content-length", String(await fileLength(file)));
  }
  if (!body || req.method === "HEAD") {
    res.writeHead(response.status, response.statusText || undefined, head);
    res.end();
    if (body) void body.cancel().catch(() => {});
    return;
  }
  if (file) {
    // The file itself, piped: no web stream in between. Opened before the head is written,
    // so a failure to open it is an error answer, not a cut-off response.
    const stream = createReadStream(file.path, { start: file.start, end: file.end });
    await new Promise<void>((resolve, reject) => {
      stream.once("open", () => resolve()).once("error", reject);
    });
    void body.cancel().catch(() => {});
    res.writeHead(response.status, response.statusText || undefined, head);
    await new Promise<void>((resolve) => {
      stream.pipe(res);
      const finish = () => (stream.destroy(), resolve());
      res.once("close", finish);
      stream.once("error", () => (res.destroy(), finish()));
    });
    return;
  }
  res.writeHead(response.status, response.statusText || undefined, head);
  const reader = body.getReader();
  let closed = false;
  res.once("close", () => {
    closed = true;
    void reader.cancel().catch(() => {});
  });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || closed) break;
      if (!res.write(value)) await new Promise<void>((resolve) => res.once("drain", resolve).once("close", resolve));
    }
    res.end();
  } catch {
    res.destroy();
  }
}

async function fileLength(file: FileRange): Promise<number> {
  if (file.end !== undefined) return file.end - file.start + 1;
  const { stat } = await import("node:fs/promises");
  return (await stat(file.path)).size - file.start;
}
