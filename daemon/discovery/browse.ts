/**
 * Finding berth registries on the LAN: browse `_oci._tcp` for a while and collect what
 * answers with berth's TXT layout.
 */
import { Bonjour } from "bonjour-service";
import { type Advertised, SERVICE_TYPE, fromTxt } from "./txt";
import { setTimeout as sleep } from "node:timers/promises";

/** A registry found on the LAN. */
export interface Found extends Advertised {
  name: string;
  /** The responder's host name (e.g. "gateway.local"). */
  host: string;
  /** IPv4 addresses from its A records (the first is used to reach it). */
  addresses: string[];
  port: number;
}

/** Browses for `timeoutMs` (on `interfaceAddress` if given) and returns the registries seen, by name. */
export async function discover(options: { timeoutMs: number; interfaceAddress?: string }): Promise<Found[]> {
  // bonjour-service passes its first argument on to multicast-dns (interface, bind), though its type says otherwise.
  const mdnsOptions = options.interfaceAddress ? { interface: options.interfaceAddress, bind: "0.0.0.0" } : {};
  const bonjour = new Bonjour(mdnsOptions as ConstructorParameters<typeof Bonjour>[0]);
  const found = new Map<string, Found>();
  try {
    const browser = bonjour.find({ type: SERVICE_TYPE, protocol: "tcp" });
    const take = (s: { name: string; host: string; port: number; addresses?: string[]; txt?: unknown }) => {
      const adv = fromTxt((s.txt ?? {}) as Record<string, unknown>);
      if (!adv) return;
      const addresses = (s.addresses ?? []).filter((a) => a.includes("."));
      found.set(s.name, { name: s.name, host: s.host, addresses, port: s.port, ...adv });
    };
    browser.on("up", take);
    browser.on("txt-update", take);
    browser.on("srv-update", take);
    // Ask again half-way: the first query may go out before the socket joined the group.
    const again = setTimeout(() => browser.update(), Math.floor(options.timeoutMs / 2));
    await sleep(options.timeoutMs);
    clearTimeout(again);
    browser.stop();
  } finally {
    await new Promise<void>((resolve) => bonjour.destroy(() => resolve()));
  }
  return [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
}
