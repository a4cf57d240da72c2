/**
 * The storage contract: every behaviour the registry, lifecycle and sync rely on from a
 * storage backend (daemon/storage/api.ts), as one suite that takes a backend factory, in the
 * way distribution runs one suite over every storage driver. A backend's test file is a few
 * lines: `storageContract("name", factory)`. Blob bodies are read the way the HTTP layer
 * sends them (a file Blob, a stream, or a redirect URL fetched), so a backend that answers
 * redirects is held to the same bytes.
 */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { type Digest, requireDigest } from "../../daemon/oci/digest";
import type { Descriptor } from "../../daemon/oci/manifest";
import type { BlobBody, BlobEntry, Listing, Storage } from "../../daemon/storage/api";
import { StorageError } from "../../daemon/storage/errors";

/** A backend under test. */
export interface ContractBackend extends AsyncDisposable {
  storage: Storage;
  /** Replaces the stored bytes of `digest` in place (same object, other content), for scrub. */
  corrupt(digest: Digest, bytes: Uint8Array): Promise<void>;
  /** The backend as a restart after a power cut finds it (backends that model power cuts). */
  afterPowerCut?(): Promise<Storage>;
}

/** Makes a fresh, empty backend; `admit` stands for quota and free-space admission. */
export type ContractFactory = (options: { admit?: (repo: string, bytes: number) => Promise<void> }) => Promise<ContractBackend>;

/** What the backend can show in this run; tests that need what it cannot show are not registered for it. */
export interface ContractOptions {
  /** Bodies are readable here (false for a simulated disk: its files exist only in memory). */
  readableBodies: boolean;
  /** The backend models power cuts ({@link ContractBackend.afterPowerCut}). */
  powerCut: boolean;
}

const enc = new TextEncoder();
const bytesOf = (text: string) => enc.encode(text);
const digestOf = (b: Uint8Array, alg: "sha256" | "sha512" = "sha256"): Digest => requireDigest(`${alg}:${createHash(alg).update(b).digest("hex")}`);

/** The bytes of a body, read as the HTTP layer would send them. */
export async function bodyBytes(body: BlobBody): Promise<Uint8Array> {
  if (body.kind === "file") return new Uint8Array(await body.file.arrayBuffer());
  if (body.kind === "stream") return new Uint8Array(await new Response(body.open()).arrayBuffer());
  return new Uint8Array(await (await fetch(body.url)).arrayBuffer());
}

async function all<T>(listing: Listing<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of listing) out.push(x);
  return out;
}

/** Stores `bytes` as a blob of `repo` through the ingest path; returns its digest. */
async function put(s: Storage, repo: string, bytes: Uint8Array, batches = 1): Promise<Digest> {
  const d = digestOf(bytes);
  const ingest = await s.blobs.ingest(repo, "sha256");
  const step = Math.ceil(bytes.byteLength / batches) || 1;
  for (let at = 0; at < bytes.byteLength; at += step) await ingest.write([bytes.subarray(at, at + step)]);
  await ingest.commit(d);
  return d;
}

const descriptor = (d: Digest, size: number, tag?: string): Descriptor => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: d.value,
  size,
  ...(tag ? { annotations: { "org.opencontainers.image.ref.name": tag } } : {}),
});

/** `test` when the backend can show what the test needs, else nothing is registered. */
function testIf(on: boolean): typeof test {
  return on ? test : ((() => undefined) as unknown as typeof test);
}

