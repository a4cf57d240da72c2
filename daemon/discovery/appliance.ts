/**
 * Starting the LAN advertisement from the configuration: the instance id (a UUID kept in
 * `<root>/.berth/instance-id`, created on first start), the certificate fingerprint when TLS
 * is on, and the instance name.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Config } from "../config/schema";
import type { Logger } from "../log";
import { VERSION } from "../version";
import { type Advertisement, advertise } from "./advertise";
import { fingerprintDer, firstCertificateDer } from "./fingerprint";
import type { AdvertisedAuth, AuthMode } from "./txt";

/** The registry's stable instance id; created (atomically) on first call. */
export function instanceId(root: string): string {
  const dir = join(root, ".berth");
  const path = join(dir, "instance-id");
  try {
    const id = readFileSync(path, "utf8").trim();
    if (/^[0-9a-f-]{36}$/.test(id)) return id;
  } catch {
    // first start
  }
  const id = crypto.randomUUID();
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${path}.tmp`, `${id}\n`);
  renameSync(`${path}.tmp`, path);
  return id;
}

/** What a berth without `[auth]` advertises: no credentials needed. */
export const NO_AUTH: AdvertisedAuth = { modes: [], anonymousPull: true };

/**
 * What to advertise about credentials: none without `[auth]` (`access` undefined); else
 * `modes` (Basic by default: htpasswd users and every password source; the token service
 * and client certificates add theirs) and whether any repository may be pulled anonymously.
 */
export function advertisedAuth(access: { policy: { anonymousPullsAny: boolean } } | undefined, modes: readonly AuthMode[] = ["basic"]): AdvertisedAuth {
  return access ? { modes, anonymousPull: access.policy.anonymousPullsAny } : NO_AUTH;
}

/**
 * Starts advertising when `mdns.enabled`; undefined otherwise. `auth` says whether clients
 * need credentials and which kinds berth accepts (the TXT `auth` and `anon` keys).
 */
export function startAdvertising(config: Config, port: number, log: Logger, auth: AdvertisedAuth = NO_AUTH): Advertisement | undefined {
  if (!config.mdns.enabled) return undefined;
  const tls = config.http.tls_cert !== "";
  return advertise({
    name: config.mdns.name || `berth on ${hostname()}`,
    port,
    interfaces: config.mdns.interfaces,
    api: "/v2/",
    tls,
    ...(tls ? { fingerprint: fingerprintDer(firstCertificateDer(readFileSync(config.http.tls_cert, "utf8"))) } : {}),
    version: VERSION,
    instanceId: instanceId(config.storage.root),
    board: config.board.profile,
    auth,
    log,
  });
}
