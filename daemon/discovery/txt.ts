/**
 * What berth says about itself over DNS-SD, and how a browser reads it back.
 *
 * Service type `_oci._tcp`: IANA has no registered type for OCI/Docker registries and the
 * registries we looked at (zot, CNCF distribution) advertise none, so berth uses the short,
 * descriptive `oci` (a service name must be at most 15 characters, RFC 6335).
 *
 * TXT keys (RFC 6763 section 6: short keys, values are opaque strings):
 *   txtvers=1            this layout
 *   api=/v2/             the distribution API's base path
 *   tls=0|1              whether the port speaks HTTPS
 *   fp=sha256:<hex>      SHA-256 of the server certificate (DER), when tls=1
 *   version=<berth version>
 *   id=<instance id>     stable across restarts (a UUID kept in the storage root)
 *   board=<profile>      the board profile in effect ("none" when none)
 *   auth=none|<modes>    whether clients need credentials: "none", or the ways berth accepts
 *                        them, comma-separated: basic (user and password or API key),
 *                        token (the Bearer token flow), mtls (a client certificate)
 *   anon=pull            with auth other than none: some repositories may be pulled without
 *                        credentials (absent: every request needs them)
 * A berth that predates `auth` sends no such key: browsers read that as "not said".
 */

/** The DNS-SD service type berth advertises, without the leading underscore and protocol. */
export const SERVICE_TYPE = "oci";

/** A way berth accepts credentials, as advertised. */
export type AuthMode = "basic" | "token" | "mtls";

/** Whether and how clients must authenticate. */
export interface AdvertisedAuth {
  /** Empty: no credentials needed (no [auth]). A browser keeps modes it does not know as sent. */
  modes: readonly (AuthMode | (string & {}))[];
  /** Some repositories may be pulled anonymously. */
  anonymousPull: boolean;
}

/** What an advertisement carries. */
export interface Advertised {
  api: string;
  tls: boolean;
  fingerprint?: string;
  version: string;
  instanceId: string;
  board: string;
  /** Undefined when a browser read a record without `auth` (an older berth). */
  auth?: AdvertisedAuth;
}

/** The TXT record for an advertisement. */
export function toTxt(a: Advertised): Record<string, string> {
  const txt: Record<string, string> = { txtvers: "1", api: a.api, tls: a.tls ? "1" : "0", version: a.version, id: a.instanceId, board: a.board };
  if (a.tls && a.fingerprint) txt.fp = a.fingerprint;
  const modes = a.auth?.modes ?? [];
  txt.auth = modes.length === 0 ? "none" : modes.join(",");
  if (modes.length > 0 && a.auth?.anonymousPull) txt.anon = "pull";
  return txt;
}

/** Reads a TXT record back; undefined when it is not berth's layout (txtvers missing or other). */
export function fromTxt(txt: Record<string, unknown>): Advertised | undefined {
  const s = (k: string) => {
    const v = txt[k];
    if (typeof v === "string") return v;
    if (v instanceof Uint8Array) return new TextDecoder().decode(v);
    return undefined;
  };
  if (s("txtvers") !== "1") return undefined;
  const tls = s("tls") === "1";
  const fp = s("fp");
  const auth = s("auth");
  return {
    api: s("api") ?? "/v2/",
    tls,
    ...(tls && fp ? { fingerprint: fp } : {}),
    version: s("version") ?? "",
    instanceId: s("id") ?? "",
    board: s("board") ?? "",
    ...(auth !== undefined ? { auth: parseAuth(auth, s("anon") === "pull") } : {}),
  };
}

/** Reads an `auth` value ("none", or modes comma-separated; unknown modes are kept as sent). */
function parseAuth(value: string, anonymousPull: boolean): AdvertisedAuth {
  if (value === "none" || value === "") return { modes: [], anonymousPull: true };
  return { modes: value.split(",").map((m) => m.trim()).filter((m) => m !== ""), anonymousPull };
}
