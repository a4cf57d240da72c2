/**
 * A scripted fake upstream registry for sync tests: a Bun.serve on 127.0.0.1 port 0 that
 * answers `GET /v2/` with `{}`, counts every request by path, and hands every other request
 * to the test's own handler (a 404 MANIFEST_UNKNOWN when the handler returns nothing). Plus
 * body makers for hostile answers: a body that breaks off midway and one that drips.
 */

/** A test's answer to one request; `undefined` means "not here" (404). */
export type FakeHandler = (req: Request, path: string) => Response | undefined | Promise<Response | undefined>;

/** A running fake upstream. */
export interface FakeUpstream extends AsyncDisposable {
  readonly port: number;
  /** http://127.0.0.1:port */
  readonly url: string;
  /** How many requests reached `path` so far. */
  hits(path: string): number;
}

/** Starts a fake upstream answering with `handler`. */
export function startFakeUpstream(handler: FakeHandler): FakeUpstream {
  const counts = new Map<string, number>();
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      counts.set(path, (counts.get(path) ?? 0) + 1);
      if (path === "/v2/") return new Response("{}");
      const res = await handler(req, path);
      return res ?? Response.json({ errors: [{ code: "MANIFEST_UNKNOWN", message: "not here" }] }, { status: 404 });
    },
  });
  return {
    port: server.port!,
    url: `http://127.0.0.1:${server.port}`,
    hits: (path) => counts.get(path) ?? 0,
    async [Symbol.asyncDispose]() {
      server.stop(true);
    },
  };
}

/** A body that sends the first `at` bytes of `bytes` and then errors (the connection is cut). */
export function brokenBody(bytes: Uint8Array, at: number): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (!sent) {
        sent = true;
        c.enqueue(bytes.subarray(0, at));
        return;
      }
      c.error(new Error("cut off by the fake upstream"));
    },
  });
}

/**
 * A body that sends `bytes` one byte every `everyMs` ms (the pause is the hostile behaviour
 * under test, not a wait for a condition); cancelled with the request.
 */
export function drippingBody(bytes: Uint8Array, everyMs: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (at >= bytes.byteLength) return c.close();
      if (at > 0) await Bun.sleep(everyMs);
      c.enqueue(bytes.subarray(at, at + 1));
      at++;
    },
  });
}

/** A raw answer: the status line and headers as written (CRLFs added), then the body bytes. */
export interface RawAnswer {
  head: string[];
  body: Uint8Array;
}

/**
 * A fake upstream on a bare TCP socket, for answers an HTTP server will not send: a
 * Content-Length that does not match the bytes that follow. Each connection gets one answer
 * (`Connection: close`) and is closed; `GET /v2/` answers `{}`, unknown paths 404. Bodies
 * are written at once: keep them small (a few KiB, within a socket buffer).
 */
export function startRawUpstream(answer: (method: string, path: string) => RawAnswer | undefined): FakeUpstream {
  const counts = new Map<string, number>();
  const enc = new TextEncoder();
  const server = Bun.listen<{ buf: string }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { buf: "" };
      },
      data(socket, chunk) {
        socket.data.buf += new TextDecoder().decode(chunk);
        if (!socket.data.buf.includes("\r\n\r\n")) return;
        const [method = "GET", path = "/"] = socket.data.buf.split("\r\n")[0]!.split(" ");
        counts.set(path, (counts.get(path) ?? 0) + 1);
        const a = path === "/v2/" ? { head: ["HTTP/1.1 200 OK", "Content-Length: 2"], body: enc.encode("{}") } : answer(method, path);
        const r = a ?? { head: ["HTTP/1.1 404 Not Found", "Content-Type: application/json", "Content-Length: 2"], body: enc.encode("{}") };
        socket.write(enc.encode(`${[...r.head, "Connection: close"].join("\r\n")}\r\n\r\n`));
        if (method !== "HEAD") socket.write(r.body);
        socket.end();
      },
    },
  });
  return {
    port: server.port,
    url: `http://127.0.0.1:${server.port}`,
    hits: (path) => counts.get(path) ?? 0,
    async [Symbol.asyncDispose]() {
      server.stop(true);
    },
  };
}
