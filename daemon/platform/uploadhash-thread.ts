/**
 * The hashing thread of uploadhash.ts: keeps one running hash per upload and, on each
 * "advance", reads the newly written bytes of the upload's file (from the page cache) into
 * the hash. Messages are processed in arrival order.
 *
 * No descriptor is held between messages: the file is opened for one catch-up read and
 * closed again, so an idle upload session costs a hash state in memory (a few hundred
 * bytes) and nothing else. When the open or the read fails for want of a resource (EMFILE,
 * ENFILE, ENOMEM, EAGAIN), the hash simply stays behind the file and catches up at the next
 * advance or at the digest, since the file holds every byte up to the target.
 */
import { createHash, type Hash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import { parentPort } from "node:worker_threads";

interface State {
  path: string;
  hash: Hash;
  /** Bytes hashed so far. */
  pos: number;
  /** Bytes the file holds, as last reported by the event loop. */
  target: number;
  saved: { hash: Hash; pos: number; target: number };
  /**
   * Reading failed since the last checkpoint. This happens when a chunk failed and its bytes
   * were cut off before this thread read them; the rollback that follows clears it.
   */
  error?: string;
  /** Errno code of the failure that {@link State.error} describes, if any. */
  code?: string;
}

/** Failures that go away by themselves: the read is retried later. */
const TRANSIENT = new Set(["EMFILE", "ENFILE", "ENOMEM", "EAGAIN"]);

const states = new Map<number, State>();
const buffer = Buffer.allocUnsafe(1 << 20);

/** Hashes the file's bytes from `pos` up to `target`, opening it only for this read. */
function catchUp(s: State): void {
  if (s.pos >= s.target) return;
  const fd = openSync(s.path, "r");
  try {
    while (s.pos < s.target) {
      const n = readSync(fd, buffer, 0, Math.min(buffer.length, s.target - s.pos), s.pos);
      if (n === 0) throw new Error(`the upload file ended at ${s.pos}, before ${s.target}`);
      s.hash.update(buffer.subarray(0, n));
      s.pos += n;
    }
  } finally {
    closeSync(fd);
  }
}

/** Catches up; a transient failure is left for later, any other is kept for the digest. */
function tryCatchUp(s: State, final: boolean): void {
  try {
    catchUp(s);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!final && code !== undefined && TRANSIENT.has(code)) return;
    s.error = (err as Error).message;
    s.code = code;
  }
}

parentPort!.on("message", (m: { op: string; id: number; algorithm?: string; path?: string; upTo?: number }) => {
  if (m.op === "open") {
    let hash: Hash;
    try {
      hash = createHash(m.algorithm!);
    } catch (err) {
      hash = createHash("sha256");
      states.set(m.id, { path: m.path!, hash, pos: 0, target: 0, saved: { hash: hash.copy(), pos: 0, target: 0 }, error: String(err) });
      return;
    }
    states.set(m.id, { path: m.path!, hash, pos: 0, target: 0, saved: { hash: hash.copy(), pos: 0, target: 0 } });
    return;
  }
  const s = states.get(m.id);
  if (!s) return;
  try {
    switch (m.op) {
      case "advance":
        s.target = m.upTo!;
        if (!s.error) tryCatchUp(s, false);
        break;
      case "checkpoint":
        s.saved = { hash: s.hash.copy(), pos: s.pos, target: s.target };
        break;
      case "rollback":
        s.hash = s.saved.hash.copy();
        s.pos = s.saved.pos;
        s.target = s.saved.target;
        s.error = undefined;
        s.code = undefined;
        break;
      case "digest": {
        if (!s.error) tryCatchUp(s, true);
        parentPort!.postMessage(s.error ? { id: m.id, error: s.error, code: s.code } : { id: m.id, hex: s.hash.digest("hex") });
        states.delete(m.id);
        break;
      }
      case "close":
        states.delete(m.id);
        break;
    }
  } catch (err) {
    s.error = (err as Error).message;
  }
});
