/**
 * Adoption and mounts write bytes only when they must copy (hard links not possible, or a
 * file berth may not write to): then they are admitted like a push (quota, min_free), and a
 * refusal leaves the target repository without the blob. Linking writes no bytes and asks
 * nothing. On the power-cut simulator, whose `links = false` stands for a pool on another
 * file system.
 */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { silentLogger } from "../../daemon/log";
import { requireDigest } from "../../daemon/oci/digest";
import { StorageError } from "../../daemon/storage/errors";
import { Store } from "../../daemon/storage/store";
import { SimDisk } from "../helpers/simdisk";

const data = new TextEncoder().encode("a layer of a layout dropped into the root");
const digest = requireDigest(`sha256:${createHash("sha256").update(data).digest("hex")}`);

async function storeOn(links: boolean, admit: (repo: string, bytes: number) => Promise<void>): Promise<Store> {
  const disk = new SimDisk();
  disk.links = links;
  await disk.mountPoint("/r");
  const store = new Store(disk, { root: "/r", dedupe: true, maxBlobBytes: 0, manifestCacheBytes: 0, admit }, silentLogger);
  await store.recover();
  // the source: bytes that are in "src" already
  await store.uploads.putSmall("src", digest, data, false);
  return store;
}

describe("mounts that copy are admitted", () => {
  test("a mount that must copy asks admission for the blob's size and is refused like a push", async () => {
    const asked: [string, number][] = [];
    let refuse = false;
    const store = await storeOn(false, async (repo, bytes) => {
      asked.push([repo, bytes]);
      if (refuse) throw new StorageError("quota", "storage quota exceeded");
    });
    await store.indexes.ensure("dst");
    expect(await store.blobs.mount("dst", digest, "src")).toBe(true);
    expect(asked).toEqual([["dst", data.byteLength]]);
    refuse = true;
    await store.indexes.ensure("other");
    const err = (await store.blobs.mount("other", digest, "src").catch((e: unknown) => e)) as StorageError;
    expect(err).toBeInstanceOf(StorageError);
    expect(err.fault).toBe("quota");
    expect(store.blobs.stat("other", digest)).toBeUndefined();
  });

  test("a mount by hard link writes no bytes and asks nothing", async () => {
    const asked: number[] = [];
    const store = await storeOn(true, async (_repo, bytes) => void asked.push(bytes));
    await store.indexes.ensure("dst");
    expect(await store.blobs.mount("dst", digest, "src")).toBe(true);
    expect(await store.blobs.mount("dst2", digest)).toBe(true);
    expect(asked).toEqual([]);
  });
});
