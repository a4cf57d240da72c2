/**
 * What `berth discover` tells an operator about credentials, from a registry's advertised
 * `auth` (discovery/txt.ts): nothing to do when it needs none; otherwise how each runtime is
 * given them. The runtime files `--write` produces (hosts.toml, registries.conf) carry no
 * secrets, so a registry that needs credentials is not usable as an anonymous mirror: this
 * says so rather than letting the written files pretend otherwise.
 */
import type { AdvertisedAuth } from "./txt";

/** True when a pull may need credentials (auth not "none"; an older berth that said nothing counts as none). */
export function needsCredentials(auth: AdvertisedAuth | undefined): boolean {
  return auth !== undefined && auth.modes.length > 0;
}

/** A one-word summary for listings: "none", or the modes ("basic,token"), with "+anon-pull" when some pulls are open. */
export function authSummary(auth: AdvertisedAuth | undefined): string {
  if (auth === undefined) return "unknown";
  if (auth.modes.length === 0) return "none";
  return `${auth.modes.join(",")}${auth.anonymousPull ? "+anon-pull" : ""}`;
}

/**
 * Lines explaining how to give `runtime` (containerd, crio, podman, or undefined for all)
 * credentials for the registry at `hostPort`; empty when none are needed.
 */
export function credentialAdvice(auth: AdvertisedAuth | undefined, hostPort: string, runtime?: string): string[] {
  if (!needsCredentials(auth)) return [];
  const modes = auth!.modes;
  const lines = [
    `${hostPort} requires credentials (${modes.join(", ")})${auth!.anonymousPull ? "; some repositories may be pulled without them" : " for every request"}.`,
  ];
  const password = modes.includes("basic") || modes.includes("token");
  if (password) {
    if (runtime === undefined || runtime === "podman") {
      lines.push(`  podman, skopeo, buildah: podman login ${hostPort}   (a user and password, or an API key as the password)`);
    }
    if (runtime === undefined || runtime === "crio") {
      lines.push(`  CRI-O: podman login --authfile /etc/crio/auth.json ${hostPort}, and set global_auth_file = "/etc/crio/auth.json" under [crio.image] in crio.conf`);
    }
    if (runtime === undefined || runtime === "containerd") {
      lines.push(`  containerd: ctr images pull --user USER ${hostPort}/REPO:TAG (hosts.toml holds no credentials; Kubernetes pulls need an imagePullSecret for ${hostPort})`);
    }
  }
  if (modes.includes("mtls")) {
    lines.push(`  client certificates: put client.cert and client.key for ${hostPort} beside its CA (containerd: client = [["client.cert", "client.key"]] in hosts.toml; podman/CRI-O: /etc/containers/certs.d/${hostPort}/)`);
  }
  if (!auth!.anonymousPull) {
    lines.push("  As a mirror (of docker.io and others) it serves only runtimes that send credentials to it; without them pulls through it are refused (401) and the runtime goes to the upstream, or fails.");
  }
  return lines;
}
