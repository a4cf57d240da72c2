/**
 * Client certificates as identities (`[http] tls_client_ca`, `[auth.mtls]`). The TLS layer
 * (platform/tlsfront.ts) verifies the chain against the configured CA during the handshake,
 * and this module checks the issuer's signature and the validity period again before it
 * turns the certificate into a {@link Principal}: the name from the
 * subject's CN (default) or the first SAN of a configured kind, groups optionally from the
 * subject's O or OU values. A certificate that is absent, unverified (another CA, expired)
 * or that carries no usable name is no identity: the request goes on as anonymous (or with
 * whatever other credential it sends), never with a partial identity.
 */
import { X509Certificate } from "node:crypto";
import type { ClientCertificate } from "../platform/serve";
import type { Principal, Verdict } from "./identity";

/** Which part of the certificate names the user. */
export type CertNameField = "cn" | "san-dns" | "san-uri" | "san-email";
/** Which subject attribute lists the groups ("none": no groups). */
export type CertGroupField = "none" | "o" | "ou";

/** Options for {@link ClientCertIdentity}. */
export interface ClientCertOptions {
  identity: CertNameField;
  groups: CertGroupField;
  /**
   * The CA certificates of `tls_client_ca`. When given, a certificate must also be issued
   * and signed by one of them, checked here again after the TLS layer (Bun's verification
   * has had bugs, oven-sh/bun#27985): the file must hold the certificate that issued the
   * client certificates (the intermediate, if there is one).
   */
  issuers?: readonly X509Certificate[];
  /** The clock, for the validity check (tests). */
  now?: () => number;
}

/** The certificates in a PEM file's text (a CA bundle). */
export function parsePemCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** What the HTTP front hands over: anything with `clientCertificate(req)` (platform/serve.ts RequestPeer). */
interface CertPeer {
  clientCertificate?(request: Request): ClientCertificate | undefined;
}

/** Longest name or group taken from a certificate. */
const MAX_NAME = 256;
const SAN_PREFIX: Record<Exclude<CertNameField, "cn">, string> = { "san-dns": "DNS", "san-uri": "URI", "san-email": "email" };

/**
 * Maps a connection's verified client certificate to a principal (source "mtls"). Its
 * `identify(ctx, peer)` has the shape of the core's ClientCertIdentity hook.
 */
export class ClientCertIdentity {
  private readonly now: () => number;
  /** Principals by certificate fingerprint: a device reconnecting is not parsed again. */
  private readonly memo = new Map<string, Principal | null>();

  constructor(readonly options: ClientCertOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The verdict for the request's connection: `ok` with a principal, or undefined (no identity). */
  identify(ctx: { req: Request }, peer: unknown): Verdict | undefined {
    const client = (peer as CertPeer | undefined)?.clientCertificate?.(ctx.req);
    const principal = client && this.principalOf(client);
    return principal ? { kind: "ok", principal } : undefined;
  }

  /** The principal of a connection's client certificate; undefined when it is no identity. */
  principalOf(client: ClientCertificate): Principal | undefined {
    const cert = client.certificate;
    if (!client.authorized || !cert) return undefined;
    const now = this.now();
    if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo)) return undefined;
    const key = cert.fingerprint256;
    const known = this.memo.get(key);
    if (known !== undefined) return known ?? undefined;
    const issuers = this.options.issuers;
    const principal = issuers && !issuers.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey)) ? undefined : this.parse(cert);
    if (this.memo.size >= 1024) this.memo.clear();
    this.memo.set(key, principal ?? null);
    return principal;
  }

  private parse(cert: X509Certificate): Principal | undefined {
    const subject = parseSubject(cert.subject);
    const field = this.options.identity;
    const name = field === "cn" ? subject.get("CN")?.[0] : sanValues(cert.subjectAltName ?? "", SAN_PREFIX[field])[0];
    if (!name || !usable(name)) return undefined;
    const groupKey = this.options.groups === "o" ? "O" : this.options.groups === "ou" ? "OU" : undefined;
    const groups = groupKey ? (subject.get(groupKey) ?? []).filter(usable) : [];
    return Object.freeze({ name, groups: Object.freeze([...new Set(groups)]), source: "mtls" as const });
  }
}

/** A name or group that policies can hold: non-empty, bounded, no control characters. */
function usable(value: string): boolean {
  return value.length > 0 && value.length <= MAX_NAME && !/[\u0000-\u001f\u007f]/.test(value);
}

/**
 * Node's X509Certificate.subject: one `KEY=value` per line, a value with special characters
 * written as a JSON string. Returns the values of each key in order.
 */
export function parseSubject(subject: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of subject.split("\n")) {
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    const key = line.slice(0, eq);
    const value = unquote(line.slice(eq + 1));
    if (value === undefined) continue;
    const list = out.get(key);
    if (list) list.push(value);
    else out.set(key, [value]);
  }
  return out;
}

/**
 * The values of one kind ("DNS", "URI", "email") in Node's subjectAltName text
 * (`DNS:a, URI:b, email:c`; a value with special characters written as a JSON string).
 */
export function sanValues(san: string, kind: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < san.length) {
    const colon = san.indexOf(":", i);
    if (colon < 0) break;
    const name = san.slice(i, colon).trim();
    let end: number;
    let raw: string;
    if (san[colon + 1] === '"') {
      end = colon + 2;
      while (end < san.length && san[end] !== '"') end += san[end] === "\\" ? 2 : 1;
      end += 1;
      raw = san.slice(colon + 1, end);
      const comma = san.indexOf(",", end);
      end = comma < 0 ? san.length : comma;
    } else {
      const comma = san.indexOf(", ", colon);
      end = comma < 0 ? san.length : comma;
      raw = san.slice(colon + 1, end);
    }
    const value = unquote(raw);
    if (name === kind && value !== undefined) out.push(value);
    i = end + 1;
  }
  return out;
}

function unquote(raw: string): string | undefined {
  if (!raw.startsWith('"')) return raw;
  try {
    const value: unknown = JSON.parse(raw);
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}
