/**
 * A real upstream registry for sync tests: Debian's docker-registry (CNCF distribution
 * 2.8) started on 127.0.0.1 port 0 with a temp config (optionally htpasswd auth and TLS),
 * its request log parsed from the "response completed" lines, stoppable and restartable on
 * the same port and data. The same port because the daemon under test names its upstream by
 * URL in its configuration, which SIGHUP does not reload, and the tests are about berth
 * finding that configured upstream again by itself; a relay on a fixed port in front of a
 * registry on a new port would turn "connection refused" into "accepted, then closed",
 * another failure than a stopped upstream. The port is free the moment the killed process
 * has exited (a listening socket leaves no TIME_WAIT, and distribution binds with
 * SO_REUSEADDR), but it may meanwhile have been handed out as the local port of someone's
 * outgoing connection: a re-bind refused with "address already in use" is retried for a
 * bounded time and then fails with the port named. Plus a hand-written OCI layout builder with random layers of
 * chosen sizes, for pushing with skopeo.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { runOk, sha256, waitFor } from "./clients";

/** One request the upstream served. */
export interface UpstreamRequest {
  method: string;
  uri: string;
  status: number;
}

/** A running docker-registry. */
export interface UpstreamRegistry extends AsyncDisposable {
  readonly dir: string;
  readonly port: number;
  /** host:port */
  readonly host: string;
  /** http(s)://127.0.0.1:port */
  readonly url: string;
  requests(): UpstreamRequest[];
  logs(): string;
  /** Stops it (SIGKILL, like a cable being pulled) and waits for the exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  restart(): Promise<void>;
}

/** Options for {@link startUpstream}. */
export interface UpstreamOptions {
  /** htpasswd auth with this user (bcrypt, made with `htpasswd -B`). */
  auth?: { username: string; password: string };
  /** Serve TLS with this certificate and key (PEM files). */
  tls?: { cert: string; key: string };
  /** Bearer token auth: tokens from `realm`, signed by the key of the certificate in `rootCertBundle`. */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** Run as distribution's pull-through cache of this registry URL (a reference for benchmarks). */
  proxy?: string;
}

/** Starts docker-registry on 127.0.0.1:0 and resolves once GET /v2/ answers. */
export async function startUpstream(options: UpstreamOptions = {}): Promise<UpstreamRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "berth-upstream-"));
  mkdirSync(join(dir, "data"));
  let auth = "";
  if (options.auth) {
    const r = await runOk(["htpasswd", "-Bbn", options.auth.username, options.auth.password]);
    writeFileSync(join(dir, "htpasswd"), r.stdout);
    auth = `auth:\n  htpasswd:\n    realm: berth-test\n    path: ${join(dir, "htpasswd")}\n`;
  }
  if (options.token) {
    const t = options.token;
    auth = `auth:\n  token:\n    realm: ${t.realm}\n    service: ${t.service}\n    issuer: ${t.issuer}\n    rootcertbundle: ${t.rootCertBundle}\n`;
  }
  const proxy = options.proxy ? `proxy:\n  remoteurl: ${options.proxy}\n` : "";
  const tls = options.tls ? `  tls:\n    certificate: ${options.tls.cert}\n    key: ${options.tls.key}\n` : "";
  const writeConfig = (port: number) =>
    writeFileSync(
      join(dir, "config.yml"),
      `version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "data")}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n${auth}${proxy}http:\n  addr: 127.0.0.1:${port}\n  secret: berth-test\n${tls}`,
    );
  let logs = "";
  let proc: Subprocess | undefined;
  let port = 0;
  const scheme = options.tls ? "https" : "http";
  const launchOnce = async (): Promise<"listening" | "port taken"> => {
    writeConfig(port);
    const p = Bun.spawn(["docker-registry", "serve", join(dir, "config.yml")], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    proc = p;
    const before = logs.length;
    const drained = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of p.stderr as ReadableStream<Uint8Array>) logs += decoder.decode(chunk, { stream: true });
    })();
    let taken = false;
    await waitFor("docker-registry to listen", async () => {
      if (p.exitCode !== null) {
        await drained;
        if (port !== 0 && /address already in use/.test(logs.slice(before))) return (taken = true);
        throw new Error(`docker-registry exited with ${p.exitCode}:\n${logs}`);
      }
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(logs.slice(before));
      if (m) port = Number(m[1]);
      return m !== null;
    }, 15_000);
    return taken ? "port taken" : "listening";
  };
  const launch = async () => {
    let outcome = await launchOnce();
    for (let tries = 1; outcome === "port taken"; tries++) {
      if (tries === 50) throw new Error(`docker-registry could not bind 127.0.0.1:${port} again: the port stayed in use (${tries} tries)`);
      await Bun.sleep(100); // the interval of this bounded poll for the port to be free
      outcome = await launchOnce();
    }
  };
  await launch();
  const handle: UpstreamRegistry = {
    dir,
    get port() {
      return port;
    },
    get host() {
      return `127.0.0.1:${port}`;
    },
    get url() {
      return `${scheme}://127.0.0.1:${port}`;
    },
    requests() {
      const out: UpstreamRequest[] = [];
      for (const line of logs.split("\n")) {
        if (!line.includes("response completed")) continue;
        const method = /http\.request\.method=(\w+)/.exec(line)?.[1];
        // logrus quotes a value only when it holds characters such as ":"
        const u = /http\.request\.uri=(?:"([^"]+)"|(\S+))/.exec(line);
        const uri = u?.[1] ?? u?.[2];
        const status = /http\.response\.status=(\d+)/.exec(line)?.[1];
        if (method && uri && status) out.push({ method, uri, status: Number(status) });
      }
      return out;
    },
    logs: () => logs,
    async stop() {
      if (!proc || proc.exitCode !== null) return;
      proc.kill("SIGKILL");
      await proc.exited;
    },
    async restart() {
      await handle.stop();
      await launch();
    },
    async [Symbol.asyncDispose]() {
      await handle.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}

