/**
 * Manifest request bodies, which are read whole into memory: a size cap per body, a byte
 * budget for all bodies in flight together, and a deadline per body. Without the budget,
 * 20 clients each holding back the last byte of a 4 MiB body pinned 80 MiB; without the
 * deadline, they could do so until the connection's idle timeout and beyond (a trickle
 * resets it). Blob bodies are streamed to disk and need neither (uploads.ts).
 */
import { RegistryError } from "../oci/errors";
import { HttpError } from "./headers";
import { NestingScanner } from "../oci/jsonscan";
import { BodyTimedOut, BodyTooLarge, readCapped } from "../platform/capped";

/** Seconds a client is asked to wait after the budget refused its body. */
const BUDGET_RETRY_AFTER = 1;

/**
 * Bytes that may be held at once, shared by every request. `tryReserve` never waits: a
 * request that does not fit is refused (429), which keeps memory bounded without a queue
 * that would itself need a bound.
 */
export class ByteBudget {
  private used = 0;

  /** `limit` bytes in all; 0 means no budget. */
  constructor(readonly limit: number) {}

  /** Takes `bytes` if they fit; false (and nothing taken) otherwise. */
  tryReserve(bytes: number): boolean {
    if (this.limit > 0 && this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  /** Gives back `bytes` taken earlier. */
  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }

  /** Bytes held now. */
  inUse(): number {
    return this.used;
  }
}

/** Limits for {@link readManifestBody}. */
export interface BodyLimits {
  /** Largest body accepted (413 above it). */
  maxBytes: number;
  /** Shared budget of bytes in flight (429 when it is spent). */
  budget: ByteBudget;
  /** Milliseconds the whole body may take to arrive after the headers; 0 = no deadline. */
  timeoutMs: number;
}

/** A body read into memory; `release()` returns its bytes to the budget (call once done with them). */
export interface HeldBody {
  bytes: Uint8Array;
  release(): void;
}

/** The request's Content-Length, undefined without one; SIZE_INVALID when it is not a number. */
export function contentLength(req: Request): number | undefined {
  const value = req.headers.get("content-length");
  if (value === null) return undefined;
  if (!/^\d+$/.test(value)) throw new RegistryError("SIZE_INVALID", `Content-Length "${value.slice(0, 40)}" is not a number`);
  return Number(value);
}

/**
 * Reads a manifest body into memory. The bytes are reserved in the budget up front by
 * Content-Length, else chunk by chunk as they arrive; a body that does not fit is refused
 * with 429 TOOMANYREQUESTS and `Retry-After`. Over `maxBytes` is 413 SIZE_INVALID; a body
 * not complete within `timeoutMs` is 408 MANIFEST_INVALID; JSON nested too deep is 400
 * MANIFEST_INVALID as soon as the bytes show it. Refusals before the body is read whole ask
 * for the connection to be closed (the rest of the body is never read).
 */
export async function readManifestBody(req: Request, limits: BodyLimits): Promise<HeldBody> {
  const { maxBytes, budget, timeoutMs } = limits;
  const declared = contentLength(req);
  const close = { Connection: "close" };
  const tooLarge = () => new HttpError("SIZE_INVALID", `the manifest is larger than the limit of ${maxBytes} bytes`, { status: 413, headers: close });
  if (declared !== undefined && declared > maxBytes) throw tooLarge();
  let reserved = 0;
  const reserve = (bytes: number) => {
    if (!budget.tryReserve(bytes)) {
      throw new HttpError("TOOMANYREQUESTS", `manifest bodies in flight already hold ${budget.inUse()} of the ${budget.limit} bytes the registry allows; retry shortly`, {
        retryAfter: BUDGET_RETRY_AFTER,
        headers: close,
      });
    }
    reserved += bytes;
  };
  const release = () => {
    budget.release(reserved);
    reserved = 0;
  };
  try {
    if (declared !== undefined) reserve(declared);
    const bytes = req.body ? await readAll(req.body, maxBytes, timeoutMs, tooLarge, (total) => total > reserved && reserve(total - reserved)) : new Uint8Array(0);
    return { bytes, release };
  } catch (err) {
    release();
    throw err;
  }
}

async function readAll(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
  timeoutMs: number,
  tooLarge: () => RegistryError,
  grew: (total: number) => void,
): Promise<Uint8Array> {
  const nesting = new NestingScanner();
  try {
    return await readCapped(body, {
      maxBytes,
      timeoutMs,
      onChunk: (chunk, total) => {
        grew(total);
        const deep = nesting.feed(chunk);
        if (deep) throw new HttpError("MANIFEST_INVALID", deep, { headers: { Connection: "close" } });
      },
    });
  } catch (err) {
    if (err instanceof BodyTooLarge) throw tooLarge();
    if (err instanceof BodyTimedOut) {
      throw new HttpError("MANIFEST_INVALID", `the manifest body did not arrive within ${Math.round(timeoutMs / 100) / 10} s`, { status: 408, headers: { Connection: "close" } });
    }
    if (err instanceof RegistryError) throw err;
    throw new RegistryError("MANIFEST_INVALID", "the request body ended before it was complete");
  }
}
