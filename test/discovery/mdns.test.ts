/**
 * mDNS inside a private network namespace (test/helpers/netns.ts): the real daemon advertises
 * on `va` with TLS on; avahi-browse (an independent DNS-SD implementation, talking to
 * avahi-daemon running in the namespace) resolves it with the right TXT values; and
 * `berth discover` on the other end of the veth finds it and writes a containerd hosts.toml
 * with the certificate pinned, which then works for a TLS request to the registry. The daemon
 * runs with [auth] (anonymous pulls allowed): the TXT record says auth=basic, anon=pull, and
 * the files discover writes say they hold no credentials.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { type RunResult, run, runOk } from "../helpers/clients";
import { type MdnsLab, startMdnsLab } from "../helpers/netns";
import { writeHtpasswd } from "../helpers/auth";

setDefaultTimeout(90_000);

const MAIN = resolve(import.meta.dir, "../../daemon/main.ts");
let lab: MdnsLab;
let daemon: Daemon;
let certPem: string;
let fingerprint: string;

beforeAll(async () => {
  lab = await startMdnsLab();
  const cert = join(lab.dir, "cert.pem");
  const key = join(lab.dir, "key.pem");
  await runOk(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
    "-subj", "/CN=berth-test", "-addext", "subjectAltName=IP:10.77.0.1", "-keyout", key, "-out", cert]);
  certPem = readFileSync(cert, "utf8");
  const fp = await runOk(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"]);
  fingerprint = `sha256:${fp.stdout.trim().split("=")[1]!.replaceAll(":", "").toLowerCase()}`;
  daemon = await startDaemon({
    command: lab.exec([process.execPath, MAIN]),
    config: `[http]\naddress = "10.77.0.1"\nport = 0\ntls_cert = "${cert}"\ntls_key = "${key}"\n[storage]\nroot = "${join(lab.dir, "root")}"\n` +
      `[auth]\nhtpasswd = "${await writeHtpasswd(lab.dir, { ci: "ci-pw" })}"\n[[access]]\nrepos = ["**"]\nanonymous = ["pull"]\nusers = { ci = ["pull", "push"] }\n` +
      `[board]\nprofile = "none"\n[mdns]\nenabled = true\ninterfaces = ["va"]\nname = "berth-lab"\n[log]\nlevel = "debug"\n`,
  });
});

afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
  await lab?.[Symbol.asyncDispose]();
});

/** Polls avahi-browse (bounded) until it resolves berth-lab. */
async function avahiResolve(): Promise<string> {
  let last: RunResult | undefined;
  for (let i = 0; i < 20; i++) {
    last = await run(["avahi-browse", "--resolve", "--terminate", "--parsable", "--no-db-lookup", "_oci._tcp"], { env: { ...process.env, ...lab.busEnv }, timeoutMs: 15_000 });
    const line = last.stdout.split("\n").find((l) => l.startsWith("=;") && l.includes(";berth-lab;"));
    if (line) return line;
  }
  throw new Error(`avahi-browse never resolved berth-lab:\n${last?.stdout}\n${last?.stderr}\n${lab.avahiLog()}`);
}

test("avahi-browse resolves the advertisement with berth's TXT values", async () => {
  const line = await avahiResolve();
  // =;iface;IPv4;name;type;domain;host;address;port;"k=v" "k=v" ...
  const fields = line.split(";");
  expect(fields[3]).toBe("berth-lab");
  expect(fields[4]).toBe("_oci._tcp");
  expect(fields[7]).toBe("10.77.0.1");
  expect(Number(fields[8])).toBe(daemon.port);
  const txt = Object.fromEntries([...fields.slice(9).join(";").matchAll(/"([^"=]+)=([^"]*)"/g)].map((m) => [m[1], m[2]]));
  const id = readFileSync(join(lab.dir, "root/.berth/instance-id"), "utf8").trim();
  expect(txt).toEqual({ txtvers: "1", api: "/v2/", tls: "1", fp: fingerprint, version: "0.1.0-dev", id, board: "none", auth: "basic", anon: "pull" });
});

test("berth discover finds it and writes a containerd hosts.toml that pins the certificate", async () => {
  const certs = join(lab.dir, "certs.d");
  const r = await runOk(lab.exec([process.execPath, MAIN, "discover", "--interface", "vb", "--timeout", "3", "--json", "--write", "containerd", "--dir", certs]), { timeoutMs: 30_000 });
  const found = JSON.parse(r.stdout.slice(0, r.stdout.lastIndexOf("]") + 1));
  expect(found).toHaveLength(1);
  expect(found[0]).toMatchObject({ name: "berth-lab", addresses: ["10.77.0.1"], port: daemon.port, tls: true, fingerprint, api: "/v2/", auth: { modes: ["basic"], anonymousPull: true } });
  const hostPort = `10.77.0.1:${daemon.port}`;
  const hosts = readFileSync(join(certs, hostPort, "hosts.toml"), "utf8");
  expect(hosts).toContain(`server = "https://${hostPort}"`);
  expect(hosts).toContain(`[host."https://${hostPort}"]`);
  expect(hosts).toContain(`ca = "${join(certs, hostPort, "berth-ca.crt")}"`);
  expect(hosts).toContain(`# ${hostPort} asks clients for credentials, which this file does not hold`);
  expect(r.stderr).toContain("ctr images pull --user USER");
  const mirror = readFileSync(join(certs, "docker.io", "hosts.toml"), "utf8");
  expect(mirror).toContain('server = "https://registry-1.docker.io"');
  expect(mirror).toContain(`[host."https://${hostPort}"]\n  capabilities = ["pull", "resolve"]`);
  // The pinned file is exactly the server's certificate, and it verifies the server.
  const pinned = readFileSync(join(certs, hostPort, "berth-ca.crt"), "utf8");
  expect(pinned.replace(/\s/g, "")).toBe(certPem.replace(/\s/g, ""));
  const curl = await runOk(lab.exec(["curl", "-sS", "--cacert", join(certs, hostPort, "berth-ca.crt"), `https://${hostPort}/v2/`]));
  expect(curl.stdout).toBe("{}");
});

test("after SIGTERM (goodbyes sent, exit 0) discover no longer lists it", async () => {
  expect(await daemon.stop()).toBe(0);
  expect(daemon.logs()).toContain('"msg":"mDNS advertising"');
  const r = await runOk(lab.exec([process.execPath, MAIN, "discover", "--interface", "vb", "--timeout", "2", "--json"]), { timeoutMs: 30_000 });
  expect(JSON.parse(r.stdout)).toEqual([]);
});
