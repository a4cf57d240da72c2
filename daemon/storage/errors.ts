/**
 * The few storage conditions callers are expected to catch. The registry layer turns them
 * into OCI errors; anything else from storage is an internal fault (500).
 */

/** What went wrong, in storage's terms. */
export type StorageFault =
  | "upload-unknown"
  | "upload-busy"
  | "range-mismatch"
  | "too-large"
  | "digest-mismatch"
  | "size-mismatch"
  | "client-aborted"
  | "no-space"
  | "quota"
  | "too-many-uploads"
  /** The storage root serving the repository was missing or read-only at start-up. */
  | "unavailable"
  /** Held off for a while (S3: another process's GC holds the bucket's lease); nothing was written, retry soon. */
  | "busy";

/** A storage condition the registry layer translates for the client. */
export class StorageError extends Error {
  constructor(
    readonly fault: StorageFault,
    message: string,
  ) {
    super(message);
    this.name = "StorageError";
  }
}

/**
 * True for errors that mean the disk (or quota) is full: from node:fs, or from SQLite
 * (SQLITE_FULL; SQLITE_IOERR_SHMSIZE when the WAL index file cannot be given its size).
 */
export function isNoSpace(err: unknown): boolean {
  if (err instanceof StorageError) return err.fault === "no-space";
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOSPC" || code === "EDQUOT" || code === "SQLITE_FULL" || code === "SQLITE_IOERR_SHMSIZE";
}
