/**
 * The workloads of the power-cut harness (test/helpers/powercut.ts), one per kind of write
 * berth makes: pushes (monolithic, chunked, concurrent, many into one repository at once
 * (group commit), sha512, mounts from the pool),
 * deletes (by tag, by digest, of blobs), garbage collection, retention, sync fetches
 * (sync/blobfetch.ts writing through the Disk, then the manifest stored as the mirror
 * stores it) and the adoption of a layout dropped into the root (served as it is, mounted
 * from into another repository, which adopts its blobs into the pool) and the import of an
 * air-gap bundle (daemon/bundle: BlobStore.ingest, then Registry.putManifest, tags last).
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importBundle } from "../../daemon/bundle/import";
import { localTarget } from "../../daemon/bundle/local";
import { writeBundle } from "../bundle/make";
import { silentLogger } from "../../daemon/log";
import { parseDigest, type Digest } from "../../daemon/oci/digest";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";
import { IoBudget } from "../../daemon/scheduler/budget";
import { BlobFetches } from "../../daemon/sync/blobfetch";
import { type Expect, type Model, ROOT, type WorkContext, type Workload, ok } from "./powercut";
import { imageManifest, sha256 } from "./registry";
import type { SimDisk } from "./simdisk";

type Image = { config: string; layers: string[]; manifest: string };

function image(seed: string, shared: string, layer = `layer of ${seed} `.repeat(30)): Image {
  const config = JSON.stringify({ architecture: "arm64", os: "linux", seed });
  return { config, layers: [layer, shared], manifest: imageManifest(config, [layer, shared]) };
}

const present = (img: Image): Expect => ({ kind: "present", manifest: img.manifest, blobs: [img.config, ...img.layers] });
const blobPath = (repo: string, data: string, alg: "sha256" | "sha512" = "sha256") => `${ROOT}/${repo}/blobs/${alg}/${createHash(alg).update(data).digest("hex")}`;
const SHARED = "shared base layer ".repeat(40);

/** Pushes a blob; `record`: it must survive (false: a GC pass running meanwhile may take it). */
async function pushBlob(w: WorkContext, repo: string, data: string, alg: "sha256" | "sha512" = "sha256", record = true): Promise<void> {
  const digest = `${alg}:${createHash(alg).update(data).digest("hex")}`;
  await ok(w.r.call("POST", `/v2/${repo}/blobs/uploads/?digest=${digest}`, { body: data }), 201);
  if (record) w.model.blobs.set(blobPath(repo, data, alg), data);
}

/** A chunked upload: POST, two PATCHes, PUT. */
async function pushChunked(w: WorkContext, repo: string, data: string): Promise<void> {
  const start = await w.r.call("POST", `/v2/${repo}/blobs/uploads/`);
  if (start.status !== 202) throw new Error(`status ${start.status}: ${await start.text()}`);
  let location = start.headers.get("location")!;
  const half = Math.floor(data.length / 2);
  for (const [from, to] of [[0, half], [half, data.length]] as const) {
    const res = await w.r.call("PATCH", location, { headers: { "Content-Range": `${from}-${to - 1}`, "Content-Type": "application/octet-stream" }, body: data.slice(from, to) });
    if (res.status !== 202) throw new Error(`status ${res.status}: ${await res.text()}`);
    location = res.headers.get("location")!;
  }
  await ok(w.r.call("PUT", `${location}${location.includes("?") ? "&" : "?"}digest=${sha256(data)}`), 201);
  w.model.blobs.set(blobPath(repo, data), data);
}

async function putManifest(w: WorkContext, repo: string, ref: string, img: Image): Promise<void> {
  await ok(w.r.call("PUT", `/v2/${repo}/manifests/${ref}`, { headers: { "Content-Type": OCI_MANIFEST }, body: img.manifest }), 201);
}

async function push(w: WorkContext, repo: string, tag: string, img: Image): Promise<void> {
  await w.run([[`${repo}:${tag}`, present(img)]], async () => {
    for (const b of [img.config, ...img.layers]) await pushBlob(w, repo, b);
    await putManifest(w, repo, tag, img);
  });
}

