/**
 * The S3 client's one error type. Callers branch on `kind`, a small closed set, never on HTTP
 * statuses or S3 error codes: not-found (404, NoSuchKey/NoSuchBucket/NoSuchUpload),
 * precondition-failed (412, an If-Match/If-None-Match that did not hold), conflict (409, e.g.
 * a concurrent conditional write or an upload completed twice), full (507, the cluster is out
 * of space), unavailable (5xx, timeouts and connection errors, after the bounded retries),
 * denied (403) and invalid (any other 4xx: a request the server refuses as malformed).
 */

/** What went wrong, as a caller needs to know it. */
export type S3ErrorKind = "not-found" | "precondition-failed" | "conflict" | "full" | "unavailable" | "denied" | "invalid";

/** A failed S3 request. */
export class S3Error extends Error {
  constructor(
    readonly kind: S3ErrorKind,
    message: string,
    /** HTTP status (0 when no response came). */
    readonly status = 0,
    /** The S3 error code from the response body (e.g. "NoSuchKey"), when there was one. */
    readonly code = "",
  ) {
    super(message);
    this.name = "S3Error";
  }
}

/** The kind for an HTTP status. */
export function kindOf(status: number): S3ErrorKind {
  if (status === 404) return "not-found";
  if (status === 412) return "precondition-failed";
  if (status === 409) return "conflict";
  if (status === 507) return "full";
  if (status === 403) return "denied";
  if (status >= 500 || status === 0) return "unavailable";
  return "invalid";
}

/** True when `e` is an S3Error of `kind`. */
export function isS3Error(e: unknown, kind?: S3ErrorKind): e is S3Error {
  return e instanceof S3Error && (kind === undefined || e.kind === kind);
}
