/**
 * HTTPS with client certificates (platform/serve.ts with tls.clientCaFile): curl with and
 * without certificates, a foreign-CA and an expired certificate, the real client address,
 * a large body through the relay both ways, and the loopback port refusing direct requests.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ClientCertIdentity } from "../../daemon/auth/mtls";
import { type Server, serve } from "../../daemon/platform/serve";
import { type CertFiles, makePki, type Pki } from "../helpers/pki";

let pki: Pki;
let server: Server;
let device: CertFiles;
let foreign: CertFiles;
let expired: CertFiles;
const identity = new ClientCertIdentity({ identity: "cn", groups: "ou" });
const BIG = 3 * 1024 * 1024 + 17;

beforeAll(async () => {
  pki = makePki();
  device = pki.client("device", { subject: "/O=fleet/OU=line1/CN=device-1" });
  foreign = pki.client("foreign", { subject: "/CN=device-1", foreign: true });
  expired = pki.client("expired", { subject: "/CN=device-1", expired: true });
  server = await serve(
    async (req, peer) => {
      const url = new URL(req.url);
      if (url.pathname === "/big") return new Response(new Uint8Array(BIG).fill(7));
      if (url.pathname === "/echo") return new Response(String((await req.arrayBuffer()).byteLength));
      const verdict = identity.identify({ req }, peer);
      const who = verdict?.kind === "ok" ? `${verdict.principal.name}/${verdict.principal.groups.join(",")}` : "anonymous";
      return new Response(`${who} from ${peer.requestIP(req)?.address}`);
    },
    { hostname: "127.0.0.1", port: 0, maxRequestBodySize: 64 << 20, idleTimeout: 10, tls: { certFile: pki.server.cert, keyFile: pki.server.key, clientCaFile: pki.ca } },
  );
});

afterAll(async () => {
  await server?.stop(true);
  pki?.[Symbol.dispose]();
});

async function curl(path: string, cert?: CertFiles, extra: string[] = []): Promise<{ code: number; body: string; err: string }> {
  const args = ["curl", "-sS", "--max-time", "20", "--cacert", pki.ca, ...(cert ? ["--cert", cert.cert, "--key", cert.key] : []), ...extra, `https://localhost:${server.port}${path}`];
  const p = Bun.spawn(args, { stdout: "pipe", stderr: "pipe" });
  const [body, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, body, err };
}

describe("TLS with client certificates", () => {
  test("a certificate from the CA is an identity, with the real client address", async () => {
    const r = await curl("/", device);
    expect(r.err).toBe("");
    expect(r.body).toBe("device-1/line1 from 127.0.0.1");
  });

  test("no certificate is anonymous", async () => {
    expect((await curl("/")).body).toBe("anonymous from 127.0.0.1");
  });

  test("a certificate from another CA is no identity", async () => {
    expect((await curl("/", foreign)).body).toBe("anonymous from 127.0.0.1");
  });

  test("an expired certificate from the CA is no identity", async () => {
    expect((await curl("/", expired)).body).toBe("anonymous from 127.0.0.1");
  });

  test("large bodies pass the relay both ways intact", async () => {
    const down = await curl("/big", device, ["-o", "/dev/null", "-w", "%{size_download}"]);
    expect(down.body).toBe(String(BIG));
    const file = `${pki.dir}/upload.bin`;
    await Bun.write(file, new Uint8Array(BIG).fill(3));
    const up = await curl("/echo", device, ["--data-binary", `@${file}`]);
    expect(up.body).toBe(String(BIG));
  });

  test("the private loopback port refuses requests that did not come through the front", async () => {
    expect(server.relayPort).toBeGreaterThan(0);
    const r = await fetch(`http://127.0.0.1:${server.relayPort}/`);
    expect(r.status).toBe(403);
    expect(((await r.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("DENIED");
  });

  test("keep-alive requests on one connection keep their identity", async () => {
    const r = await curl("/", device, ["--next", "--cacert", pki.ca, "--cert", device.cert, "--key", device.key, `https://localhost:${server.port}/`]);
    expect(r.body).toBe("device-1/line1 from 127.0.0.1device-1/line1 from 127.0.0.1");
  });
});