/** GC may take any blob no manifest references: forget them before it starts. */
async function gc(w: WorkContext): Promise<void> {
  w.model.blobs.clear();
  await w.run([], async () => void (await w.r.lifecycle.gc()));
}

const pushes: Workload = {
  name: "push",
  async run(w) {
    await push(w, "a", "v1", image("a1", SHARED));
    // the same layers again into a second repository: pool entries exist (EEXIST path)
    await push(w, "b/c", "v1", image("a1", SHARED));
    // chunked upload, then a manifest over it
    const big = image("chunked", SHARED, "chunked layer bytes ".repeat(200));
    await w.run([["a:chunked", present(big)]], async () => {
      await pushChunked(w, "a", big.layers[0]!);
      for (const b of [big.config, big.layers[1]!]) await pushBlob(w, "a", b);
      await putManifest(w, "a", "chunked", big);
    });
    await w.run([], () => pushBlob(w, "b/c", "sha512 payload ".repeat(10), "sha512"));
    // mount from the pool (no `from`) into a new repository
    const m = image("mounted", SHARED);
    await w.run([["m/n:v1", present(m)]], async () => {
      const res = await w.r.call("POST", `/v2/m/n/blobs/uploads/?mount=${sha256(SHARED)}`);
      if (res.status === 201) w.model.blobs.set(blobPath("m/n", SHARED), SHARED);
      else if (res.status === 202 && !w.disk.links) await pushBlob(w, "m/n", SHARED); // no pool without links
      else throw new Error(`status ${res.status}: ${await res.text()}`);
      for (const b of [m.config, m.layers[0]!]) await pushBlob(w, "m/n", b);
      await putManifest(w, "m/n", "v1", m);
    });
    // concurrent pushes sharing a layer, and a tag moved to a new image
    await Promise.all([push(w, "a", "v2", image("a2", SHARED)), push(w, "b/c", "v2", image("c2", SHARED)), push(w, "a", "v1", image("a1b", SHARED))]);
  },
};

const races: Workload = {
  name: "push-race",
  async run(w) {
    // the same new blob pushed twice at once into a new repository, and mounted there at
    // once: whichever is acknowledged first, the blob (and its repository) must be durable
    for (let i = 0; i < 4; i++) {
      const repo = `r/${i}`;
      const blob = `raced blob ${i} `.repeat(20);
      const mount = async () => {
        const res = await w.r.call("POST", `/v2/${repo}/blobs/uploads/?mount=${sha256(blob)}`);
        if (res.status === 201) w.model.blobs.set(blobPath(repo, blob), blob);
        else if (res.status !== 202) throw new Error(`status ${res.status}: ${await res.text()}`);
      };
      await w.run([], () => Promise.all([pushBlob(w, repo, blob), pushBlob(w, repo, blob), mount(), mount()]).then(() => {}));
    }
  },
};

/**
 * Ten manifest pushes into one repository at once: their index.json updates share writes
 * (storage/groupcommit.ts), and each acknowledged push must be in what survives.
 */
const groupPushes: Workload = {
  name: "push-group",
  async run(w) {
    const images = Array.from({ length: 10 }, (_, i) => image(`g${i}`, SHARED));
    for (const b of new Set(images.flatMap((img) => [img.config, ...img.layers]))) await w.run([], () => pushBlob(w, "one", b));
    const results = await Promise.allSettled(images.map((img, i) => w.run([[`one:v${i}`, present(img)]], () => putManifest(w, "one", `v${i}`, img))));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  },
};

