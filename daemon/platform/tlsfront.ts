/**
 * The TLS listener used when client certificates are asked for (`[http] tls_client_ca`).
 *
 * Bun.serve (1.4.5) can request a client certificate and verify it during the handshake, but
 * it gives the fetch handler no way to see the certificate (no API on the server or the
 * request; oven-sh/bun#14097), and node:https under Bun hands its handler a plain Socket
 * without getPeerCertificate(). Bun.listen's TLS sockets do expose it
 * (`authorized`, `getPeerX509Certificate()`), so in that mode this module terminates TLS
 * with Bun.listen and relays the plaintext bytes to a Bun.serve listening on a private
 * loopback port. Each relayed connection is registered under its loopback source port,
 * which Bun.serve reports as `requestIP(req).port`, so a request can be told the verified
 * certificate and the real client address of the connection it came on. A connection to
 * the loopback port that did not come through the front is not registered (see
 * {@link TlsFront.peerOf}). Backpressure: a side whose writes are not taken whole pauses the
 * other side's reads until it drains, so each connection buffers at most a few chunks.
 */
import type { X509Certificate } from "node:crypto";
import type { Socket, TCPSocketListener } from "bun";

/** The client certificate of a connection, as the TLS handshake left it. */
export interface ClientCertificate {
  /** True when the client sent a certificate that chains to the configured CA and is in its validity period. */
  readonly authorized: boolean;
  /** The verified certificate; present only when `authorized`. */
  readonly certificate?: X509Certificate;
  /** Why verification failed (an OpenSSL code such as "CERT_HAS_EXPIRED"); absent when authorized or when no certificate was sent. */
  readonly error?: string;
}

/** What the front knows about one relayed connection. */
export interface FrontPeer {
  /** The client's address and port as seen by the TLS listener. */
  readonly address: string;
  readonly port: number;
  readonly client: ClientCertificate;
}

/** Options for {@link listenTlsFront}. */
export interface TlsFrontOptions {
  hostname: string;
  port: number;
  certFile: string;
  keyFile: string;
  /** PEM file of the CA(s) whose client certificates are identities. */
  caFile: string;
  /** The loopback port of the plaintext Bun.serve the bytes go to. */
  upstreamPort: number;
  /** Seconds a client connection may stay idle. */
  idleTimeout: number;
}

/** A running TLS front. */
export interface TlsFront {
  readonly port: number;
  readonly hostname: string;
  /** The peer of the relayed connection whose loopback source port is `port`; undefined when none is registered. */
  peerOf(port: number): FrontPeer | undefined;
  /** Connections open right now. */
  connections(): number;
  /** Stops accepting; with `force`, closes open connections too. */
  stop(force?: boolean): void;
}

/** One direction's queue of bytes the destination did not take yet. */
interface Side {
  socket?: Socket<Relay>;
  queue: Uint8Array[];
  ended: boolean;
}

interface Relay {
  client: Side;
  upstream: Side;
  peer?: FrontPeer;
  /** The loopback source port this relay is registered under. */
  key?: number;
}

const NO_CERTIFICATE: ClientCertificate = Object.freeze({ authorized: false });

/**
 * Starts the TLS front on `hostname:port` relaying to `127.0.0.1:upstreamPort`. Throws
 * (synchronously, like Bun.serve) when the address is taken (`code: "EADDRINUSE"`).
 */
