/**
 * Sync's `only_signed` against a real upstream (docker-registry): of three images, only the
 * one whose cosign signature verifies with the trust store is mirrored, and its signature
 * (the `sha256-<hex>.sig` tag) is mirrored with it; one signed with another key and one not
 * signed at all are not mirrored, and the run's report counts them.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startDaemon } from "../helpers/daemon";
import { makeTemp, pushBlobTo, sha256, Skopeo, syncView, waitFor } from "../helpers/clients";
import { type UpstreamRegistry, buildLayout, startUpstream } from "../helpers/upstream";
import { SIGNATURE_ANNOTATION, SIMPLE_SIGNING } from "../../daemon/trust/cosign";
import { cosignSign, keyPair, type Pair, simplePayload } from "./fixtures";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
let upstream: UpstreamRegistry;
let work: string;
const release = keyPair("p256");
const intruder = keyPair("p256");
const digests: Record<string, string> = {};

/** Pushes a cosign tag-scheme signature of `digest` to the upstream. */
async function attach(repo: string, digest: string, pair: Pair): Promise<string> {
  const payload = simplePayload(digest, `${upstream.host}/${repo}`);
  const layer = await pushBlobTo(upstream.url, repo, payload, "session");
  const config = await pushBlobTo(upstream.url, repo, "{}", "session");
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: SIMPLE_SIGNING, ...layer, annotations: { [SIGNATURE_ANNOTATION]: cosignSign(pair, payload) } }],
  });
  const res = await fetch(`${upstream.url}/v2/${repo}/manifests/${digest.replace(":", "-")}.sig`, { method: "PUT", body, headers: { "Content-Type": OCI_MANIFEST } });
  expect(res.status).toBe(201);
  return sha256(body);
}

beforeAll(async () => {
  work = makeTemp("berth-onlysigned-");
  upstream = await startUpstream();
  using skopeo = new Skopeo();
  for (const name of ["good", "bad", "none"]) {
    const img = buildLayout(join(work, name), "v1", ["linux/amd64"], [2000]);
    digests[name] = img.digest;
    await skopeo.ok(["copy", "--dest-tls-verify=false", `oci:${join(work, name)}:v1`, `docker://${upstream.host}/apps/${name}:v1`]);
  }
  digests.goodSig = await attach("apps/good", digests.good!, release);
  await attach("apps/bad", digests.bad!, intruder);
}, 60_000);

afterAll(async () => {
  await upstream?.[Symbol.asyncDispose]();
  rmSync(work, { recursive: true, force: true });
});

test("only_signed mirrors only the image whose signature verifies, with its signature", async () => {
  const keys = join(work, "keys");
  mkdirSync(keys);
  writeFileSync(join(keys, "release.pub"), release.publicPem);
  await using berth = await startDaemon({
    extra: `[trust]\nenabled = true\nkeys_dir = "${keys}"\n[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\nrepos = ["apps/**"]\ninterval = 3600\non_demand = false\nonly_signed = true\n`,
  });
  const status = async () => (await syncView(berth.url)).registries[0]!;
  await waitFor("the first sync run to finish", async () => (await status()).lastRun !== null, 30_000);
  const report = (await status()).lastRun!.report as unknown as Record<string, number>;
  expect(report).toMatchObject({ images: 1, unsigned: 2 });
  const tags = async (repo: string) => {
    const res = await fetch(`${berth.url}/v2/${repo}/tags/list`);
    return res.status === 200 ? ((await res.json()) as { tags: string[] }).tags : res.status;
  };
  expect(await tags("apps/good")).toEqual([`${digests.good!.replace(":", "-")}.sig`, "v1"].sort());
  expect(await tags("apps/bad")).toBe(404);
  expect(await tags("apps/none")).toBe(404);
  const sig = await fetch(`${berth.url}/v2/apps/good/manifests/${digests.good!.replace(":", "-")}.sig`, { headers: { Accept: OCI_MANIFEST } });
  expect(sig.headers.get("docker-content-digest")).toBe(digests.goodSig!);
  const trust = (await (await fetch(`${berth.url}/api/v1/trust/status?repo=apps/good&digest=${digests.good}`)).json()) as { state: string };
  expect(trust.state).toBe("verified");
  expect(berth.logs()).toContain("not mirrored: no signature verifies (only_signed)");
}, 60_000);