const deletes: Workload = {
  name: "delete",
  async run(w) {
    const a1 = image("a1", SHARED);
    const a2 = image("a2", SHARED);
    await push(w, "a", "v1", a1);
    await push(w, "a", "v2", a2);
    await push(w, "a", "v3", image("a3", SHARED));
    await w.run([["a:v1", { kind: "absent" }]], () => ok(w.r.call("DELETE", "/v2/a/manifests/v1"), 202));
    await w.run([["a:v2", { kind: "absent" }]], () => ok(w.r.call("DELETE", `/v2/a/manifests/${sha256(a2.manifest)}`), 202));
    // a blob delete (of a layer no tag needs any more)
    const path = blobPath("a", a2.layers[0]!);
    w.model.blobs.delete(path);
    await w.run([], async () => {
      await ok(w.r.call("DELETE", `/v2/a/blobs/${sha256(a2.layers[0]!)}`), 202);
      w.model.deleted.add(path);
    });
    await push(w, "a", "v1", image("a1 again", SHARED));
  },
};

const collection: Workload = {
  name: "gc",
  async run(w) {
    await push(w, "a", "v1", image("a1", SHARED));
    await push(w, "a", "v2", image("a2", SHARED));
    await push(w, "gone", "v1", image("g1", "another shared layer"));
    await w.run([], () => pushBlob(w, "a", "an orphan blob"));
    await w.run([["a:v1", { kind: "absent" }]], () => ok(w.r.call("DELETE", "/v2/a/manifests/v1"), 202));
    await w.run([["gone:v1", { kind: "absent" }]], () => ok(w.r.call("DELETE", "/v2/gone/manifests/v1"), 202));
    await gc(w); // untagged manifest, its layer, the orphan, a whole empty repository and pool entries go
    await push(w, "a", "v3", image("a3", SHARED));
    await w.run([["a:v2", { kind: "absent" }]], () => ok(w.r.call("DELETE", "/v2/a/manifests/v2"), 202));
    await gc(w);
  },
};

const gcRace: Workload = {
  name: "gc-race",
  async run(w) {
    // GC passes while images are pushed: a manifest acknowledged has all its blobs; blobs no
    // manifest references yet may be collected, and then the manifest PUT is refused
    const pushOrRefused = async (repo: string, tag: string, img: Image) => {
      const key = `${repo}:${tag}`;
      try {
        await w.run([[key, present(img)]], async () => {
          for (const b of [img.config, ...img.layers]) await pushBlob(w, repo, b, "sha256", false);
          await putManifest(w, repo, tag, img);
        });
      } catch (err) {
        if (w.disk.dead || !(err as Error).message.includes("MANIFEST_BLOB_UNKNOWN")) throw err;
        w.model.inFlight.delete(key);
        w.model.state.set(key, { kind: "absent" });
      }
    };
    await push(w, "a", "v0", image("a0", SHARED));
    for (let i = 1; i <= 3; i++) {
      w.model.blobs.clear();
      await Promise.all([pushOrRefused("a", `v${i}`, image(`a${i}`, SHARED)), pushOrRefused("b/x", `v${i}`, image(`b${i}`, SHARED)), w.run([], async () => void (await w.r.lifecycle.gc()))]);
    }
  },
};

const retention: Workload = {
  name: "retention",
  async run(w) {
    // push times an hour apart, so "keep the last 1" does not depend on the clock's resolution
    const age = (tag: string, img: Image, ms: number) => {
      for (const ref of [tag, sha256(img.manifest)]) {
        const e = w.r.lifecycle.usage.get("b/c", ref);
        if (e) e.pushedAt = Date.now() - ms;
      }
    };
    const b1 = image("b1", SHARED);
    await push(w, "b/c", "v1", b1);
    age("v1", b1, 7_200_000);
    const b2 = image("b2", SHARED);
    await push(w, "b/c", "v2", b2);
    age("v2", b2, 3_600_000);
    const expire = (tag: string) =>
      w.run([[`b/c:${tag}`, { kind: "absent" }]], async () => {
        w.model.blobs.clear(); // retention's GC may take unreferenced blobs
        const report = await w.r.lifecycle.retention();
        if (!report.tags.some((t) => t.tag === tag)) throw new Error(`retention did not delete b/c:${tag}`);
      });
    await expire("v1");
    await push(w, "b/c", "v3", image("b3", "another shared layer"));
    await expire("v2");
    await gc(w);
  },
};

