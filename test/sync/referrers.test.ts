/**
 * Referrers mirroring against a real upstream without a referrers API (docker-registry
 * 2.8): an image pushed with skopeo, an artifact whose `subject` is that image pushed with
 * fetch, and the fallback tag `sha256-<hex>` (an index listing the artifact) the
 * distribution spec defines for such registries. A scheduled sync run must store the
 * artifact and list it in berth's own referrers API with its artifactType.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { startDaemon } from "../helpers/daemon";
import { makeTemp, pushBlobTo, sha256, Skopeo, syncView, waitFor } from "../helpers/clients";
import { type BuiltImage, type UpstreamRegistry, buildLayout, startUpstream } from "../helpers/upstream";
import { OCI_INDEX, OCI_MANIFEST } from "../../daemon/oci/mediatypes";

const EMPTY = "application/vnd.oci.empty.v1+json";
const SIG_TYPE = "application/vnd.example.signature.v1+json";

let upstream: UpstreamRegistry;
let skopeo: Skopeo;
let work: string;
let img: BuiltImage;
let artifact: { digest: string; size: number; payload: string };

/** Pushes a blob straight to the upstream's /v2 API (POST then PUT). */
const pushBlob = (repo: string, bytes: Uint8Array | string) => pushBlobTo(upstream.url, repo, bytes, "session");

/** Pushes a manifest straight to the upstream; returns its descriptor fields. */
async function pushManifest(repo: string, ref: string | undefined, body: string, mediaType: string): Promise<{ digest: string; size: number }> {
  const digest = sha256(body);
  const res = await fetch(`${upstream.url}/v2/${repo}/manifests/${ref ?? digest}`, { method: "PUT", body, headers: { "Content-Type": mediaType } });
  if (res.status !== 201) throw new Error(`upstream refused manifest ${ref ?? digest}: ${res.status} ${await res.text()}`);
  return { digest, size: new TextEncoder().encode(body).byteLength };
}

beforeAll(async () => {
  work = makeTemp("berth-referrers-");
  upstream = await startUpstream();
  skopeo = new Skopeo();
  img = buildLayout(join(work, "app"), "v1", ["linux/amd64"], [3000]);
  await skopeo.ok(["copy", "--dest-tls-verify=false", `oci:${join(work, "app")}:v1`, `docker://${upstream.host}/apps/signed:v1`]);
  const subjectSize = (await fetch(`${upstream.url}/v2/apps/signed/manifests/${img.digest}`, { method: "HEAD", headers: { Accept: OCI_MANIFEST } })).headers.get("content-length");
  const config = await pushBlob("apps/signed", "{}");
  const payload = `{"signed":"${img.digest}","nonce":"${crypto.randomUUID()}"}`;
  const layer = await pushBlob("apps/signed", payload);
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: SIG_TYPE,
    config: { mediaType: EMPTY, ...config },
    layers: [{ mediaType: "application/vnd.example.signature.payload", ...layer }],
    subject: { mediaType: OCI_MANIFEST, digest: img.digest, size: Number(subjectSize) },
    annotations: { "org.example.signer": "berth-test" },
  });
  artifact = { ...(await pushManifest("apps/signed", undefined, body, OCI_MANIFEST)), payload: layer.digest };
  // the referrers tag schema: tag "<alg>-<hex>" holds an index of the subject's referrers
  const fallback = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [{ mediaType: OCI_MANIFEST, digest: artifact.digest, size: artifact.size, artifactType: SIG_TYPE, annotations: { "org.example.signer": "berth-test" } }],
  });
  await pushManifest("apps/signed", img.digest.replace(":", "-"), fallback, OCI_INDEX);
}, 60_000);

afterAll(async () => {
  await upstream?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  rmSync(work, { recursive: true, force: true });
});

describe("referrers mirroring", () => {
  test("the upstream has no referrers API (the fallback is needed)", async () => {
    const res = await fetch(`${upstream.url}/v2/apps/signed/referrers/${img.digest}`);
    expect(res.status).toBe(404);
  });

  test("a scheduled sync stores the artifact found through the fallback tag; berth's referrers API lists it", async () => {
    await using berth = await startDaemon({
      extra: `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\nrepos = ["apps/signed"]\ninterval = 3600\non_demand = false\n`,
    });
    const status = async () => (await syncView(berth.url)).registries[0]!;
    await waitFor("the first sync run to finish", async () => (await status()).lastRun !== null, 30_000);
    const first = (await status()).lastRun!;
    expect(first.error).toBeUndefined();
    expect(first.report!.referrers).toBe(1);
    // the image is mirrored; the fallback tag is not (berth answers the referrers API itself)
    expect(first.report!.images).toBe(1);
    expect(((await (await fetch(`${berth.url}/v2/apps/signed/tags/list`)).json()) as { tags: string[] }).tags).toEqual(["v1"]);

    const res = await fetch(`${berth.url}/v2/apps/signed/referrers/${img.digest}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe(OCI_INDEX);
    const index = (await res.json()) as { manifests: { digest: string; artifactType?: string; mediaType: string; size: number }[] };
    expect(index.manifests.map((m) => [m.digest, m.artifactType, m.size])).toEqual([[artifact.digest, SIG_TYPE, artifact.size]]);
    // filtered by artifactType
    const none = (await (await fetch(`${berth.url}/v2/apps/signed/referrers/${img.digest}?artifactType=application/x-other`)).json()) as { manifests: unknown[] };
    expect(none.manifests).toEqual([]);
    // the artifact's manifest and blob are stored, with the digests the upstream had
    const m = await fetch(`${berth.url}/v2/apps/signed/manifests/${artifact.digest}`, { headers: { Accept: OCI_MANIFEST } });
    expect(m.status).toBe(200);
    expect(sha256(new Uint8Array(await m.arrayBuffer()))).toBe(artifact.digest);
    expect((await fetch(`${berth.url}/v2/apps/signed/blobs/${artifact.payload}`)).status).toBe(200);

    // a second run finds nothing new and still lists the one referrer
    expect((await fetch(`${berth.url}/api/v1/sync/up/run`, { method: "POST" })).status).toBe(202);
    await waitFor("the second run to finish", async () => (await status()).lastRun?.at !== first.at, 30_000);
    const again = (await (await fetch(`${berth.url}/v2/apps/signed/referrers/${img.digest}`)).json()) as { manifests: unknown[] };
    expect(again.manifests).toHaveLength(1);
  }, 60_000);
});
