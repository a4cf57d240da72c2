/**
 * What can go wrong with an upstream, and how each failure reaches a local client. The
 * mapping (decided here, once):
 *
 * | failure                               | OCI code              | status |
 * | ------------------------------------- | --------------------- | ------ |
 * | unreachable (refused, DNS, reset), upstream marked down | UNKNOWN | 503 |
 * | no answer in time                     | UNKNOWN               | 504    |
 * | TLS certificate not trusted / bad     | UNKNOWN               | 502    |
 * | upstream refused berth's credentials  | DENIED                | 502    |
 * | upstream 5xx or a malformed answer    | UNKNOWN               | 502    |
 * | content did not match its digest      | UNKNOWN               | 502    |
 * | upstream rate limit (429)             | TOOMANYREQUESTS       | 429    |
 * | not found upstream either             | MANIFEST_UNKNOWN / BLOB_UNKNOWN / NAME_UNKNOWN | 404 |
 *
 * The detail always names the upstream ("upstream hub: TLS certificate not trusted
 * (UNABLE_TO_VERIFY_LEAF_SIGNATURE)"), never a local path or credential.
 */
import { type ErrorCode, RegistryError } from "../oci/errors";

/** Kinds of upstream failure. */
export type UpstreamFault = "unreachable" | "timeout" | "tls" | "auth" | "server" | "invalid" | "digest" | "ratelimited" | "not-found" | "down";

/** An upstream failure; `retryable` faults count toward the circuit breaker. */
export class UpstreamError extends Error {
  constructor(
    readonly fault: UpstreamFault,
    readonly upstream: string,
    readonly detail: string,
  ) {
    super(`upstream ${upstream}: ${detail}`);
    this.name = "UpstreamError";
  }

  /** True for faults that say the upstream (not the request) is in trouble. */
  get retryable(): boolean {
    return this.fault === "unreachable" || this.fault === "timeout" || this.fault === "server" || this.fault === "down" || this.fault === "ratelimited";
  }

  /** True for faults that mean the upstream cannot be used at all right now (breaker food). */
  get outage(): boolean {
    return this.fault === "unreachable" || this.fault === "timeout" || this.fault === "tls" || this.fault === "server";
  }

  /** The error a local client sees; `notFound` is the code for a 404 upstream. */
  toRegistryError(notFound: ErrorCode = "MANIFEST_UNKNOWN"): RegistryError {
    const detail = this.message;
    switch (this.fault) {
      case "unreachable":
      case "down":
        return new RegistryError("UNKNOWN", detail, { status: 503 });
      case "timeout":
        return new RegistryError("UNKNOWN", detail, { status: 504 });
      case "auth":
        return new RegistryError("DENIED", detail, { status: 502 });
      case "ratelimited":
        return new RegistryError("TOOMANYREQUESTS", detail);
      case "not-found":
        return new RegistryError(notFound, detail);
      default:
        return new RegistryError("UNKNOWN", detail, { status: 502 });
    }
  }
}

const TLS_CODES: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "TLS certificate not trusted",
  SELF_SIGNED_CERT_IN_CHAIN: "TLS certificate not trusted (self-signed in chain)",
  DEPTH_ZERO_SELF_SIGNED_CERT: "TLS certificate not trusted (self-signed)",
  UNABLE_TO_GET_ISSUER_CERT: "TLS certificate not trusted",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "TLS certificate not trusted",
  CERT_HAS_EXPIRED: "TLS certificate has expired",
  CERT_NOT_YET_VALID: "TLS certificate is not yet valid",
  ERR_TLS_CERT_ALTNAME_INVALID: "TLS certificate does not name this host",
  HOSTNAME_MISMATCH: "TLS certificate does not name this host",
};

/** Classifies an exception thrown by fetch for `upstream`. */
export function classifyFetchError(err: unknown, upstream: string, timeoutMs: number): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const e = err as { name?: string; code?: string; message?: string };
  if (e?.name === "TimeoutError") return new UpstreamError("timeout", upstream, `no answer within ${timeoutMs} ms`);
  const code = e?.code ?? "";
  // a redirect loop is the upstream misbehaving, not an outage: it must not trip the breaker
  if (code === "TooManyRedirects") return new UpstreamError("invalid", upstream, "redirected too many times (a redirect loop)");
  const tls = TLS_CODES[code];
  if (tls) return new UpstreamError("tls", upstream, `${tls} (${code})`);
  if (/CERT|TLS|SSL/i.test(code)) return new UpstreamError("tls", upstream, `TLS handshake failed (${code})`);
  return new UpstreamError("unreachable", upstream, `unreachable (${code || e?.message || "network error"})`);
}