const unlimited = () => new IoBudget({ readBytesPerSecond: 0, writeBytesPerSecond: 0, readOpsPerSecond: 0, writeOpsPerSecond: 0 });

/** An upstream body: `data`, or its first half and then an error (the link broke). */
function body(data: string, broken = false): Response {
  const bytes = new TextEncoder().encode(data);
  if (!broken) return new Response(bytes);
  return new Response(new ReadableStream({ start(c) { c.enqueue(bytes.subarray(0, bytes.byteLength >> 1)); c.error(new Error("connection reset")); } }), { headers: { "content-length": String(bytes.byteLength) } });
}

const syncs: Workload = {
  name: "sync",
  async run(w) {
    const fetches = new BlobFetches(w.r.store, unlimited(), silentLogger);
    const fetch = async (repo: string, data: string, background: boolean, broken = false) => {
      const f = fetches.fetch(repo, parseDigest(sha256(data)) as Digest, async () => body(data, broken), { background, upstream: "up" });
      await f.done;
      w.model.blobs.set(blobPath(repo, data), data);
    };
    // as the mirror does: blobs first (a 700 KiB layer: several write batches), the tagged manifest last
    const mirror = async (repo: string, tag: string, img: Image, background: boolean) =>
      w.run([[`${repo}:${tag}`, present(img)]], async () => {
        for (const b of [img.config, ...img.layers]) await fetch(repo, b, background);
        await w.r.registry.putManifest(repo, tag, new TextEncoder().encode(img.manifest), OCI_MANIFEST);
      });
    await mirror("mirror/app", "v1", image("s1", SHARED, "synced layer ".repeat(55_000)), true);
    await mirror("pull/app", "v1", image("p1", SHARED), false); // a client's fetch (pull-through)
    // a fetch whose upstream breaks off, and one whose bytes do not match: nothing stored
    for (const [data, broken] of [["broken layer ".repeat(500), true], ["lying layer", false]] as const) {
      await w.run([], async () => {
        const f = fetches.fetch("mirror/app", parseDigest(broken ? sha256(data) : sha256("other")) as Digest, async () => body(data, broken), { background: true, upstream: "up" });
        if (await f.done.then(() => true, () => false)) throw new Error("a broken fetch succeeded");
      });
    }
    await mirror("mirror/app", "v1", image("s2", SHARED), true); // the upstream moved the tag
    await gc(w);
  },
};

