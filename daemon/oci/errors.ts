/**
 * The OCI error-code table and the one error class the registry throws.
 *
 * Distribution spec v1.1, "Error Codes": every failure the API reports carries one of these
 * codes in a `{"errors":[{code,message,detail}]}` body. The HTTP status that goes with each
 * code is fixed here, in one place, so handlers never pick statuses ad hoc; a handler may
 * override the status only where the spec names a different one for an endpoint (416 for an
 * out-of-order chunk, 413 for an oversize manifest).
 */

/** Error codes of the distribution spec (code-1 … code-14), plus UNKNOWN for internal faults. */
export type ErrorCode =
  | "BLOB_UNKNOWN"
  | "BLOB_UPLOAD_INVALID"
  | "BLOB_UPLOAD_UNKNOWN"
  | "DIGEST_INVALID"
  | "MANIFEST_BLOB_UNKNOWN"
  | "MANIFEST_INVALID"
  | "MANIFEST_UNKNOWN"
  | "NAME_INVALID"
  | "NAME_UNKNOWN"
  | "SIZE_INVALID"
  | "UNAUTHORIZED"
  | "DENIED"
  | "UNSUPPORTED"
  | "TOOMANYREQUESTS"
  | "UNAVAILABLE"
  | "UNKNOWN";

/** Default HTTP status and the spec's message for each code. */
export const ERROR_TABLE: Readonly<Record<ErrorCode, { status: number; message: string }>> = {
  BLOB_UNKNOWN: { status: 404, message: "blob unknown to registry" },
  BLOB_UPLOAD_INVALID: { status: 400, message: "blob upload invalid" },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: "blob upload unknown to registry" },
  DIGEST_INVALID: { status: 400, message: "provided digest did not match uploaded content" },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: "manifest references a manifest or blob unknown to registry" },
  MANIFEST_INVALID: { status: 400, message: "manifest invalid" },
  MANIFEST_UNKNOWN: { status: 404, message: "manifest unknown to registry" },
  NAME_INVALID: { status: 400, message: "invalid repository name" },
  NAME_UNKNOWN: { status: 404, message: "repository name not known to registry" },
  SIZE_INVALID: { status: 400, message: "provided length did not match content length" },
  UNAUTHORIZED: { status: 401, message: "authentication required" },
  DENIED: { status: 403, message: "requested access to the resource is denied" },
  UNSUPPORTED: { status: 405, message: "the operation is unsupported" },
  TOOMANYREQUESTS: { status: 429, message: "too many requests" },
  /** Not in the spec's table; distribution's code for a registry that cannot serve now. */
  UNAVAILABLE: { status: 503, message: "service unavailable" },
  UNKNOWN: { status: 500, message: "unknown error" },
};

/** Where an upload session stands: its repository, id and the bytes received so far. */
export interface UploadState {
  readonly repo: string;
  readonly id: string;
  readonly size: number;
}

/**
 * An error the client is told about. `detail` is shown to the client as is, so it must never
 * carry internal paths or stack traces; it says what was wrong with the request, quoting the
 * offending value. `retryAfter` and `upload` are plain facts for the client (seconds to wait;
 * the upload's state, so it knows where to resume after a 416); http/ turns them into headers.
 */
export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string | undefined;
  /** Seconds the client should wait before trying again, when the refusal is temporary. */
  readonly retryAfter: number | undefined;
  /** The upload session's state when a chunk was refused, so the client can resume. */
  readonly upload: UploadState | undefined;

  constructor(code: ErrorCode, detail?: string, opts: { status?: number; retryAfter?: number; upload?: UploadState } = {}) {
    super(detail ? `${ERROR_TABLE[code].message}: ${detail}` : ERROR_TABLE[code].message);
    this.name = "RegistryError";
    this.code = code;
    this.status = opts.status ?? ERROR_TABLE[code].status;
    this.detail = detail;
    this.retryAfter = opts.retryAfter;
    this.upload = opts.upload;
  }
}

/** The spec's JSON error body for one error. */
export function errorBody(code: ErrorCode, detail?: string): string {
  const entry: { code: ErrorCode; message: string; detail?: string } = {
    code,
    message: ERROR_TABLE[code].message,
  };
  if (detail !== undefined) entry.detail = detail;
  return JSON.stringify({ errors: [entry] });
}
