/**
 * Pull-through against a real upstream (docker-registry on loopback, filled by skopeo):
 * single- and multi-arch pulls through berth with real clients, only the asked platform
 * fetched, one upstream fetch for concurrent first pulls, a client that disconnects, and
 * misses that are not upstream either.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { errorsOf, hasBlob as hasBlobIn, makeTemp, sha256, Skopeo, waitFor } from "../helpers/clients";
import { type BuiltImage, type UpstreamRegistry, buildLayout, startUpstream } from "../helpers/upstream";

let upstream: UpstreamRegistry;
let berth: Daemon;
let skopeo: Skopeo;
let work: string;
let single: BuiltImage;
let multi: BuiltImage;
let big: BuiltImage;

const hasBlob = (repo: string, digest: string) => hasBlobIn(berth.root, repo, digest);
const upstreamGets = (needle: string) => upstream.requests().filter((r) => r.method === "GET" && r.uri.includes(needle)).length;

beforeAll(async () => {
  work = makeTemp("berth-pt-");
  upstream = await startUpstream();
  skopeo = new Skopeo();
  single = buildLayout(join(work, "single"), "v1", ["linux/amd64"], [3000, 200_000]);
  multi = buildLayout(join(work, "multi"), "v1", ["linux/amd64", "linux/arm64"], [5000]);
  big = buildLayout(join(work, "big"), "v1", ["linux/amd64"], [24 << 20]);
  for (const [name, all] of [["single", false], ["multi", true], ["big", false]] as const) {
    await skopeo.ok(["copy", ...(all ? ["--all"] : []), "--dest-tls-verify=false", `oci:${join(work, name)}:v1`, `docker://${upstream.host}/lib/${name}:v1`]);
  }
  berth = await startDaemon({
    extra: `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\nrepos = ["lib/**"]\ndest_prefix = "cache"\nstrip_prefix = "lib"\n`,
  });
}, 60_000);

afterAll(async () => {
  await berth?.[Symbol.asyncDispose]();
  await upstream?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  rmSync(work, { recursive: true, force: true });
});

describe("pull-through", () => {
  test("a single-arch image pulls through berth byte-exact and ends up stored", async () => {
    const out = join(work, "out-single");
    await skopeo.ok(["copy", "--src-tls-verify=false", `docker://${berth.host}/cache/single:v1`, `oci:${out}:v1`]);
    const index = JSON.parse(readFileSync(join(out, "index.json"), "utf8"));
    expect(index.manifests[0].digest).toBe(single.digest);
    const p = single.platforms["linux/amd64"]!;
    for (const b of p.blobs) expect(sha256(readFileSync(join(out, "blobs", "sha256", b.slice(7))))).toBe(b);
    // the manifest is stored once its blobs are in; the tag then resolves locally
    await waitFor("the image to be stored", () => existsSync(join(berth.root, "cache/single/index.json")) && readFileSync(join(berth.root, "cache/single/index.json"), "utf8").includes(single.digest));
    for (const b of p.blobs) expect(hasBlob("cache/single", b)).toBe(true);
    const res = await fetch(`${berth.url}/v2/cache/single/manifests/v1`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
    expect(res.headers.get("docker-content-digest")).toBe(single.digest);
  }, 60_000);

  test("a multi-arch pull fetches only the asked platform", async () => {
    const out = join(work, "out-multi");
    await skopeo.ok(["copy", "--src-tls-verify=false", "--override-arch", "arm64", `docker://${berth.host}/cache/multi:v1`, `oci:${out}:v1`]);
    const arm = multi.platforms["linux/arm64"]!;
    const amd = multi.platforms["linux/amd64"]!;
    await waitFor("the arm64 image to be stored", () => [arm.manifest, ...arm.blobs].every((d) => hasBlob("cache/multi", d)));
    expect(hasBlob("cache/multi", multi.digest)).toBe(true);
    for (const d of [amd.manifest, ...amd.blobs]) {
      expect(hasBlob("cache/multi", d)).toBe(false);
      expect(upstreamGets(d.slice(7))).toBe(0);
    }
  }, 60_000);

  test("concurrent first pulls of a blob share one upstream fetch and all get the right bytes", async () => {
    const layer = big.platforms["linux/amd64"]!.blobs[1]!;
    const bodies = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const res = await fetch(`${berth.url}/v2/cache/big/blobs/${layer}`);
        expect(res.status).toBe(200);
        return new Uint8Array(await res.arrayBuffer());
      }),
    );
    for (const b of bodies) expect(sha256(b)).toBe(layer);
    expect(upstreamGets(layer.slice(7))).toBe(1);
    expect(hasBlob("cache/big", layer)).toBe(true);
  }, 60_000);

  test("a client that disconnects mid-blob does not stop the store", async () => {
    const img = buildLayout(join(work, "gone"), "v1", ["linux/amd64"], [16 << 20]);
    await skopeo.ok(["copy", "--dest-tls-verify=false", `oci:${join(work, "gone")}:v1`, `docker://${upstream.host}/lib/gone:v1`]);
    const layer = img.platforms["linux/amd64"]!.blobs[1]!;
    const ac = new AbortController();
    const res = await fetch(`${berth.url}/v2/cache/gone/blobs/${layer}`, { signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    await waitFor("the blob to be stored anyway", () => hasBlob("cache/gone", layer), 20_000);
    expect(sha256(readFileSync(join(berth.root, "cache/gone/blobs/sha256", layer.slice(7))))).toBe(layer);
  }, 60_000);

  test("content missing upstream too is MANIFEST_UNKNOWN / BLOB_UNKNOWN naming the upstream", async () => {
    const m = await fetch(`${berth.url}/v2/cache/single/manifests/nope`);
    expect(m.status).toBe(404);
    const error = (await errorsOf(m))[0]!;
    expect(error.code).toBe("MANIFEST_UNKNOWN");
    expect(error.detail).toContain("upstream up");
    const b = await fetch(`${berth.url}/v2/cache/single/blobs/sha256:${"0".repeat(64)}`);
    expect(b.status).toBe(404);
    expect((await errorsOf(b))[0]!.code).toBe("BLOB_UNKNOWN");
  });

  test("repositories outside dest_prefix are not pulled through", async () => {
    const res = await fetch(`${berth.url}/v2/lib/single/manifests/v1`);
    expect(res.status).toBe(404);
    expect(upstream.requests().some((r) => r.uri.startsWith("/v2/lib/lib/"))).toBe(false);
  });
});