/** Registers the contract's tests for one backend. */
export function storageContract(name: string, make: ContractFactory, options: ContractOptions): void {
  describe(`storage contract: ${name}`, () => {
    describe("blobs", () => {
      test("a committed ingest is stat'ed, read whole and in ranges, with its size", async () => {
        await using b = await make({});
        const s = b.storage;
        const data = bytesOf("0123456789abcdefghij".repeat(100));
        const d = digestOf(data);
        expect(s.blobs.stat("r", d)).toBeUndefined();
        await put(s, "r", data, 3);
        expect(s.blobs.stat("r", d)?.size).toBe(data.byteLength);
        expect(await s.blobs.read("r", d)).toEqual(data);
        expect(await s.blobs.holdsDurably("r", d)).toBe(true);
        if (!options.readableBodies) return; // the rest reads bodies
        expect(await bodyBytes(s.blobs.open("r", d))).toEqual(data);
        expect(await bodyBytes(s.blobs.open("r", d, { start: 5, end: 24 }))).toEqual(data.subarray(5, 25));
        expect(await bodyBytes(s.blobs.open("r", d, { start: data.byteLength - 1, end: data.byteLength - 1 }))).toEqual(data.subarray(-1));
      });

      test("an ingest whose bytes hash to another digest is refused with digest-mismatch and stores nothing", async () => {
        await using b = await make({});
        const s = b.storage;
        const ingest = await s.blobs.ingest("r", "sha256");
        await ingest.write([bytesOf("what was sent")]);
        const claimed = digestOf(bytesOf("what was announced"));
        const err = await ingest.commit(claimed).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StorageError);
        expect((err as StorageError).fault).toBe("digest-mismatch");
        expect(s.blobs.stat("r", claimed)).toBeUndefined();
        expect(await all(s.storedBlobs())).toEqual([]);
      });

      test("a cancelled ingest leaves nothing, and cancelling twice is harmless", async () => {
        await using b = await make({});
        const s = b.storage;
        const data = bytesOf("never stored");
        const ingest = await s.blobs.ingest("r", "sha256");
        await ingest.write([data]);
        expect(ingest.written).toBe(data.byteLength);
        await ingest.cancel();
        await ingest.cancel();
        expect(s.blobs.stat("r", digestOf(data))).toBeUndefined();
        expect(await all(s.storedBlobs())).toEqual([]);
        expect(s.meter.usage([]).total).toBe(0);
      });

      testIf(options.readableBodies)("what was written can be read back before and after the commit", async () => {
        await using b = await make({});
        const s = b.storage;
        const data = bytesOf("read me back while I am written");
        const ingest = await s.blobs.ingest("r", "sha256");
        await ingest.write([data.subarray(0, 10)]);
        expect(await ingest.readBack(2, 5)).toEqual(data.subarray(2, 7));
        await ingest.write([data.subarray(10)]);
        expect(await ingest.digest()).toBe(digestOf(data).hex);
        await ingest.commit(digestOf(data));
        expect(await ingest.readBack(0, data.byteLength)).toEqual(data);
      });

      test("a sha512 ingest is stored under its sha512 digest", async () => {
        await using b = await make({});
        const s = b.storage;
        const data = bytesOf("hashed with sha512");
        const d = digestOf(data, "sha512");
        const ingest = await s.blobs.ingest("r", "sha512");
        await ingest.write([data]);
        await ingest.commit(d);
        expect(s.blobs.stat("r", d)?.size).toBe(data.byteLength);
      });

      test("concurrent ingests of one digest, into one repository and into two, all succeed and store it once", async () => {
        await using b = await make({});
        const s = b.storage;
        const data = bytesOf("the same layer pushed four times at once");
        const d = digestOf(data);
        await Promise.all([put(s, "a", data, 2), put(s, "a", data, 3), put(s, "b", data), put(s, "b", data, 4)]);
        expect(s.blobs.stat("a", d)?.size).toBe(data.byteLength);
        expect(s.blobs.stat("b", d)?.size).toBe(data.byteLength);
        expect((await all(s.storedBlobs())).map((e) => e.digest)).toEqual([d.value]);
        expect(s.meter.usage([]).total).toBe(data.byteLength);
      });

      test("a blob is linked into another repository from a named source or from any stored copy", async () => {
        await using b = await make({});
        const s = b.storage;
        const data = bytesOf("mount me");
        const d = digestOf(data);
        await put(s, "src", data);
        expect(await s.blobs.canMount(d, "src")).toBe(true);
        expect(await s.blobs.canMount(d, "elsewhere")).toBe(false);
        expect(await s.blobs.mount("dst", d, "elsewhere")).toBe(false);
        await s.indexes.ensure("dst");
        expect(await s.blobs.mount("dst", d, "src")).toBe(true);
        expect(s.blobs.stat("dst", d)?.size).toBe(data.byteLength);
        await s.indexes.ensure("third");
        expect(await s.blobs.canMount(d)).toBe(true);
        expect(await s.blobs.mount("third", d)).toBe(true);
        expect(await s.blobs.read("third", d)).toEqual(data);
        const missing = digestOf(bytesOf("nobody has me"));
        expect(await s.blobs.canMount(missing)).toBe(false);
        expect(await s.blobs.mount("third", missing)).toBe(false);
      });

      test("removing a blob from one repository leaves the others' copies", async () => {
        await using b = await make({});
        const s = b.storage;
        const data = bytesOf("shared");
        const d = digestOf(data);
        await put(s, "a", data);
        await put(s, "b", data);
        expect(await s.blobs.remove("a", d)).toBe(true);
        expect(await s.blobs.remove("a", d)).toBe(false);
        expect(s.blobs.stat("a", d)).toBeUndefined();
        expect(await s.blobs.read("b", d)).toEqual(data);
      });

      test("admission is asked for every batch, or once for an announced size, and a refusal stores nothing", async () => {
        const asked: [string, number][] = [];
        let refuse = false;
        await using b = await make({
          admit: async (repo, bytes) => {
            asked.push([repo, bytes]);
            if (refuse) throw new StorageError("quota", `storage quota exceeded: ${bytes} bytes refused`);
          },
        });
        const s = b.storage;
        const data = bytesOf("x".repeat(3000));
        await put(s, "q", data, 3);
        expect(asked).toEqual([["q", 1000], ["q", 1000], ["q", 1000]]);
        asked.length = 0;
        const announced = await s.blobs.ingest("q", "sha256", { expectedSize: 3000 });
        expect(asked).toEqual([["q", 3000]]);
        await announced.cancel();
        refuse = true;
        const err = await s.blobs.ingest("q", "sha256", { expectedSize: 10 }).catch((e: unknown) => e);
        expect((err as StorageError).fault).toBe("quota");
        const ingest = await s.blobs.ingest("q", "sha256");
        const refused = bytesOf("refused bytes");
        expect(((await ingest.write([refused]).catch((e: unknown) => e)) as StorageError).fault).toBe("quota");
        await ingest.cancel();
        expect(s.blobs.stat("q", digestOf(refused))).toBeUndefined();
        // an ingest told not to ask (admit: false) is not refused, whatever it is told up front
        asked.length = 0;
        const unasked = await s.blobs.ingest("q", "sha256", { admit: false, expectedSize: 13 });
        await unasked.write([bytesOf("not admitted!")]);
        expect(asked).toEqual([]);
        await unasked.cancel();
        expect((await all(s.storedBlobs())).map((e) => e.digest)).toEqual([digestOf(data).value]);
      });

      test("small bytes (a manifest) are stored durably, admitted unless told not to be", async () => {
        const asked: number[] = [];
        await using b = await make({ admit: async (_repo, bytes) => void asked.push(bytes) });
        const s = b.storage;
        const m = bytesOf('{"schemaVersion":2}');
        const d = digestOf(m);
        await s.uploads.putSmall("m", d, m);
        await s.uploads.putSmall("m", d, m, false);
        expect(asked).toEqual([m.byteLength]);
        expect(await s.blobs.read("m", d)).toEqual(m);
      });

      test("a client upload session is appended to, completed under its digest, or refused on a mismatch", async () => {
        await using b = await make({});
        const s = b.storage;
        const data = bytesOf("pushed in two chunks");
        const session = await s.uploads.start("u", "sha256", "127.0.0.1");
        await s.uploads.append("u", session.id, new Response(data.subarray(0, 7)).body, { range: { start: 0, end: 6 } });
        await s.uploads.append("u", session.id, new Response(data.subarray(7)).body);
        expect(s.uploads.get("u", session.id).size).toBe(data.byteLength);
        await s.uploads.complete("u", session.id, digestOf(data));
        expect(await s.blobs.read("u", digestOf(data))).toEqual(data);
        expect(s.uploads.count()).toBe(0);
        const bad = await s.uploads.start("u", "sha256");
        await s.uploads.append("u", bad.id, new Response(bytesOf("other")).body);
        const err = (await s.uploads.complete("u", bad.id, digestOf(bytesOf("claimed"))).catch((e: unknown) => e)) as StorageError;
        expect(err.fault).toBe("digest-mismatch");
        expect(() => s.uploads.get("u", bad.id)).toThrow(StorageError);
      });
    });

    describe("repository indexes", () => {
      test("a repository is created empty, once; an unknown one has no index", async () => {
        await using b = await make({});
        const s = b.storage;
        expect(await s.indexes.exists("new/repo")).toBe(false);
        expect(await s.indexes.index("new/repo")).toBeUndefined();
        await s.indexes.ensure("new/repo");
        await s.indexes.ensure("new/repo");
        expect(await s.indexes.exists("new/repo")).toBe(true);
        expect((await s.indexes.index("new/repo"))?.doc.manifests).toEqual([]);
        expect(await s.indexes.changedAt("new/repo")).toBeGreaterThan(0);
      });

      test("compare-and-swap writes on the current version and refuses a stale one, leaving the index as it was", async () => {
        await using b = await make({});
        const s = b.storage;
        await s.indexes.ensure("cas");
        const v0 = (await s.indexes.index("cas"))!;
        const d1 = digestOf(bytesOf("m1"));
        const d2 = digestOf(bytesOf("m2"));
        const v1 = await s.indexes.compareAndSwap("cas", v0.stamp, [descriptor(d1, 2, "latest")]);
        expect(v1).toBeDefined();
        expect(v1!.stamp).not.toBe(v0.stamp);
        expect(v1!.tags.get("latest")?.digest).toBe(d1.value);
        expect(await s.indexes.compareAndSwap("cas", v0.stamp, [descriptor(d2, 2, "latest")])).toBeUndefined();
        const now = (await s.indexes.index("cas"))!;
        expect(now.stamp).toBe(v1!.stamp);
        expect(now.tags.get("latest")?.digest).toBe(d1.value);
        expect(now.sortedTags()).toEqual(["latest"]);
      });

      test("concurrent updates of one repository lose none of each other's changes", async () => {
        await using b = await make({});
        const s = b.storage;
        await s.indexes.ensure("busy");
        const tags = Array.from({ length: 12 }, (_, i) => `t${i}`);
        await Promise.all(tags.map((tag) => s.indexes.update("busy", (entries) => [...entries, descriptor(digestOf(bytesOf(tag)), 2, tag)])));
        expect((await s.indexes.index("busy"))!.sortedTags()).toEqual([...tags].sort());
      });

      test("a transaction reads and writes the index as one step; an update may leave it unchanged", async () => {
        await using b = await make({});
        const s = b.storage;
        await s.indexes.ensure("tx");
        const d = digestOf(bytesOf("m"));
        const written = await s.indexes.transaction("tx", async (tx) => {
          const before = await tx.current();
          return tx.write([...before.doc.manifests, descriptor(d, 1)]);
        });
        expect(written.manifests.has(d.value)).toBe(true);
        const same = await s.indexes.update("tx", () => undefined);
        expect(same.stamp).toBe(written.stamp);
      });

      test("trim empties the in-memory caches; indexes and manifests read the same afterwards, and writes still compare-and-swap", async () => {
        await using b = await make({});
        const s = b.storage;
        await s.indexes.ensure("trim");
        const d = digestOf(bytesOf("m"));
        const v1 = await s.indexes.update("trim", (e) => [...e, descriptor(d, 1, "v1")]);
        s.manifests.set(d.value, { bytes: bytesOf("m"), mediaType: "application/vnd.oci.image.manifest.v1+json" });
        expect(s.manifests.size()).toBeGreaterThan(0);
        s.trim();
        expect(s.manifests.size()).toBe(0);
        expect(s.manifests.get(d.value)).toBeUndefined();
        const again = (await s.indexes.index("trim"))!;
        expect(again.stamp).toBe(v1.stamp);
        expect(again.tags.get("v1")?.digest).toBe(d.value);
        const d2 = digestOf(bytesOf("m2"));
        expect(await s.indexes.compareAndSwap("trim", v1.stamp, [descriptor(d2, 2, "v1")])).toBeDefined();
        expect((await s.indexes.index("trim"))!.tags.get("v1")?.digest).toBe(d2.value);
      });

      test("an empty repository is dropped and no longer listed", async () => {
        await using b = await make({});
        const s = b.storage;
        await s.indexes.ensure("keep");
        await s.indexes.ensure("gone/away");
        await s.indexes.withLock("gone/away", () => s.indexes.drop("gone/away"));
        expect(await s.indexes.exists("gone/away")).toBe(false);
        expect(await s.repositories()).toEqual(["keep"]);
      });
    });

    describe("the walk", () => {
      test("lists repositories (nested names too) in order, each repository's blobs, and each stored blob once", async () => {
        await using b = await make({});
        const s = b.storage;
        const x = bytesOf("x");
        const y = bytesOf("y");
        await put(s, "b/nested/deep", x);
        await put(s, "b", y);
        await put(s, "a", x);
        expect(await s.repositories()).toEqual(["a", "b", "b/nested/deep"]);
        const digests = (l: BlobEntry[]) => l.map((e) => e.digest).sort();
        expect(digests(await all(s.repoBlobs("a")))).toEqual([digestOf(x).value]);
        expect(digests(await all(s.repoBlobs("b")))).toEqual([digestOf(y).value]);
        expect(digests(await all(s.storedBlobs()))).toEqual([digestOf(x).value, digestOf(y).value].sort());
        const f = s.meter.figures();
        expect(f.repositories.get("b/nested/deep")).toEqual({ bytes: 1, blobs: 1 });
        expect(f.poolBlobs).toBe(2);
        const usage = s.meter.usage(["b"]);
        expect(usage.total).toBe(2);
        expect(usage.byPrefix.get("b")).toBe(2);
      });
    });

    describe("lifecycle abilities", () => {
      test("a sweep unlinks blobs and stored copies; a blob still stored can be linked back", async () => {
        await using b = await make({});
        const s = b.storage;
        const data = bytesOf("collect me");
        const d = digestOf(data);
        await put(s, "g", data);
        await s.sweep.unlink("g", d.value);
        await s.sweep.settle();
        expect(s.blobs.stat("g", d)).toBeUndefined();
        expect((await s.sweep.stored(d.value))?.size).toBe(data.byteLength);
        expect(await s.sweep.relink("g", d.value)).toBe(true);
        expect(await s.blobs.read("g", d)).toEqual(data);
        await s.sweep.unlink("g", d.value);
        await s.sweep.unlinkStored(d.value);
        await s.sweep.settle();
        expect(await s.sweep.stored(d.value)).toBeUndefined();
        expect(await s.sweep.relink("g", d.value)).toBe(false);
        expect(await all(s.storedBlobs())).toEqual([]);
      });

      testIf(options.readableBodies)("an audit hashes every stored blob once and quarantines one whose bytes changed", async () => {
        await using b = await make({});
        const s = b.storage;
        const good = bytesOf("good bytes");
        const bad = bytesOf("bytes that rot");
        await put(s, "s1", good);
        await put(s, "s1", bad);
        await put(s, "s2", bad);
        await b.corrupt(digestOf(bad), bytesOf("rotten bytes!!"));
        const items = await all(s.audit.auditItems());
        expect(items.map((i) => i.digest.value).sort()).toEqual([digestOf(good).value, digestOf(bad).value].sort());
        const rotten = items.find((i) => i.digest.value === digestOf(bad).value)!;
        const actual = (await rotten.hash())!;
        expect(actual).not.toBe(digestOf(bad).hex);
        const q = await s.audit.quarantine(rotten, actual);
        expect(q.repositories.sort()).toEqual(["s1", "s2"]);
        expect(s.blobs.stat("s1", digestOf(bad))).toBeUndefined();
        expect(s.blobs.stat("s2", digestOf(bad))).toBeUndefined();
        expect(await s.blobs.read("s1", digestOf(good))).toEqual(good);
        expect(s.audit.quarantined().map((x) => x.digest)).toEqual([digestOf(bad).value]);
      });
    });

    testIf(options.powerCut)("what a commit acknowledged survives a power cut, and what was cancelled does not appear", async () => {
      await using b = await make({});
      const s = b.storage;
      const kept = bytesOf("acknowledged");
      const d = await put(s, "p", kept);
      await s.indexes.update("p", (e) => [...e, descriptor(d, kept.byteLength, "v1")]);
      const dropped = await s.blobs.ingest("p", "sha256");
      await dropped.write([bytesOf("never acknowledged")]);
      await dropped.cancel();
      const after = await b.afterPowerCut!();
      expect(await after.blobs.read("p", d)).toEqual(kept);
      expect((await after.indexes.index("p"))?.tags.get("v1")?.digest).toBe(d.value);
      expect((await all(after.storedBlobs())).map((e) => e.digest)).toEqual([d.value]);
    });
  });
}