/** A layout as another tool writes it into the root (skopeo, `cp -a`): files, no fsync of its own. */
async function dropLayout(disk: SimDisk, repo: string, tag: string, img: Image, readOnly = false): Promise<void> {
  const dir = `${ROOT}/${repo}`;
  await disk.mkdirp(`${dir}/blobs/sha256`);
  const write = async (path: string, data: string) => {
    const f = await disk.openAppend(path);
    await f.write([new TextEncoder().encode(data)]);
    await f.close();
  };
  for (const b of [img.config, ...img.layers, img.manifest]) await write(blobPath(repo, b), b);
  await write(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const desc = { mediaType: OCI_MANIFEST, digest: sha256(img.manifest), size: img.manifest.length, annotations: { "org.opencontainers.image.ref.name": tag } };
  await write(`${dir}/index.json`, JSON.stringify({ schemaVersion: 2, manifests: [desc] }));
  if (readOnly) for (const path of disk.files(`${dir}/blobs`)) disk.readOnly.add(path);
}

/** Serves a dropped layout, mounts from it (adoption into the pool), deletes it, collects. */
async function adopt(w: WorkContext, dropped: Image): Promise<void> {
  const res = await w.r.call("GET", "/v2/dropped/app/manifests/v1");
  if (res.status !== 200 || (await res.text()) !== dropped.manifest) throw new Error(`the dropped layout is not served (${res.status})`);
  const team = image("team", dropped.layers[1]!, dropped.layers[0]);
  await w.run([["team/app:v1", present(team)]], async () => {
    for (const b of dropped.layers) {
      await ok(w.r.call("POST", `/v2/team/app/blobs/uploads/?mount=${sha256(b)}&from=dropped/app`), 201);
      w.model.blobs.set(blobPath("team/app", b), b);
    }
    await pushBlob(w, "team/app", team.config);
    await putManifest(w, "team/app", "v1", team);
  });
  await w.run([["dropped/app:v1", { kind: "absent" }]], () => ok(w.r.call("DELETE", "/v2/dropped/app/manifests/v1"), 202));
  await gc(w);
}

const DROPPED = image("dropped", "a layer only the dropped layout had at first ".repeat(20), "dropped layer ".repeat(80));

const adoptDurable: Workload = {
  name: "adopt",
  async prepare(disk: SimDisk, model: Model) {
    await dropLayout(disk, "dropped/app", "v1", DROPPED); // long ago: made durable before the cut is armed
    model.state.set("dropped/app:v1", present(DROPPED));
  },
  run: (w) => adopt(w, DROPPED),
};

const adoptFresh: Workload = {
  name: "adopt-fresh",
  async run(w) {
    // copied in while berth runs, and used at once; its own files are the copying tool's to make durable
    w.model.foreign.add("dropped/app");
    w.model.state.set("dropped/app:v1", { kind: "any" }); // another tool's unsynced files: whatever survives, until berth deletes it
    await dropLayout(w.disk, "dropped/app", "v1", DROPPED);
    await adopt(w, DROPPED);
  },
};

const adoptForeignOwner: Workload = {
  name: "adopt-ro",
  async run(w) {
    // copied in by another user (root running skopeo): berth may read the blobs, not write or link them
    w.model.foreign.add("dropped/app");
    w.model.state.set("dropped/app:v1", { kind: "any" });
    await dropLayout(w.disk, "dropped/app", "v1", DROPPED, true);
    await adopt(w, DROPPED);
  },
};

/** The images of the bundle workload: two tags sharing a layer, and a second repository. */
export const BUNDLE_IMAGES = [
  { repo: "bundle/a", tag: "v1", img: image("bundle a1", SHARED) },
  { repo: "bundle/a", tag: "v2", img: image("bundle a2", SHARED, "second layer ".repeat(90)) },
  { repo: "bundle/b", tag: "v1", img: image("bundle b1", SHARED) },
];

/** Imports the bundle of {@link BUNDLE_IMAGES} into `w.r` (the file on the real disk, read as from a stick). */
export async function importTestBundle(r: WorkContext["r"]): Promise<{ blobsUploaded: number; manifestsPut: number }> {
  const dir = mkdtempSync(join(tmpdir(), "berth-bundle-pc-"));
  try {
    const file = join(dir, "bundle.tar");
    await writeBundle(file, BUNDLE_IMAGES.map((b) => ({ repo: b.repo, tag: b.tag, manifest: b.img.manifest, blobs: [b.img.config, ...b.img.layers] })));
    return await importBundle(localTarget(r.registry, r.store), file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const bundles: Workload = {
  name: "bundle",
  async run(w) {
    // every tag is in flight during the import: absent, or present with every blob (never partial)
    await w.run(BUNDLE_IMAGES.map((b) => [`${b.repo}:${b.tag}`, present(b.img)]), async () => void (await importTestBundle(w.r)));
    // a rerun writes nothing
    await w.run([], async () => {
      const again = await importTestBundle(w.r);
      if (again.blobsUploaded + again.manifestsPut > 0) throw new Error(`a rerun of the import wrote ${again.blobsUploaded} blobs and ${again.manifestsPut} manifests`);
    });
  },
};

/** Every workload, in the order the script reports them. */
export const WORKLOADS: Workload[] = [pushes, races, groupPushes, deletes, collection, gcRace, retention, syncs, adoptDurable, adoptFresh, adoptForeignOwner, bundles];
