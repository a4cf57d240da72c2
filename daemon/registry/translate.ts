/**
 * The one place where storage faults become the OCI errors clients see.
 */
import { RegistryError } from "../oci/errors";
import { StorageError } from "../storage/errors";
import type { UploadSession } from "../storage/uploads";

/**
 * Turns storage faults into the OCI errors the client sees. `session` adds the upload's
 * current state to a 416, so the client knows where to resume (spec: "Pushing a blob in
 * chunks").
 */
export function translate(err: unknown, session?: UploadSession): never {
  if (!(err instanceof StorageError)) throw err;
  switch (err.fault) {
    case "upload-unknown":
      throw new RegistryError("BLOB_UPLOAD_UNKNOWN", err.message);
    case "upload-busy":
      throw new RegistryError("BLOB_UPLOAD_INVALID", err.message, { status: 409 });
    case "range-mismatch": {
      const headers: Record<string, string> | undefined = session
        ? { Range: `0-${Math.max(session.size - 1, 0)}`, Location: `/v2/${session.repo}/blobs/uploads/${session.id}`, "Docker-Upload-UUID": session.id }
        : undefined;
      throw new RegistryError("BLOB_UPLOAD_INVALID", err.message, { status: 416, headers });
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
  }
}