export function listenTlsFront(options: TlsFrontOptions): TlsFront {
  const peers = new Map<number, FrontPeer>();
  const relays = new Set<Relay>();

  /** Writes `chunk` to `to`; what it does not take is queued and `from` paused until `to` drains. */
  const send = (to: Side, from: Side, chunk: Uint8Array): void => {
    if (!to.socket || to.queue.length > 0) {
      to.queue.push(chunk.slice());
      from.socket?.pause();
      return;
    }
    const n = to.socket.write(chunk);
    if (n < chunk.length) {
      to.queue.push(chunk.slice(Math.max(n, 0)));
      from.socket?.pause();
    }
  };
  /** Flushes `to`'s queue; once empty, resumes `from` and passes on an end. */
  const flush = (to: Side, from: Side): void => {
    const socket = to.socket;
    if (!socket) return;
    while (to.queue.length > 0) {
      const chunk = to.queue[0]!;
      const n = socket.write(chunk);
      if (n < chunk.length) {
        to.queue[0] = chunk.subarray(Math.max(n, 0));
        return;
      }
      to.queue.shift();
    }
    if (from.ended) socket.end();
    else from.socket?.resume();
  };
  /** `from` ended: end `to` once its queue is written. */
  const ended = (from: Side, to: Side): void => {
    from.ended = true;
    if (to.socket && to.queue.length === 0) to.socket.end();
  };
  const release = (relay: Relay): void => {
    if (relay.key !== undefined && peers.get(relay.key) === relay.peer) peers.delete(relay.key);
    relays.delete(relay);
  };

  const connectUpstream = (relay: Relay): void => {
    Bun.connect<Relay>({
      hostname: "127.0.0.1",
      port: options.upstreamPort,
      data: relay,
      socket: {
        open(socket) {
          if (!relay.client.socket) {
            socket.end();
            release(relay);
            return;
          }
          relay.upstream.socket = socket;
          relay.key = socket.localPort;
          peers.set(socket.localPort, relay.peer!);
          flush(relay.upstream, relay.client);
        },
        data(_socket, chunk) {
          send(relay.client, relay.upstream, chunk);
        },
        drain() {
          flush(relay.upstream, relay.client);
        },
        end() {
          ended(relay.upstream, relay.client);
        },
        close() {
          relay.upstream.ended = true;
          release(relay);
          relay.client.socket?.end();
        },
        error() {},
        connectError() {
          relay.client.socket?.end();
          release(relay);
        },
      },
    }).catch(() => {
      relay.client.socket?.end();
      release(relay);
    });
  };

  const listener: TCPSocketListener<Relay> = Bun.listen<Relay>({
    hostname: options.hostname,
    port: options.port,
    tls: {
      cert: Bun.file(options.certFile),
      key: Bun.file(options.keyFile),
      ca: Bun.file(options.caFile),
      requestCert: true,
      rejectUnauthorized: false,
    },
    socket: {
      open(socket) {
        const relay: Relay = { client: { socket, queue: [], ended: false }, upstream: { queue: [], ended: false } };
        socket.data = relay;
        relays.add(relay);
        socket.timeout(options.idleTimeout);
      },
      handshake(socket, _ok, error) {
        const relay = socket.data;
        let client = NO_CERTIFICATE;
        if (socket.authorized) {
          client = { authorized: true, certificate: socket.getPeerX509Certificate() };
        } else if (error && socket.getPeerCertificate()) {
          client = { authorized: false, error: String((error as { code?: string }).code ?? error.message) };
        }
        relay.peer = { address: socket.remoteAddress, port: socket.remotePort, client };
        connectUpstream(relay);
      },
      data(socket, chunk) {
        const relay = socket.data;
        send(relay.upstream, relay.client, chunk);
      },
      drain(socket) {
        const relay = socket.data;
        flush(relay.client, relay.upstream);
      },
      end(socket) {
        const relay = socket.data;
        ended(relay.client, relay.upstream);
      },
      close(socket) {
        const relay = socket.data;
        relay.client.ended = true;
        relay.client.socket = undefined;
        relay.upstream.socket?.end();
        if (!relay.upstream.socket) release(relay);
      },
      timeout(socket) {
        socket.end();
      },
      error() {},
    },
  });

  return {
    port: listener.port,
    hostname: listener.hostname,
    peerOf: (port) => peers.get(port),
    connections: () => relays.size,
    stop(force) {
      listener.stop(force);
      if (force) {
        for (const relay of relays) {
          relay.client.socket?.terminate();
          relay.upstream.socket?.terminate();
        }
      }
    },
  };
}
