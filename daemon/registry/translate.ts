/**
 * The one place where storage faults and resource errors become the OCI errors clients see.
 */
import { RegistryError } from "../oci/errors";
import { StorageError, isNoSpace } from "../storage/errors";
import type { UploadSession } from "../storage/api";

/** Seconds a client is asked to wait after a refusal for want of resources. */
export const RETRY_AFTER_SECONDS = 5;

/** Errno codes of a resource the process or the system ran short of: the request may work later. */
const SHORT_OF: Readonly<Record<string, string>> = {
  EMFILE: "open files (EMFILE)",
  ENFILE: "open files system-wide (ENFILE)",
  ENOMEM: "memory (ENOMEM)",
  EAGAIN: "a resource that is temporarily unavailable (EAGAIN)",
};

/**
 * The client's view of an error from the runtime: running out of descriptors or memory is
 * 503 with a time to retry after (nothing is wrong with the request), a full disk or quota is 507,
 * a storage root that is unavailable is 503 UNAVAILABLE.
 * Undefined for anything else (an internal fault, 500).
 */
export function resourceError(err: unknown): RegistryError | undefined {
  // a storage root missing at start-up (storage/roots): its repositories wait for a restart
  if (err instanceof StorageError && err.fault === "unavailable") return new RegistryError("UNAVAILABLE", err.message);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== "string") return undefined;
  const what = SHORT_OF[code];
  if (what) {
    return new RegistryError("UNKNOWN", `the registry is short of ${what}; nothing was changed, retry later`, {
      status: 503,
      retryAfter: RETRY_AFTER_SECONDS,
    });
  }
  if (isNoSpace(err)) return new RegistryError("UNKNOWN", "the registry's disk is full; nothing was stored", { status: 507 });
  return undefined;
}

/**
 * Turns storage faults into the OCI errors the client sees. `session` adds the upload's
 * current state (repository, id, bytes received) to a 416, so the client knows where to resume (spec: "Pushing a blob in
 * chunks"). Errno errors go through {@link resourceError}; anything else is rethrown.
 */
export function translate(err: unknown, session?: UploadSession): never {
  if (!(err instanceof StorageError)) throw resourceError(err) ?? err;
  switch (err.fault) {
    case "upload-unknown":
      throw new RegistryError("BLOB_UPLOAD_UNKNOWN", err.message);
    case "upload-busy":
      throw new RegistryError("BLOB_UPLOAD_INVALID", err.message, { status: 409 });
    case "range-mismatch": {
      const upload = session ? { repo: session.repo, id: session.id, size: session.size } : undefined;
      throw new RegistryError("BLOB_UPLOAD_INVALID", err.message, { status: 416, upload });
    }
    case "too-large":
      throw new RegistryError("SIZE_INVALID", err.message, { status: 413 });
    case "digest-mismatch":
      throw new RegistryError("DIGEST_INVALID", err.message);
    case "size-mismatch":
      throw new RegistryError("SIZE_INVALID", err.message);
    case "client-aborted":
      throw new RegistryError("BLOB_UPLOAD_INVALID", err.message);
    case "no-space":
      throw new RegistryError("UNKNOWN", "the registry's disk is full; nothing was stored", { status: 507 });
    case "quota":
      throw new RegistryError("DENIED", err.message, { status: 507 });
    case "too-many-uploads":
      throw new RegistryError("TOOMANYREQUESTS", err.message, { retryAfter: RETRY_AFTER_SECONDS });
    case "unavailable":
      throw resourceError(err)!;
    case "busy":
      throw new RegistryError("UNAVAILABLE", err.message, { retryAfter: RETRY_AFTER_SECONDS });
  }
}
