/**
 * sha512 content through sync and a real client (issue 15). A fake upstream serves an image
 * whose config, layer and manifest are addressed by sha512 (its tag answered with a sha512
 * Docker-Content-Digest); berth pulls it through by digest and by tag, and a scheduled sync
 * mirrors it; both store it under its sha512 names, verified (by tag too: the manifest keeps
 * the sha512 name the upstream announces, so a reference by that digest resolves offline).
 *
 * No real client here: Debian's skopeo 1.9 (containers/image 5.2x, as podman 4.3) cannot
 * handle sha512 content at all. Pulled from berth, `skopeo copy ...@sha512:<d>` fails with
 * "Manifest does not match provided manifest digest", and by tag with "Download config.json
 * digest sha256:... does not match expected sha512:..." (it hashes everything with sha256);
 * it cannot push sha512 either. So sha512 is covered through the raw API, here and in
 * test/http/v2-write.test.ts and test/lifecycle/sha512.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { syncView, waitFor } from "../helpers/clients";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fakeupstream";

const hex512 = (b: Uint8Array) => createHash("sha512").update(b).digest("hex");
const sha512 = (b: Uint8Array) => `sha512:${hex512(b)}`;
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const enc = (s: string) => new TextEncoder().encode(s);

const config = enc(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, alg: "sha512" }));
const layer = new Uint8Array(randomBytes(200_000));
const manifest = enc(JSON.stringify({
  schemaVersion: 2,
  mediaType: MANIFEST,
  config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha512(config), size: config.byteLength },
  layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha512(layer), size: layer.byteLength }],
}));
const digest = sha512(manifest);

let fake: FakeUpstream;
let pull: Daemon;
let sched: Daemon;
beforeAll(async () => {
  fake = startFakeUpstream((_req, path) => {
    const m = /^\/v2\/lib\/(?:app|mirror)\/(manifests|blobs|tags)\/(.+)$/.exec(path);
    if (!m) return undefined;
    if (m[1] === "tags") return Response.json({ name: "lib/app", tags: ["v1"] });
    if (m[1] === "manifests") return m[2] === "v1" || m[2] === digest ? new Response(manifest, { headers: { "content-type": MANIFEST, "docker-content-digest": digest } }) : undefined;
    for (const b of [config, layer]) if (m[2] === sha512(b)) return new Response(b);
    return undefined;
  });
  const registry = `[[sync.registries]]\nname = "fake"\nurls = ["${fake.url}"]\ntimeout_ms = 4000\nretries = 0\n`;
  pull = await startDaemon({ extra: `${registry}repos = ["lib/**"]\n` });
  sched = await startDaemon({ extra: `${registry}repos = ["lib/mirror"]\non_demand = false\n` });
});
afterAll(async () => {
  await pull?.[Symbol.asyncDispose]();
  await sched?.[Symbol.asyncDispose]();
  await fake?.[Symbol.asyncDispose]();
});

/** The blob file of `repo` named `digest`, if it is there and hashes to its name. */
function storedIntact(root: string, repo: string, d: string): boolean {
  const path = join(root, repo, "blobs/sha512", d.slice(7));
  return existsSync(path) && hex512(readFileSync(path)) === d.slice(7);
}

describe("sha512 through sync", () => {
  test("pull-through by sha512 digest and by tag: served and stored under sha512 names", async () => {
    const byDigest = await fetch(`${pull.url}/v2/lib/app/manifests/${digest}`);
    expect(byDigest.status).toBe(200);
    expect(byDigest.headers.get("docker-content-digest")).toBe(digest);
    expect(sha512(new Uint8Array(await byDigest.arrayBuffer()))).toBe(digest);
    const blob = await fetch(`${pull.url}/v2/lib/app/blobs/${sha512(layer)}`);
    expect(blob.status).toBe(200);
    expect(sha512(new Uint8Array(await blob.arrayBuffer()))).toBe(sha512(layer));
    const byTag = await fetch(`${pull.url}/v2/lib/app/manifests/v1`);
    expect(byTag.status).toBe(200);
    expect(sha512(new Uint8Array(await byTag.arrayBuffer()))).toBe(digest);
    // stored once the fetches end (after the answers), each under its sha512 name
    await waitFor("the layer and the manifest to be stored", () => storedIntact(pull.root, "lib/app", sha512(layer)) && storedIntact(pull.root, "lib/app", digest), 4_000);
  });

  test("scheduled sync mirrors the sha512 image: every part stored under its sha512 name, the tag served", async () => {
    expect((await fetch(`${sched.url}/api/v1/sync/fake/run`, { method: "POST" })).status).toBe(202);
    await waitFor("the sync run to end", async () => (await syncView(sched.url)).registries[0]!.lastRun !== null, 8_000);
    expect((await syncView(sched.url)).registries[0]!.lastRun!.report).toMatchObject({ images: 1, failed: 0 });
    for (const d of [digest, sha512(config), sha512(layer)]) expect(storedIntact(sched.root, "lib/mirror", d)).toBe(true);
    const res = await fetch(`${sched.url}/v2/lib/mirror/manifests/v1`);
    expect(res.status).toBe(200);
    expect(sha512(new Uint8Array(await res.arrayBuffer()))).toBe(digest);
  });
});
