/**
 * GC and pushes at the same time in two real berth processes on one bucket (the test
 * helper's Ceph cluster, or BERTH_S3_ENDPOINT), with no grace at all: rounds of pushes
 * through both that re-use a small pool of layers across three repositories, deletes of the
 * previous round's manifests (so that layers become garbage in one repository while being
 * pushed into another), and GC passes through both processes, all at once. In the end
 * every image whose push was acknowledged, and not deleted by the test, is pullable through
 * both processes: each manifest and each blob, byte for byte.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync } from "node:fs";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";
import { S3Client } from "../../daemon/storage/s3/client";
import { type S3Peer, dropBucket, s3Peer, s3StorageToml, writeS3Credentials } from "../helpers/ceph";
import { makeTemp, sha256 } from "../helpers/clients";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { imageManifest } from "../helpers/registry";

setDefaultTimeout(120_000);

let peer: S3Peer;
let s3: S3Client;
let work: string;
let a: Daemon;
let b: Daemon;
const bucket = `berth-e2e-gc-${crypto.randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  peer = await s3Peer();
  work = makeTemp("berth-e2e-s3gc-");
  const creds = writeS3Credentials(work, peer);
  s3 = new S3Client({ ...peer, bucket });
  await s3.createBucket();
  const storage = s3StorageToml(peer, bucket, "gc", creds, "blob_grace = 0\n");
  const extra = "[gc]\ngrace = 0\ninterval = 0\n[scrub]\ninterval = 0\n";
  [a, b] = await Promise.all([startDaemon({ storage, extra }), startDaemon({ storage, extra })]);
}, 180_000);

afterAll(async () => {
  await a?.[Symbol.asyncDispose]();
  await b?.[Symbol.asyncDispose]();
  if (s3) await dropBucket(s3);
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

const REPOS = ["gc2/r0", "gc2/r1", "gc2/r2"];
const LAYERS = Array.from({ length: 6 }, (_, i) => `shared layer ${i} `.repeat(200));
const ROUNDS = 4;
const PER_ROUND = 6;

interface Image {
  repo: string;
  tag: string;
  manifest: string;
  blobs: string[];
}

const upload = (d: Daemon, repo: string, blob: string) => fetch(`${d.url}/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, { method: "POST", body: blob });

/**
 * Uploads the image's blobs and its manifest through `d`, as a client does: a manifest
 * refused because GC took a blob first (no grace here) is pushed again, blobs and all, a few
 * times; true when the manifest was acknowledged.
 */
async function push(d: Daemon, image: Image): Promise<boolean> {
  for (let attempt = 0; attempt < 5; attempt++) {
    for (const blob of image.blobs) {
      const res = await upload(d, image.repo, blob);
      await res.body?.cancel();
      expect(res.status).toBe(201);
    }
    const res = await fetch(`${d.url}/v2/${image.repo}/manifests/${image.tag}`, { method: "PUT", headers: { "Content-Type": OCI_MANIFEST }, body: image.manifest });
    const body = await res.text();
    // refused (a blob collected before the manifest came, or the GC lease held too long) is fine; acknowledged must hold
    if (![201, 400, 503].includes(res.status)) expect(`${res.status} ${body} ${d.logs().split("\n").filter((l) => /"(error|warn)"/.test(l)).slice(-3).join("\n")}`).toBe("201, 400 or 503");
    if (res.status === 201) return true;
  }
  return false;
}

async function gc(d: Daemon): Promise<void> {
  const res = await fetch(`${d.url}/api/v1/storage/gc`, { method: "POST" });
  const body = await res.text();
  expect(res.status === 200 ? "200" : `${res.status} ${body} ${d.logs().split("\n").filter((l) => l.includes('"error"')).slice(-3).join("\n")}`).toBe("200");
}

test("GC through both processes while both push and delete: every acknowledged image stays pullable through both", async () => {
  const kept: Image[] = [];
  let previous: Image[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const images = Array.from({ length: PER_ROUND }, (_, i): Image => {
      const config = JSON.stringify({ architecture: "amd64", os: "linux", round, i, nonce: crypto.randomUUID() });
      const layers = [LAYERS[(round + i) % LAYERS.length]!, LAYERS[(round + 2 * i + 1) % LAYERS.length]!];
      return { repo: REPOS[(round + i) % REPOS.length]!, tag: `r${round}-${i}`, manifest: imageManifest(config, [...new Set(layers)]), blobs: [config, ...new Set(layers)] };
    });
    const toDelete = previous.filter((_, i) => i % 2 === 0);
    const [acks] = await Promise.all([
      Promise.all(images.map((image, i) => push(i % 2 === 0 ? a : b, image))),
      Promise.all(toDelete.map(async (image, i) => {
        const res = await fetch(`${(i % 2 === 0 ? b : a).url}/v2/${image.repo}/manifests/${sha256(image.manifest)}`, { method: "DELETE" });
        await res.body?.cancel();
        expect(res.status).toBe(202);
      })),
      gc(round % 2 === 0 ? a : b),
      gc(round % 2 === 0 ? b : a),
    ]);
    for (const image of previous) if (!toDelete.includes(image)) kept.push(image);
    previous = images.filter((_, i) => acks[i]);
  }
  kept.push(...previous);
  await gc(a);
  await gc(b);
  // most pushes get through (a refusal is allowed, not the rule)
  expect(kept.length).toBeGreaterThan(ROUNDS * PER_ROUND / 4);
  for (const image of kept) {
    for (const d of [a, b]) {
      const m = await fetch(`${d.url}/v2/${image.repo}/manifests/${image.tag}`, { headers: { Accept: OCI_MANIFEST } });
      expect(`${image.repo}:${image.tag} ${m.status}`).toBe(`${image.repo}:${image.tag} 200`);
      expect(await m.text()).toBe(image.manifest);
      for (const blob of image.blobs) {
        const got = await fetch(`${d.url}/v2/${image.repo}/blobs/${sha256(blob)}`);
        expect(`${image.repo}:${image.tag} ${sha256(blob)} ${got.status}`).toBe(`${image.repo}:${image.tag} ${sha256(blob)} 200`);
        expect(sha256(await got.text())).toBe(sha256(blob));
      }
    }
  }
});
