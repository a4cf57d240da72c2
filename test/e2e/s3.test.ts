/**
 * The real daemon on the S3 backend (`[storage] backend = "s3"`), on the test helper's Ceph
 * cluster (or BERTH_S3_ENDPOINT): two berth processes on one bucket, each with its own local
 * root (meta.db and spooled uploads only). skopeo pushes through one and pulls through the
 * other byte-identical, podman pushes through the second and pulls through the first, ctr
 * pulls through one what was pushed through the other and pushes it back through the second;
 * every blob either process serves of those images hashes to its digest (byte-exact);
 * concurrent tag pushes through both
 * lose none of the acknowledged ones; GC and scrub run on the bucket through the admin API.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OCI_INDEX, OCI_MANIFEST } from "../../daemon/oci/mediatypes";
import { S3Client } from "../../daemon/storage/s3/client";
import { S3Keys } from "../../daemon/storage/s3/keys";
import { type S3Peer, dropBucket, s3Peer } from "../helpers/ceph";
import { type Containerd, type Fixtures, Podman, Skopeo, buildFixtures, getManifest, layoutBlobs, layoutTag, listTags, makeTemp, parseManifest, sha256, startContainerd } from "../helpers/clients";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { imageManifest } from "../helpers/registry";

setDefaultTimeout(120_000);

let peer: S3Peer;
let s3: S3Client;
let work: string;
let fx: Fixtures;
let a: Daemon;
let b: Daemon;
const bucket = `berth-e2e-${crypto.randomUUID().slice(0, 8)}`;
const prefix = "site";

/** [storage] lines for a daemon on the shared bucket. */
function s3Storage(extra = ""): string {
  return `backend = "s3"\n[storage.s3]\nendpoint = "${peer.endpoint}"\nbucket = "${bucket}"\nprefix = "${prefix}"\nregion = "${peer.region}"\ncredentials_file = "${join(work, "s3.credentials")}"\nblob_grace = 0\n${extra}`;
}

beforeAll(async () => {
  peer = await s3Peer();
  work = makeTemp("berth-e2e-s3-");
  const creds = join(work, "s3.credentials");
  writeFileSync(creds, `[default]\naws_access_key_id = ${peer.accessKey}\naws_secret_access_key = ${peer.secretKey}\n`);
  chmodSync(creds, 0o600);
  s3 = new S3Client({ ...peer, bucket });
  await s3.createBucket();
  [fx, a, b] = await Promise.all([
    buildFixtures(join(work, "fixtures")),
    startDaemon({ storage: s3Storage(), extra: "[gc]\ngrace = 0\ninterval = 0\n[scrub]\ninterval = 0\n" }),
    startDaemon({ storage: s3Storage(), extra: "[gc]\ngrace = 0\ninterval = 0\n[scrub]\ninterval = 0\n" }),
  ]);
}, 180_000);

