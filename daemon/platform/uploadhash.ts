/**
 * Hashing uploads as they are written. Two implementations of one small interface:
 *
 * - inline: hashes each chunk on the event loop as it is written;
 * - worker: a hashing thread reads back from the file (the page cache) what the event loop
 *   reports as written, so a large push costs the event loop only receiving and writing,
 *   and other clients are not stalled behind sha256 of a big layer.
 *
 * Both support checkpoint/rollback, so a chunk that fails half-way can be undone. Neither
 * holds a file descriptor between calls: an idle upload session costs only its hash state
 * in memory. (Keeping that state is what makes a session resumable without a descriptor;
 * re-hashing the file on every resume would make a chunked upload quadratic in its size.)
 */
import { Worker } from "node:worker_threads";
import type { Algorithm } from "../oci/digest";
import { COMPILED, NODE_BUILD } from "../version";
import { type Hasher, createHasher } from "./hash";

/** The running hash of one upload's file. */
export interface UploadHasher {
  /** The file now holds bytes [0, upTo); `chunks` are the bytes just appended. */
  advance(chunks: readonly Uint8Array[], upTo: number): void;
  /** Remembers the current state. */
  checkpoint(): void;
  /** Returns to the state of the last checkpoint. */
  rollback(): void;
  /** Lowercase hex digest of everything advanced over. */
  digest(): Promise<string>;
  /** Releases the hasher (without a digest). */
  close(): void;
}

/** Creates an {@link UploadHasher} for a file. */
export interface UploadHashing {
  create(algorithm: Algorithm, path: string): UploadHasher;
  /** Stops the thread while no upload is open on it (its memory goes back); the next upload starts another. */
  release(): void;
  /** Stops any threads. */
  shutdown(): Promise<void>;
}

/** Hashes on the calling thread. */
export const inlineHashing: UploadHashing = {
  create(algorithm) {
    let hasher: Hasher = createHasher(algorithm);
    let saved: Hasher = hasher.copy();
    return {
      advance(chunks) {
        for (const c of chunks) hasher.update(c);
      },
      checkpoint() {
        saved = hasher.copy();
      },
      rollback() {
        hasher = saved.copy();
      },
      digest: () => Promise.resolve(hasher.hex()),
      close() {},
    };
  },
  release() {},
  shutdown: () => Promise.resolve(),
};

type Reply = { id: number; hex?: string; error?: string; code?: string };

/**
 * Where the hashing thread's module is. From source it sits next to this file. In a binary
 * from `scripts/build` it is an extra entry point of `bun build --compile`, embedded as
 * `platform/uploadhash-thread.js` under the binary's root (`import.meta.url` there is the
 * binary's own, so a URL relative to it would miss the `platform/` folder); a relative
 * specifier is resolved against that root.
 */
function threadEntry(): string | URL {
  // The Node.js bundle keeps the thread as a file beside itself (scripts/build-node).
  if (NODE_BUILD) return new URL("./uploadhash-thread.mjs", import.meta.url);
  return COMPILED ? "./platform/uploadhash-thread.js" : new URL("./uploadhash-thread.ts", import.meta.url).pathname;
}

/**
 * Hashes in one worker thread, started on the first upload (a registry that is only pulled
 * from never pays for it). Messages for a hasher are handled in order, so a digest request
 * is answered after every advance sent before it. If the thread fails, pending and later
 * digests reject, and the upload fails with an internal error rather than a wrong digest.
 * The thread opens an upload's file only while it reads newly written bytes (see
 * uploadhash-thread.ts); a digest that cannot read them rejects with the errno `code`
 * (EMFILE …), which the registry answers as a resource error (503), not as a bad digest.
 */
export function workerHashing(): UploadHashing & { /** True while the thread runs. */ running(): boolean } {
  const pending = new Map<number, { resolve: (hex: string) => void; reject: (err: Error) => void }>();
  let broken: Error | undefined;
  let nextId = 1;
  let started: Worker | undefined;
  const fail = (err: Error) => {
    broken = err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  const start = (): Worker => {
    const w = new Worker(threadEntry());
    w.unref();
    w.on("message", (reply: Reply) => {
      const p = pending.get(reply.id);
      if (!p) return;
      pending.delete(reply.id);
      if (reply.error !== undefined) p.reject(Object.assign(new Error(reply.error), reply.code ? { code: reply.code } : {}));
      else p.resolve(reply.hex!);
    });
    w.on("error", fail);
    w.on("exit", (code) => fail(new Error(`the hashing thread exited (${code})`)));
    return w;
  };
  // hashers open on the thread (created, not yet closed or digested): their state lives there
  let open = 0;
  return {
    create(algorithm, path) {
      const worker = (started ??= start());
      const id = nextId++;
      worker.postMessage({ op: "open", id, algorithm, path });
      open++;
      let closed = false;
      const done = () => {
        closed = true;
        open--;
      };
      return {
        advance: (_chunks, upTo) => worker.postMessage({ op: "advance", id, upTo }),
        checkpoint: () => worker.postMessage({ op: "checkpoint", id }),
        rollback: () => worker.postMessage({ op: "rollback", id }),
        digest() {
          if (broken) return Promise.reject(broken);
          // the thread forgets a hasher once it answers or closes it: a second ask would never be answered
          if (closed) return Promise.reject(new Error("this upload's hash was already taken or closed"));
          done();
          return new Promise<string>((resolve, reject) => {
            pending.set(id, { resolve, reject });
            worker.postMessage({ op: "digest", id });
          });
        },
        close() {
          if (closed) return;
          done();
          worker.postMessage({ op: "close", id });
        },
      };
    },
    running: () => started !== undefined,
    release() {
      // a digest still pending would be lost with the thread; an open hasher's state lives there
      if (!started || open > 0 || pending.size > 0) return;
      const w = started;
      started = undefined;
      // a thread that failed is replaced too: the next upload starts a working one
      broken = undefined;
      w.removeAllListeners("exit");
      w.removeAllListeners("error");
      void w.terminate().catch(() => {});
    },
    async shutdown() {
      if (!started) return;
      started.removeAllListeners("exit");
      await started.terminate();
    },
  };
}