/** A platform of a built image. */
export interface BuiltImage {
  /** Digest of the tagged manifest (the index for several platforms). */
  digest: string;
  /** Per platform ("os/arch[/variant]"): manifest digest and blob digests (config + layers). */
  platforms: Record<string, { manifest: string; blobs: string[] }>;
}

/**
 * Writes an OCI layout at `dir` with tag `tag`: one image per platform, each with layers of
 * the given sizes (random bytes, so every build has fresh digests); several platforms make
 * an index. A platform may name a variant ("linux/arm/v7").
 */
export function buildLayout(dir: string, tag: string, platforms: string[], layerSizes: number[]): BuiltImage {
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  writeFileSync(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  const put = (bytes: Uint8Array<ArrayBuffer> | string) => {
    const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
    const d = sha256(data);
    writeFileSync(join(dir, "blobs", "sha256", d.slice(7)), data);
    return { digest: d, size: data.byteLength };
  };
  const result: BuiltImage = { digest: "", platforms: {} };
  const descs: string[] = [];
  for (const p of platforms) {
    const [os, architecture, variant] = p.split("/");
    const plat = variant ? { architecture, os, variant } : { architecture, os };
    // gzip of random bytes: skopeo copies compressed layers as they are, so digests stay put
    const layers = layerSizes.map((n) => put(Bun.gzipSync(randomBytes(n), { level: 1 })));
    const config = put(JSON.stringify({ ...plat, rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) }, config: {} }));
    const manifest = put(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...l })),
    }));
    result.platforms[p] = { manifest: manifest.digest, blobs: [config.digest, ...layers.map((l) => l.digest)] };
    descs.push(JSON.stringify({ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, platform: plat }));
  }
  let top: { digest: string; size: number; mediaType: string };
  if (platforms.length === 1) {
    const only = JSON.parse(descs[0]!) as { digest: string; size: number };
    top = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: only.digest, size: only.size };
  } else {
    const index = put(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[${descs.join(",")}]}`);
    top = { mediaType: "application/vnd.oci.image.index.v1+json", ...index };
  }
  result.digest = top.digest;
  writeFileSync(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ ...top, annotations: { "org.opencontainers.image.ref.name": tag } }] }));
  return result;
}

/** `n` random bytes (getRandomValues fills at most 64 KiB per call). */
export function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) crypto.getRandomValues(out.subarray(at, Math.min(n, at + 65536)));
  return out;
}

/** A CA and a server certificate for 127.0.0.1 made with openssl, plus a second, unrelated CA. */
export async function makeCertificates(dir: string): Promise<{ ca: string; cert: string; key: string; otherCa: string }> {
  const f = (n: string) => join(dir, n);
  await runOk(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f("ca.key"), "-out", f("ca.crt"), "-days", "2", "-subj", "/CN=berth test CA"]);
  await runOk(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f("other.key"), "-out", f("other.crt"), "-days", "2", "-subj", "/CN=other CA"]);
  await runOk(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f("srv.key"), "-out", f("srv.csr"), "-subj", "/CN=127.0.0.1"]);
  writeFileSync(f("ext"), "subjectAltName=IP:127.0.0.1\n");
  await runOk(["openssl", "x509", "-req", "-in", f("srv.csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial", "-out", f("srv.crt"), "-days", "2", "-extfile", f("ext")]);
  return { ca: f("ca.crt"), cert: f("srv.crt"), key: f("srv.key"), otherCa: f("other.crt") };
}
