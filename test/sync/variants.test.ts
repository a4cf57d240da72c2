/**
 * Platform filters with variants against a real upstream: a multi-arch index with two arm
 * variants (v6, v7), an arm64 entry without a variant (as most images publish it) and
 * amd64. A scheduled sync for "linux/arm/v7" stores only the v7 image; one for
 * "linux/arm64/v8" matches the variant-less arm64 entry (v8 is arm64's default variant).
 * The index itself is stored as the upstream served it (digest preserved).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startDaemon } from "../helpers/daemon";
import { makeTemp, Skopeo, syncView, waitFor } from "../helpers/clients";
import { type BuiltImage, type UpstreamRegistry, buildLayout, startUpstream } from "../helpers/upstream";

const PLATFORMS = ["linux/arm/v6", "linux/arm/v7", "linux/arm64", "linux/amd64"];
let upstream: UpstreamRegistry;
let skopeo: Skopeo;
let work: string;
let img: BuiltImage;

beforeAll(async () => {
  work = makeTemp("berth-variants-");
  upstream = await startUpstream();
  skopeo = new Skopeo();
  img = buildLayout(join(work, "multi"), "1.0", PLATFORMS, [1500, 2500]);
  await skopeo.ok(["copy", "--all", "--dest-tls-verify=false", `oci:${join(work, "multi")}:1.0`, `docker://${upstream.host}/multi/app:1.0`]);
}, 60_000);

afterAll(async () => {
  await upstream?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  rmSync(work, { recursive: true, force: true });
});

const registry = (name: string, platform: string) =>
  `[[sync.registries]]\nname = "${name}"\nurls = ["${upstream.url}"]\nrepos = ["multi/app"]\nplatforms = ["${platform}"]\ndest_prefix = "${name}"\ninterval = 3600\non_demand = false\n`;

function tagOf(root: string, repo: string, tag: string): string | undefined {
  const path = join(root, repo, "index.json");
  if (!existsSync(path)) return undefined;
  const index = JSON.parse(readFileSync(path, "utf8")) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  return index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag)?.digest;
}

describe("platform filter with variants", () => {
  test("linux/arm/v7 keeps only the v7 image; linux/arm64/v8 matches the variant-less arm64 entry", async () => {
    await using berth = await startDaemon({ extra: `[scheduler]\njitter_ms = 0\n${registry("armv7", "linux/arm/v7")}${registry("arm64", "linux/arm64/v8")}` });
    await waitFor("both sync runs to finish", async () => {
      const s = await syncView(berth.url);
      return s.registries.every((r) => r.lastRun?.report !== undefined);
    }, 30_000);
    const has = (repo: string, d: string) => existsSync(join(berth.root, repo, "blobs", "sha256", d.slice(7)));
    const kept: Record<string, string> = { "armv7/multi/app": "linux/arm/v7", "arm64/multi/app": "linux/arm64" };
    for (const [repo, platform] of Object.entries(kept)) {
      // the tag points at the upstream's index, byte for byte
      expect(tagOf(berth.root, repo, "1.0")).toBe(img.digest);
      for (const p of PLATFORMS) {
        const { manifest, blobs } = img.platforms[p]!;
        for (const d of [manifest, ...blobs]) expect([repo, p, d, has(repo, d)]).toEqual([repo, p, d, p === platform]);
      }
      // served: the index and the kept platform; the others are not here (and not fetched: on_demand is off)
      const accept = { Accept: "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json" };
      expect((await fetch(`${berth.url}/v2/${repo}/manifests/1.0`, { headers: accept })).headers.get("docker-content-digest")).toBe(img.digest);
      expect((await fetch(`${berth.url}/v2/${repo}/manifests/${img.platforms[platform]!.manifest}`, { headers: accept })).status).toBe(200);
      const other = platform === "linux/arm/v7" ? "linux/arm/v6" : "linux/amd64";
      expect((await fetch(`${berth.url}/v2/${repo}/manifests/${img.platforms[other]!.manifest}`, { headers: accept })).status).toBe(404);
    }
    // the upstream saw manifest GETs only for the kept platforms
    const childGets = upstream.requests().filter((r) => r.method === "GET" && /\/manifests\/sha256:/.test(r.uri)).map((r) => r.uri.split("/manifests/")[1]);
    expect(new Set(childGets)).toEqual(new Set([img.platforms["linux/arm/v7"]!.manifest, img.platforms["linux/arm64"]!.manifest]));
  }, 60_000);
});
