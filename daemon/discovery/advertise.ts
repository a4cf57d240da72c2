/**
 * Advertising the registry over mDNS/DNS-SD with bonjour-service. One responder per
 * configured interface (multicast-dns sends on one interface per socket), or one for all
 * interfaces when none is configured. Stopping sends goodbye packets (TTL 0), so browsers
 * drop the entry at once instead of when it expires.
 */
import { Bonjour, type Service } from "bonjour-service";
import { networkInterfaces } from "node:os";
import type { Logger } from "../log";
import { type Advertised, SERVICE_TYPE, toTxt } from "./txt";

/** Options for {@link advertise}. */
export interface AdvertiseOptions extends Advertised {
  /** Instance name shown by browsers. */
  name: string;
  port: number;
  /** Interface names; empty: all. */
  interfaces: readonly string[];
  log: Logger;
}

/** A running advertisement. */
export interface Advertisement {
  /** The interfaces it runs on ("*" for all). */
  readonly interfaces: string[];
  /** Sends goodbyes and closes the sockets. */
  stop(): Promise<void>;
}

/** The IPv4 address of each named interface; names without one are reported in `missing`. */
export function interfaceAddresses(names: readonly string[]): { found: Map<string, string>; missing: string[] } {
  const all = networkInterfaces();
  const found = new Map<string, string>();
  const missing: string[] = [];
  for (const name of names) {
    const v4 = all[name]?.find((a) => a.family === "IPv4");
    if (v4) found.set(name, v4.address);
    else missing.push(name);
  }
  return { found, missing };
}

/** Starts advertising; returns at once (probing and announcing run in the background). */
export function advertise(options: AdvertiseOptions): Advertisement {
  const { log } = options;
  const txt = toTxt(options);
  const responders: { bonjour: Bonjour; service: Service }[] = [];
  const start = (label: string, mdnsOptions: Record<string, unknown>, onlyAddress?: string) => {
    const bonjour = new Bonjour(mdnsOptions, (err: Error) => log.warn("mDNS error", { interface: label, error: err.message }));
    const service = bonjour.publish({ name: options.name, type: SERVICE_TYPE, protocol: "tcp", port: options.port, txt, disableIPv6: true });
    if (onlyAddress !== undefined) {
      // bonjour-service answers with an A record for every interface of the host; on a chosen
      // interface, announce only that interface's address, so a client never picks an address
      // it cannot reach from there.
      const all = service.records.bind(service);
      service.records = () => all().filter((r) => r.type !== "A" || r.data === onlyAddress);
    }
    service.on("error", (err: Error) => log.warn("mDNS advertisement failed", { interface: label, error: err.message }));
    responders.push({ bonjour, service });
  };
  let used: string[];
  if (options.interfaces.length === 0) {
    start("*", {});
    used = ["*"];
  } else {
    const { found, missing } = interfaceAddresses(options.interfaces);
    if (missing.length > 0) log.warn("mDNS: interfaces without an IPv4 address are skipped", { interfaces: missing });
    for (const [name, address] of found) start(name, { interface: address, bind: "0.0.0.0" }, address);
    used = [...found.keys()];
  }
  log.info("mDNS advertising", { type: `_${SERVICE_TYPE}._tcp`, name: options.name, port: options.port, interfaces: used, txt });
  return {
    interfaces: used,
    async stop() {
      await Promise.all(
        responders.map(
          ({ bonjour }) =>
            new Promise<void>((resolve) => {
              bonjour.unpublishAll(() => bonjour.destroy(() => resolve()));
            }),
        ),
      );
    },
  };
}
