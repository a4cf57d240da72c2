/**
 * The hashing thread of uploadhash.ts: keeps one running hash per upload and, on each
 * "advance", reads the newly written bytes of the upload's file (from the page cache) into
 * the hash. Messages are processed in arrival order.
 */
import { createHash, type Hash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import { parentPort } from "node:worker_threads";

interface State {
  fd: number;
  hash: Hash;
  pos: number;
  saved: { hash: Hash; pos: number };
  /** Opening the file failed: the hash can never be right. */
  openError?: string;
  /**
   * Reading failed since the last checkpoint. This happens when a chunk failed and its bytes
   * were cut off before this thread read them; the rollback that follows clears it.
   */
  error?: string;
}

const states = new Map<number, State>();
const buffer = Buffer.allocUnsafe(1 << 20);

function advance(s: State, upTo: number): void {
  while (s.pos < upTo) {
    const n = readSync(s.fd, buffer, 0, Math.min(buffer.length, upTo - s.pos), s.pos);
    if (n === 0) throw new Error(`the upload file ended at ${s.pos}, before ${upTo}`);
    s.hash.update(buffer.subarray(0, n));
    s.pos += n;
  }
}

function drop(id: number): void {
  const s = states.get(id);
  if (!s) return;
  states.delete(id);
  try {
    closeSync(s.fd);
  } catch {
    // already closed
  }
}

parentPort!.on("message", (m: { op: string; id: number; algorithm?: string; path?: string; upTo?: number }) => {
  if (m.op === "open") {
    try {
      const hash = createHash(m.algorithm!);
      states.set(m.id, { fd: openSync(m.path!, "r"), hash, pos: 0, saved: { hash: hash.copy(), pos: 0 } });
    } catch (err) {
      states.set(m.id, { fd: -1, hash: createHash("sha256"), pos: 0, saved: { hash: createHash("sha256"), pos: 0 }, openError: String(err) });
    }
    return;
  }
  const s = states.get(m.id);
  if (!s) return;
  try {
    switch (m.op) {
      case "advance":
        if (!s.error && !s.openError) advance(s, m.upTo!);
        break;
      case "checkpoint":
        s.saved = { hash: s.hash.copy(), pos: s.pos };
        break;
      case "rollback":
        s.hash = s.saved.hash.copy();
        s.pos = s.saved.pos;
        s.error = undefined;
        break;
      case "digest": {
        const error = s.openError ?? s.error;
        parentPort!.postMessage(error ? { id: m.id, error } : { id: m.id, hex: s.hash.digest("hex") });
        drop(m.id);
        break;
      }
      case "close":
        drop(m.id);
        break;
    }
  } catch (err) {
    s.error = (err as Error).message;
  }
});
