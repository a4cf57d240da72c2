/**
 * What asking for client certificates costs: platform/serve.ts over HTTPS as Bun.serve alone
 * (tls_cert/tls_key) against the TLS front that relays to it (tls_client_ca), on the same
 * handler. Measures small GETs per second and 1 MiB downloads (MiB/s) over keep-alive
 * connections with the client presenting a certificate, and the server process's peak RSS
 * (VmHWM). The server runs in a child process, so client and server do not share a thread.
 *   bun scripts/bench-mtls.ts [seconds per case, default 3] [connections, default 8]
 */
import { serve } from "../daemon/platform/serve";
import { makePki } from "../test/helpers/pki";

const MiB = 1024 * 1024;

if (process.argv[2] === "serve") {
  // child: serve until stdin closes; print the port
  const [, , , mode, cert, key, ca] = process.argv;
  const big = new Uint8Array(MiB).fill(42);
  const server = await serve((req) => (new URL(req.url).pathname === "/big" ? new Response(big) : new Response("ok")), {
    hostname: "127.0.0.1",
    port: 0,
    maxRequestBodySize: 1 << 20,
    idleTimeout: 30,
    tls: { certFile: cert!, keyFile: key!, ...(mode === "front" ? { clientCaFile: ca! } : {}) },
  });
  console.log(server.port);
  for await (const _ of Bun.stdin.stream()) {
    // wait for EOF
  }
  const hwm = /VmHWM:\s+(\d+) kB/.exec(await Bun.file("/proc/self/status").text())?.[1];
  console.log(`hwm ${hwm}`);
  await server.stop(true);
  process.exit(0);
}

const seconds = Number(process.argv[2] ?? 3);
const connections = Number(process.argv[3] ?? 8);
using pki = makePki();
const device = pki.client("bench-device", { subject: "/CN=bench" });
const clientTls = { ca: Bun.file(pki.ca), cert: Bun.file(device.cert), key: Bun.file(device.key) };

async function load(url: string): Promise<{ requests: number; bytes: number }> {
  let requests = 0;
  let bytes = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < until) {
        const r = await fetch(url, { tls: clientTls });
        bytes += (await r.arrayBuffer()).byteLength;
        requests++;
      }
    }),
  );
  return { requests, bytes };
}

const rows: string[] = [];
for (const [mode, label] of [["plain", "Bun.serve TLS"], ["front", "TLS front (tls_client_ca)"]] as const) {
  const child = Bun.spawn([process.execPath, import.meta.path, "serve", mode, pki.server.cert, pki.server.key, pki.ca], { stdin: "pipe", stdout: "pipe" });
  const reader = child.stdout.getReader();
  let out = "";
  while (!out.includes("\n")) out += new TextDecoder().decode((await reader.read()).value);
  const base = `https://localhost:${Number(out.trim())}`;
  await load(`${base}/`);
  const small = await load(`${base}/`);
  const large = await load(`${base}/big`);
  child.stdin.end();
  while (!/hwm \d+/.test(out)) {
    const { value, done } = await reader.read();
    if (done) break;
    out += new TextDecoder().decode(value);
  }
  await child.exited;
  const hwm = Number(/hwm (\d+)/.exec(out)?.[1] ?? 0) / 1024;
  rows.push(`${label.padEnd(28)} ${(small.requests / seconds).toFixed(0).padStart(8)} req/s   ${(large.bytes / MiB / seconds).toFixed(0).padStart(6)} MiB/s   server peak RSS ${hwm.toFixed(0)} MiB`);
}
console.log(`${seconds} s per case, ${connections} connections, client certificate presented\n${rows.join("\n")}`);
