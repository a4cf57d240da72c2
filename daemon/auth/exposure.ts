/**
 * The start-up warning for a registry open to the network: berth listening on an address
 * other than loopback with no `[auth]` lets anyone who can reach it push, overwrite and
 * delete every image. It still starts (that is today's behaviour, and a closed LAN may be
 * what the owner wants); the warning says what is exposed and how to close it.
 */
import { isIP } from "node:net";
import type { Logger } from "../log";

/** True for an address that only this host can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackAddress(address: string): boolean {
  const a = address.trim().toLowerCase().replace(/^\[|\]$/g, "");
  if (a === "localhost" || a.endsWith(".localhost")) return true;
  if (isIP(a) === 4) return a.startsWith("127.");
  if (a.startsWith("::ffff:")) return a.slice(7).startsWith("127.");
  return a === "::1" || a === "0:0:0:0:0:0:0:1";
}

/**
 * Logs a warning when `address` is reachable from other hosts and no authentication is
 * configured; returns whether it warned.
 */
export function warnIfExposed(address: string, authConfigured: boolean, log: Logger): boolean {
  if (authConfigured || isLoopbackAddress(address)) return false;
  log.warn("authentication is off and berth listens on a non-loopback address: anyone who can reach it may push, overwrite and delete every image", {
    address,
    fix: "configure [auth] (e.g. htpasswd = \"/etc/berth/htpasswd\") with [[access]] rules, or listen on 127.0.0.1",
  });
  return true;
}
