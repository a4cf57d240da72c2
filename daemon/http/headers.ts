/**
 * The one place where the registry's errors and upload states become HTTP headers.
 *
 * Below http/ an error carries plain facts (seconds to wait, where an upload stands); here they
 * become `Retry-After`, `Location`, `Range` and `Docker-Upload-UUID`. Refusals that only the
 * HTTP front makes (a method not allowed, a challenge, a connection to close) are an
 * {@link HttpError}, which names its headers itself.
 */
import { type ErrorCode, RegistryError, type UploadState } from "../oci/errors";

/**
 * A refusal decided by the HTTP front itself, with the headers that go with it (`Allow` on a
 * 405, `WWW-Authenticate` on a 401, `Connection: close` when the rest of a body is not read).
 */
export class HttpError extends RegistryError {
  /** Headers added to the error response. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, detail: string, opts: { status?: number; retryAfter?: number; headers: Record<string, string> }) {
    super(code, detail, { status: opts.status, retryAfter: opts.retryAfter });
    this.name = "HttpError";
    this.headers = opts.headers;
  }
}

/** The headers telling a client where its upload session is and how many bytes it holds. */
export function uploadHeaders(name: string, upload: Pick<UploadState, "id" | "size">): Record<string, string> {
  return {
    Location: `/v2/${name}/blobs/uploads/${upload.id}`,
    Range: `0-${Math.max(upload.size - 1, 0)}`,
    "Docker-Upload-UUID": upload.id,
  };
}

/** The headers an error response carries besides its content type: from its facts, and an HttpError's own. */
export function errorHeaders(err: RegistryError): Record<string, string> {
  const out: Record<string, string> = {};
  if (err.upload) Object.assign(out, uploadHeaders(err.upload.repo, err.upload));
  if (err.retryAfter !== undefined) out["Retry-After"] = String(err.retryAfter);
  if (err instanceof HttpError) Object.assign(out, err.headers);
  return out;
}
