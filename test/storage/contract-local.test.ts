/**
 * The storage contract (contract.ts) run against the local OCI-layout backend: on the real
 * disk, and on the power-cut simulator (whose files live in memory, so bodies are checked
 * through `read`, and each acknowledged write is checked again after a simulated power cut).
 */
import { mkdtempSync, openSync, rmSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../daemon/log";
import { realDisk } from "../../daemon/platform/disk";
import { Store } from "../../daemon/storage/store";
import { SimDisk } from "../helpers/simdisk";
import { storageContract } from "./contract";

storageContract("local, real disk", async ({ admit }) => {
  const root = mkdtempSync(join(tmpdir(), "berth-contract-"));
  const store = new Store(realDisk, { root, dedupe: true, maxBlobBytes: 0, manifestCacheBytes: 1 << 20, ...(admit ? { admit } : {}) }, silentLogger);
  await store.recover();
  return {
    storage: store,
    async corrupt(digest, bytes) {
      // in place, so every name of the stored bytes sees the change (as bit rot would)
      const fd = openSync(join(root, ".berth", "pool", digest.algorithm, digest.hex), "r+");
      try {
        writeSync(fd, bytes, 0, bytes.byteLength, 0);
      } finally {
        closeSync(fd);
      }
    },
    async [Symbol.asyncDispose]() {
      store.uploads.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
}, { readableBodies: true, powerCut: false });

storageContract("local, power-cut simulator", async ({ admit }) => {
  const root = "/sim/root";
  const disk = new SimDisk();
  await disk.mountPoint(root);
  const open = async (d: SimDisk) => {
    const s = new Store(d, { root, dedupe: true, maxBlobBytes: 0, manifestCacheBytes: 1 << 20, ...(admit ? { admit } : {}) }, silentLogger);
    await s.recover();
    return s;
  };
  const store = await open(disk);
  return {
    storage: store,
    async corrupt() {
      throw new Error("the simulator's files cannot be hashed by scrub (it reads the real file system)");
    },
    afterPowerCut: () => open(disk.survivors()),
    async [Symbol.asyncDispose]() {
      store.uploads.stop();
    },
  };
}, { readableBodies: false, powerCut: true });
