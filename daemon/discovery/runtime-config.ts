/**
 * Mirror configuration for container runtimes, from a discovered registry:
 * - containerd: `<dir>/<upstream>/hosts.toml` (one per mirrored upstream) and
 *   `<dir>/<host:port>/hosts.toml` (pulling from berth by its own name), per containerd's
 *   docs/hosts.md;
 * - CRI-O and podman: a registries.conf drop-in (containers-registries.conf(5)) with berth as
 *   a mirror of each upstream, and, when TLS is on, `<certs>/<host:port>/ca.crt`
 *   (containers-certs.d(5)).
 *
 * Pinning: when the registry advertises TLS, the caller fetches its certificate, checks that
 * its SHA-256 equals the advertised `fp`, and passes the PEM here; it is written as the only
 * CA trusted for that host. For the usual self-signed appliance certificate that trusts
 * exactly that certificate and nothing else.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** What the writers need about the registry. */
export interface MirrorTarget {
  /** host:port clients use to reach berth (an IPv4 address and port). */
  hostPort: string;
  tls: boolean;
  /** PEM of the pinned certificate (required when tls). */
  certPem?: string;
  /** Upstreams berth mirrors, e.g. ["docker.io"]. */
  upstreams: readonly string[];
  /** The registry needs credentials (advertised auth other than none); the files say where they go. */
  needsCredentials?: boolean;
}

/** A comment line for files written for a registry that needs credentials (they hold none). */
function credentialsNote(t: MirrorTarget, how: string): string {
  return t.needsCredentials ? `# ${t.hostPort} asks clients for credentials, which this file does not hold: ${how}\n` : "";
}

const UPSTREAM_SERVER: Record<string, string> = { "docker.io": "https://registry-1.docker.io" };

function write(path: string, text: string, written: string[]) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  written.push(path);
}

const q = (s: string) => JSON.stringify(s);

const CONTAINERD_HOW = "ctr --user USER, or an imagePullSecret for Kubernetes";

/** Writes containerd hosts.toml files under `dir` (e.g. /etc/containerd/certs.d); returns the paths. */
export function writeContainerd(dir: string, t: MirrorTarget): string[] {
  const written: string[] = [];
  const scheme = t.tls ? "https" : "http";
  const caPath = join(dir, t.hostPort, "berth-ca.crt");
  if (t.tls) {
    if (!t.certPem) throw new Error("a TLS registry needs its pinned certificate");
    write(caPath, t.certPem, written);
  }
  const hostBlock = (caps: string) =>
    `[host.${q(`${scheme}://${t.hostPort}`)}]\n  capabilities = ${caps}\n${t.tls ? `  ca = ${q(caPath)}\n` : ""}`;
  for (const upstream of t.upstreams) {
    const server = UPSTREAM_SERVER[upstream] ?? `https://${upstream}`;
    write(join(dir, upstream, "hosts.toml"), `# Written by berth discover: ${t.hostPort} mirrors ${upstream}.\n${credentialsNote(t, CONTAINERD_HOW)}server = ${q(server)}\n\n${hostBlock('["pull", "resolve"]')}`, written);
  }
  write(
    join(dir, t.hostPort, "hosts.toml"),
    `# Written by berth discover: the berth registry at ${t.hostPort}.\n${credentialsNote(t, CONTAINERD_HOW)}server = ${q(`${scheme}://${t.hostPort}`)}\n\n${hostBlock('["pull", "resolve", "push"]')}`,
    written,
  );
  return written;
}

/**
 * Writes a registries.conf drop-in (`confPath`, e.g. /etc/containers/registries.conf.d/50-berth.conf)
 * and, for TLS, `<certsDir>/<host:port>/ca.crt`; returns the paths.
 */
export function writeRegistriesConf(confPath: string, certsDir: string, t: MirrorTarget): string[] {
  const written: string[] = [];
  if (t.tls) {
    if (!t.certPem) throw new Error("a TLS registry needs its pinned certificate");
    write(join(certsDir, t.hostPort, "ca.crt"), t.certPem, written);
  }
  const insecure = t.tls ? "false" : "true";
  let text = `# Written by berth discover: the berth registry at ${t.hostPort}.\n${credentialsNote(t, `podman login ${t.hostPort} (CRI-O: --authfile /etc/crio/auth.json and global_auth_file in crio.conf)`)}`;
  text += `\n[[registry]]\nlocation = ${q(t.hostPort)}\ninsecure = ${insecure}\n`;
  for (const upstream of t.upstreams) {
    text += `\n[[registry]]\nprefix = ${q(upstream)}\nlocation = ${q(upstream)}\n\n[[registry.mirror]]\nlocation = ${q(t.hostPort)}\ninsecure = ${insecure}\npull-from-mirror = "all"\n`;
  }
  write(confPath, text, written);
  return written;
}
