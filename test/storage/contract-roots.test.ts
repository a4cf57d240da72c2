/**
 * The storage contract (contract.ts) run against several roots behind one Storage
 * (storage/roots/composite.ts): a main root and a second root on its own directory serving
 * the prefixes "new/" and "gone/", so the contract's repositories live in both roots and every
 * call goes through the routing. What only several roots show (a cross-root mount is a copy,
 * dedupe within a root, an unavailable root) is in roots.test.ts.
 */
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../daemon/log";
import { realDisk } from "../../daemon/platform/disk";
import { CompositeStorage } from "../../daemon/storage/roots/composite";
import { Store } from "../../daemon/storage/store";
import { storageContract } from "./contract";

storageContract("two roots behind one composite, real disk", async ({ admit }) => {
  const dirs = [mkdtempSync(join(tmpdir(), "berth-roots-a-")), mkdtempSync(join(tmpdir(), "berth-roots-b-"))];
  const stores = dirs.map((root) => new Store(realDisk, { root, dedupe: true, maxBlobBytes: 0, manifestCacheBytes: 0, ...(admit ? { admit } : {}) }, silentLogger));
  for (const s of stores) await s.recover();
  const storage = new CompositeStorage([{ prefix: "", storage: stores[0] }, { prefix: "new/", storage: stores[1] }, { prefix: "gone/", storage: stores[1] }], 1 << 20);
  // (two prefixes of one root: the composite lists and counts that root once)
  return {
    storage,
    async corrupt(digest, bytes) {
      for (const root of dirs) {
        const path = join(root, ".berth", "pool", digest.algorithm, digest.hex);
        if (!existsSync(path)) continue;
        const fd = openSync(path, "r+");
        try {
          writeSync(fd, bytes, 0, bytes.byteLength, 0);
        } finally {
          closeSync(fd);
        }
      }
    },
    async [Symbol.asyncDispose]() {
      storage.uploads.stop();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    },
  };
}, { readableBodies: true, powerCut: false });
