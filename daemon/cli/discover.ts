/**
 * `berth discover`: list the berth registries on the LAN, and with `--write` configure this
 * device's container runtime to use one of them as a mirror.
 *
 *   berth discover [--timeout SECONDS] [--interface NAME] [--json]
 *                  [--write containerd|crio|podman] [--instance ID] [--mirror-of REGISTRY]...
 *                  [--dir DIR]
 *
 * --dir: containerd's hosts directory (default /etc/containerd/certs.d), or for crio/podman a
 * root under which etc/containers/... is written (default /). With TLS the certificate is
 * fetched from the registry and must match the advertised fingerprint, else nothing is written.
 */
import { connect } from "node:tls";
import { join } from "node:path";
import { interfaceAddresses } from "../discovery/advertise";
import { type Found, discover } from "../discovery/browse";
import { derToPem, fingerprintDer } from "../discovery/fingerprint";
import { writeContainerd, writeRegistriesConf } from "../discovery/runtime-config";
import { authSummary, credentialAdvice, needsCredentials } from "../discovery/credentials";
import { COMMAND_HELP, usageError } from "./usage";
import { printable } from "../client/output";

const USAGE = COMMAND_HELP.discover!;

/** Fetches the certificate `host:port` presents (not verified: it is checked against the pin). */
export function fetchCertificate(host: string, port: number, timeoutMs = 5000): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, rejectUnauthorized: false, servername: undefined });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no TLS handshake with ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      const raw = socket.getPeerCertificate().raw;
      socket.end();
      if (!raw) reject(new Error(`${host}:${port} presented no certificate`));
      else resolve(new Uint8Array(raw));
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Runs the command; returns the exit code. */
export async function discoverCommand(args: string[]): Promise<number> {
  let timeoutMs = 3000;
  let iface: string | undefined;
  let json = false;
  let writeFor: string | undefined;
  let instance: string | undefined;
  let dir: string | undefined;
  const mirrorOf: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const val = () => {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    try {
      if (a === "--timeout") {
        const s = Number(val());
        if (!(s > 0 && s <= 60)) throw new UsageError("--timeout: expected seconds between 0 and 60");
        timeoutMs = Math.round(s * 1000);
      } else if (a === "--interface") iface = val();
      else if (a === "--json") json = true;
      else if (a === "--write") {
        writeFor = val();
        if (!["containerd", "crio", "podman"].includes(writeFor)) throw new UsageError(`--write: expected containerd, crio or podman, got "${writeFor}"`);
      } else if (a === "--instance") instance = val();
      else if (a === "--mirror-of") mirrorOf.push(val());
      else if (a === "--dir") dir = val();
      else throw new UsageError(`unknown argument "${a}"`);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      return usageError(err.message, USAGE);
    }
  }
  let interfaceAddress: string | undefined;
  if (iface !== undefined) {
    const { found } = interfaceAddresses([iface]);
    interfaceAddress = found.get(iface);
    if (!interfaceAddress) {
      console.error(`--interface: ${iface} has no IPv4 address`);
      return 1;
    }
  }
  const registries = await discover({ timeoutMs, ...(interfaceAddress ? { interfaceAddress } : {}) });
  if (json) console.log(JSON.stringify(registries, null, 2));
  else if (registries.length === 0) console.log(`no berth registry answered within ${timeoutMs / 1000} s`);
  else {
    for (const r of registries) {
      console.log(describe(r));
      for (const line of credentialAdvice(r.auth, `${r.addresses[0] ?? r.host}:${r.port}`)) console.log(line);
    }
  }
  if (!writeFor) return 0;
  const chosen = instance ? registries.find((r) => r.instanceId === instance || r.name === instance) : registries[0];
  if (!chosen) {
    console.error(instance ? `no registry with instance id or name "${instance}" answered` : "nothing to write: no registry found");
    return 1;
  }
  const address = chosen.addresses[0];
  if (!address) {
    console.error(`${chosen.name} advertised no IPv4 address`);
    return 1;
  }
  const hostPort = `${address}:${chosen.port}`;
  let certPem: string | undefined;
  if (chosen.tls) {
    if (!chosen.fingerprint) {
      console.error(`${chosen.name} advertises TLS but no certificate fingerprint; refusing to trust it blindly`);
      return 1;
    }
    const der = await fetchCertificate(address, chosen.port);
    const got = fingerprintDer(der);
    if (got !== chosen.fingerprint) {
      console.error(`certificate of ${hostPort} is ${got}, but ${chosen.name} advertised ${chosen.fingerprint}; nothing written`);
      return 1;
    }
    certPem = derToPem(der);
  }
  const target = { hostPort, tls: chosen.tls, upstreams: mirrorOf.length > 0 ? mirrorOf : ["docker.io"], needsCredentials: needsCredentials(chosen.auth), ...(certPem ? { certPem } : {}) };
  const written = writeFor === "containerd"
    ? writeContainerd(dir ?? "/etc/containerd/certs.d", target)
    : writeRegistriesConf(join(dir ?? "/", "etc/containers/registries.conf.d/50-berth.conf"), join(dir ?? "/", "etc/containers/certs.d"), target);
  for (const p of written) console.log(`wrote ${p}`);
  const advice = credentialAdvice(chosen.auth, hostPort, writeFor);
  if (advice.length > 0) {
    const say = json ? console.error : console.log;
    say(`The files written hold no credentials. ${advice[0]}`);
    for (const line of advice.slice(1)) say(line);
  }
  return 0;
}

class UsageError extends Error {}

function describe(r: Found): string {
  // every field came from the LAN: shown, never obeyed by the terminal
  const where = printable(`${r.addresses[0] ?? r.host}:${r.port}`);
  const p = (v: unknown) => printable(String(v));
  return `${p(r.name)}\t${r.tls ? "https" : "http"}://${where}${p(r.api)}\tauth=${p(authSummary(r.auth))}\tversion=${p(r.version)}\tid=${p(r.instanceId)}\tboard=${p(r.board)}${r.fingerprint ? `\tfp=${p(r.fingerprint)}` : ""}`;
}