afterAll(async () => {
  await a?.[Symbol.asyncDispose]();
  await b?.[Symbol.asyncDispose]();
  if (s3) await dropBucket(s3);
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

/**
 * Fetches `ref` from the registry at `url` and everything it references (an index's
 * manifests, each manifest's config and layers), checking that each body hashes to its
 * digest and has the size its descriptor says; returns how many distinct blobs and
 * manifests were checked.
 */
async function servedExact(url: string, repo: string, ref: string): Promise<number> {
  const seen = new Set<string>();
  const visit = async (reference: string): Promise<void> => {
    const m = await getManifest(url, repo, reference);
    expect(m.status).toBe(200);
    const digest = sha256(m.bytes);
    if (reference.includes(":")) expect(digest).toBe(reference);
    seen.add(digest);
    const doc = parseManifest(m.bytes);
    for (const child of doc.manifests ?? []) if (!seen.has(child.digest)) await visit(child.digest);
    for (const blob of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) {
      if (seen.has(blob.digest)) continue;
      const res = await fetch(`${url}/v2/${repo}/blobs/${blob.digest}`);
      expect(res.status).toBe(200);
      const bytes = new Uint8Array(await res.arrayBuffer());
      expect({ digest: sha256(bytes), size: bytes.byteLength }).toEqual({ digest: blob.digest, size: blob.size });
      seen.add(blob.digest);
    }
  };
  await visit(ref);
  return seen.size;
}

describe("two berth processes on one bucket", () => {
  test("skopeo pushes a multi-arch image through one and pulls it through the other, identical; nothing is on the local roots", async () => {
    using skopeo = new Skopeo();
    await skopeo.ok(["copy", "-q", "--dest-tls-verify=false", "--all", "--preserve-digests", `oci:${fx.multi}:v1`, `docker://${a.host}/s3/multi:v1`]);
    const back = join(work, "back-multi");
    await skopeo.ok(["copy", "-q", "--src-tls-verify=false", "--all", "--preserve-digests", `docker://${b.host}/s3/multi:v1`, `oci:${back}:v1`]);
    expect(layoutTag(back, "v1").digest).toBe(layoutTag(fx.multi, "v1").digest);
    const want = layoutBlobs(fx.multi);
    const got = layoutBlobs(back);
    // digest -> hash of the bytes skopeo wrote: the same blobs, byte for byte
    expect([...got.entries()].sort()).toEqual([...want.entries()].sort());
    for (const [digest, bytesHash] of got) expect(bytesHash).toBe(digest);
    for (const d of [a, b]) expect(await servedExact(d.url, "s3/multi", "v1")).toBe(want.size);
    // the bytes are in the bucket, under the content-addressed keys
    const keys = new S3Keys(prefix);
    for (const digest of want.keys()) expect((await s3.head(keys.blob(digest)))?.size).toBeGreaterThan(0);
    expect(await s3.head(keys.index("s3/multi"))).toBeDefined();
  });

  test("podman pushes through the second and pulls through the first; ctr pulls it through the first and pushes it through the second; all byte-exact", async () => {
    using podman = new Podman([a.host, b.host]);
    const imported = (await podman.ok(["import", "--quiet", fx.rootfs, `${b.host}/s3/podman:v1`])).stdout.trim();
    const digestFile = join(work, "podman.digest");
    await podman.ok(["push", "--tls-verify=false", "--format", "oci", "--digestfile", digestFile, `${b.host}/s3/podman:v1`]);
    await podman.ok(["rmi", "--force", imported]);
    await podman.ok(["pull", "--tls-verify=false", `${a.host}/s3/podman:v1`]);
    const inspected = JSON.parse((await podman.ok(["image", "inspect", `${a.host}/s3/podman:v1`])).stdout) as { Id: string }[];
    expect(`sha256:${inspected[0]!.Id}`).toBe(imported.startsWith("sha256:") ? imported : `sha256:${imported}`);
    const pushedDigest = (await Bun.file(digestFile).text()).trim();
    expect((await getManifest(a.url, "s3/podman", "v1")).digestHeader).toBe(pushedDigest);
    // what podman pushed through the second, both serve byte-exact
    for (const d of [a, b]) expect(await servedExact(d.url, "s3/podman", "v1")).toBeGreaterThanOrEqual(3);
    await using ctd: Containerd = await startContainerd();
    const ref = `${a.host}/s3/podman:v1`;
    await ctd.ctrOk(["images", "pull", "--plain-http", ref]);
    expect((await ctd.ctrOk(["images", "ls", "-q"])).stdout).toContain(ref);
    // ctr pushes what it pulled through the first to a new repository through the second:
    // the first serves the same manifest bytes and every blob byte-exact
    const pushed = `${b.host}/s3/ctr:v1`;
    await ctd.ctrOk(["images", "tag", ref, pushed]);
    await ctd.ctrOk(["images", "push", "--plain-http", pushed]);
    const original = await getManifest(b.url, "s3/podman", "v1");
    const copy = await getManifest(a.url, "s3/ctr", "v1");
    expect(copy.status).toBe(200);
    expect(copy.bytes).toEqual(original.bytes);
    expect(await servedExact(a.url, "s3/ctr", "v1")).toBeGreaterThanOrEqual(3);
  });

  test("concurrent tag pushes through both processes lose none that was acknowledged, and a moved tag ends on an acknowledged value", async () => {
    const repo = "s3/race";
    const config = JSON.stringify({ architecture: "amd64", os: "linux" });
    const layer = "a layer shared by every manifest ".repeat(100);
    for (const d of [a, b]) {
      for (const blob of [config, layer]) expect((await fetch(`${d.url}/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, { method: "POST", body: blob })).status).toBe(201);
    }
    const manifests = Array.from({ length: 24 }, (_, i) => imageManifest(config, [layer], { annotations: { n: String(i) } }));
    const put = (d: Daemon, tag: string, body: string) => fetch(`${d.url}/v2/${repo}/manifests/${tag}`, { method: "PUT", headers: { "Content-Type": OCI_MANIFEST }, body });
    // distinct tags through both at once, and one tag ("moving") moved by every request
    const results = await Promise.all(manifests.map(async (m, i) => {
      const d = i % 2 === 0 ? a : b;
      const own = await put(d, `t${i}`, m);
      const moving = await put(d, "moving", m);
      return { i, own: own.status, moving: moving.status };
    }));
    const acknowledged = results.filter((r) => r.own === 201).map((r) => `t${r.i}`);
    expect(acknowledged.length).toBe(manifests.length);
    for (const d of [a, b]) {
      const tags = await listTags(d.url, repo);
      for (const t of acknowledged) expect(tags).toContain(t);
      const moved = await getManifest(d.url, repo, "moving");
      expect(moved.status).toBe(200);
      const movedAcks = results.filter((r) => r.moving === 201).map((r) => sha256(manifests[r.i]!));
      expect(movedAcks).toContain(moved.digestHeader ?? "no Docker-Content-Digest");
    }
    const viaA = await getManifest(a.url, repo, "moving");
    const viaB = await getManifest(b.url, repo, "moving");
    expect(viaA.digestHeader).toBe(viaB.digestHeader as string);
  });
});

test("behind one load balancer: blobs pushed through one process, the manifest through the other, an index through the first again", async () => {
  const repo = "s3/split";
  const config = JSON.stringify({ architecture: "arm64", os: "linux", split: true });
  const layer = `split layer ${crypto.randomUUID()} `.repeat(50);
  for (const blob of [config, layer]) expect((await fetch(`${a.url}/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, { method: "POST", body: blob })).status).toBe(201);
  const manifest = imageManifest(config, [layer]);
  const put = await fetch(`${b.url}/v2/${repo}/manifests/arm64`, { method: "PUT", headers: { "Content-Type": OCI_MANIFEST }, body: manifest });
  expect(put.status).toBe(201);
  const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(manifest), size: manifest.length, platform: { architecture: "arm64", os: "linux" } }] });
  const putIndex = await fetch(`${a.url}/v2/${repo}/manifests/v1`, { method: "PUT", headers: { "Content-Type": OCI_INDEX }, body: index });
  expect(putIndex.status).toBe(201);
  expect((await getManifest(b.url, repo, "v1")).digestHeader).toBe(sha256(index));
});

test("an upload session stays with the process that opened it: the other answers BLOB_UPLOAD_UNKNOWN; the owner completes it and the other serves the blob", async () => {
  const start = await fetch(`${a.url}/v2/s3/session/blobs/uploads/`, { method: "POST" });
  expect(start.status).toBe(202);
  const location = start.headers.get("location")!;
  const other = await fetch(new URL(location, b.url), { method: "PATCH", body: "chunk", headers: { "content-type": "application/octet-stream" } });
  expect(other.status).toBe(404);
  expect(((await other.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("BLOB_UPLOAD_UNKNOWN");
  const own = await fetch(new URL(`${location}${location.includes("?") ? "&" : "?"}digest=${sha256("chunk")}`, a.url), { method: "PUT", body: "chunk" });
  expect(own.status).toBe(201);
  expect((await fetch(`${b.url}/v2/s3/session/blobs/${sha256("chunk")}`)).status).toBe(200);
});

describe("lifecycle on the bucket", () => {
  test("GC removes an unreferenced blob from the bucket and keeps what a manifest references; scrub quarantines a rotten blob", async () => {
    const keys = new S3Keys(prefix);
    const repo = "s3/gc";
    const config = JSON.stringify({ architecture: "amd64", os: "linux", gc: true });
    const layer = "kept layer ".repeat(1000);
    const orphan = `an orphan ${crypto.randomUUID()}`;
    for (const blob of [config, layer, orphan]) expect((await fetch(`${a.url}/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, { method: "POST", body: blob })).status).toBe(201);
    expect((await fetch(`${a.url}/v2/${repo}/manifests/v1`, { method: "PUT", headers: { "Content-Type": OCI_MANIFEST }, body: imageManifest(config, [layer]) })).status).toBe(201);
    const gc = (await (await fetch(`${a.url}/api/v1/storage/gc`, { method: "POST" })).json()) as { blobs: { digest: string }[]; pool: { digest: string }[] };
    expect(gc.blobs.map((x) => x.digest)).toContain(sha256(orphan));
    expect(gc.blobs.map((x) => x.digest)).not.toContain(sha256(layer));
    expect(await s3.head(keys.blob(sha256(orphan)))).toBeUndefined();
    expect(await s3.head(keys.link(repo, sha256(orphan)))).toBeUndefined();
    expect(await s3.head(keys.blob(sha256(layer)))).toBeDefined();
    // the other process sees the orphan gone too
    expect((await fetch(`${b.url}/v2/${repo}/blobs/${sha256(orphan)}`, { method: "HEAD" })).status).toBe(404);
    expect((await fetch(`${b.url}/v2/${repo}/blobs/${sha256(layer)}`)).status).toBe(200);

    // bit rot in the cluster: same key, other bytes
    await s3.put(keys.blob(sha256(layer)), "rotten bytes");
    const scrub = (await (await fetch(`${b.url}/api/v1/storage/scrub`, { method: "POST" })).json()) as { quarantined: { digest: string }[] };
    expect(scrub.quarantined.map((q) => q.digest)).toEqual([sha256(layer)]);
    expect(await s3.head(keys.blob(sha256(layer)))).toBeUndefined();
    expect(await s3.head(keys.quarantined(sha256(layer)))).toBeDefined();
    expect((await fetch(`${b.url}/v2/${repo}/blobs/${sha256(layer)}`, { method: "HEAD" })).status).toBe(404);
  });
});