test("only_signed on demand: a pull-through of an unsigned or wrongly signed image is DENIED; a verified one is served and its signature stored", async () => {
  const keys = join(work, "keys-od");
  mkdirSync(keys);
  writeFileSync(join(keys, "release.pub"), release.publicPem);
  await using berth = await startDaemon({
    extra: `[trust]\nenabled = true\nkeys_dir = "${keys}"\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\nrepos = ["apps/**"]\ninterval = 0\non_demand = true\nonly_signed = true\n`,
  });
  const get = (repo: string, ref: string) => fetch(`${berth.url}/v2/${repo}/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
  const good = await get("apps/good", "v1");
  expect(good.status).toBe(200);
  expect(good.headers.get("docker-content-digest")).toBe(digests.good!);
  for (const repo of ["apps/bad", "apps/none"]) {
    const res = await get(repo, "v1");
    expect(res.status).toBe(403);
    expect(((await res.json()) as { errors: { code: string; detail: string }[] }).errors[0]).toMatchObject({ code: "DENIED" });
  }
  // the signature came with the image; a client fetching it (to verify) gets it
  await waitFor("the cosign signature to be stored", async () => (await fetch(`${berth.url}/v2/apps/good/tags/list`).then((r) => r.json()) as { tags?: string[] }).tags?.includes(`${digests.good!.replace(":", "-")}.sig`) ?? false, 10_000);
  expect((await get("apps/good", `${digests.good!.replace(":", "-")}.sig`)).status).toBe(200);
}, 60_000);

test("only_signed on demand: an unsigned runnable image is not let through because it names a subject or is tagged like a cosign signature", async () => {
  // review finding: pull-through passed anything with a subject, and anything asked for by a
  // `sha256-<hex>.sig` tag, unchecked; runtimes ignore both and run the layers
  const res = await fetch(`${upstream.url}/v2/apps/none/manifests/v1`, { headers: { Accept: `${OCI_MANIFEST}, application/vnd.oci.image.index.v1+json` } });
  let doc = (await res.json()) as { mediaType?: string; manifests?: { digest: string }[]; layers?: unknown[] };
  if (doc.manifests) doc = (await (await fetch(`${upstream.url}/v2/apps/none/manifests/${doc.manifests[0]!.digest}`, { headers: { Accept: OCI_MANIFEST } })).json()) as typeof doc;
  expect(doc.layers?.length).toBeGreaterThan(0);
  const put = async (tag: string, body: object) => {
    const r = await fetch(`${upstream.url}/v2/apps/none/manifests/${tag}`, { method: "PUT", body: JSON.stringify(body), headers: { "Content-Type": OCI_MANIFEST } });
    expect(r.status).toBe(201);
  };
  const fakeSigTag = `sha256-${"0".repeat(64)}.sig`;
  await put(fakeSigTag, { ...doc, mediaType: OCI_MANIFEST });
  await put("with-subject", { ...doc, mediaType: OCI_MANIFEST, subject: { mediaType: OCI_MANIFEST, digest: digests.good!, size: 100 } });
  const keys = join(work, "keys-bypass");
  mkdirSync(keys);
  writeFileSync(join(keys, "release.pub"), release.publicPem);
  await using berth = await startDaemon({
    extra: `[trust]\nenabled = true\nkeys_dir = "${keys}"\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\nrepos = ["apps/**"]\ninterval = 0\non_demand = true\nonly_signed = true\n`,
  });
  for (const ref of [fakeSigTag, "with-subject"]) {
    const r = await fetch(`${berth.url}/v2/apps/none/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
    expect(r.status, ref).toBe(403);
  }
}, 60_000);
