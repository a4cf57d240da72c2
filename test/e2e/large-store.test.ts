/**
 * Start-up with a large store (issue 15): a daemon pushes one image, stops; the test then
 * makes 2,000 repositories of it on disk the way cross-repository mounts would (each a
 * directory of hard links to the same blobs, its own index.json and a tag of its own), and
 * starts the daemon again on that root, twice: the first start indexes the repositories it
 * has not seen, the second finds them indexed. Each start must come up, list every
 * repository in the catalog (paged), serve every repository's tag, and a sample of blobs,
 * byte for byte; nothing is lost or duplicated, and the pool still holds one inode per blob.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { linkSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pushBlobTo, sha256 } from "../helpers/clients";
import { startDaemon, tempDir } from "../helpers/daemon";

const N = 2000;
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const root = tempDir("berth-large-store-");
const names = Array.from({ length: N }, (_, i) => `fleet/site${String(i % 50).padStart(2, "0")}/app${String(i).padStart(4, "0")}`);
let layer: string;
let manifest: string;

beforeAll(async () => {
  {
    await using d = await startDaemon({ root: join(root.path, "store") });
    const config = JSON.stringify({ architecture: "arm64", os: "linux" });
    layer = "the one layer every repository shares";
    await pushBlobTo(d.url, "seed/app", config);
    await pushBlobTo(d.url, "seed/app", layer);
    manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(layer), size: layer.length }],
    });
    const put = await fetch(`${d.url}/v2/seed/app/manifests/v1`, { method: "PUT", headers: { "Content-Type": MANIFEST }, body: manifest });
    expect(put.status).toBe(201);
    expect(await d.stop()).toBe(0);
  }
  const seed = join(root.path, "store/seed/app");
  const index = JSON.parse(readFileSync(join(seed, "index.json"), "utf8")) as { manifests: { annotations: Record<string, string> }[] };
  const blobs = readdirSync(join(seed, "blobs/sha256"));
  for (const [i, name] of names.entries()) {
    const dir = join(root.path, "store", name);
    mkdirSync(join(dir, "blobs/sha256"), { recursive: true });
    for (const b of blobs) linkSync(join(seed, "blobs/sha256", b), join(dir, "blobs/sha256", b));
    writeFileSync(join(dir, "oci-layout"), readFileSync(join(seed, "oci-layout")));
    index.manifests[0]!.annotations["org.opencontainers.image.ref.name"] = `r${i}`;
    writeFileSync(join(dir, "index.json"), `${JSON.stringify(index)}\n`);
  }
}, 60_000);

afterAll(() => {
  // ~10,000 files and directories: rm(1) takes a second where rmSync takes ~15 s here
  Bun.spawnSync(["rm", "-rf", "--", root.path]);
  root[Symbol.dispose]();
}, 60_000);

/** Every repository name in the catalog, paged by 1000. */
async function catalog(url: string): Promise<string[]> {
  const all: string[] = [];
  let next = `${url}/v2/_catalog?n=1000`;
  for (let page = 0; page < 20 && next; page++) {
    const res = await fetch(next);
    expect(res.status).toBe(200);
    all.push(...((await res.json()) as { repositories: string[] }).repositories);
    const link = res.headers.get("link");
    next = link ? new URL(/<([^>]+)>/.exec(link)![1]!, url).href : "";
  }
  return all;
}

for (const start of ["first start (indexes what it has not seen)", "second start (already indexed)"]) {
  test(`${start}: ${N} repositories listed and served, nothing lost`, async () => {
    await using d = await startDaemon({ root: join(root.path, "store") });
    expect((await catalog(d.url)).sort()).toEqual([...names, "seed/app"].sort());
    // every repository's own tag resolves to the manifest (in batches, to bound open requests)
    for (let i = 0; i < N; i += 100) {
      const batch = names.slice(i, i + 100).map(async (name, k) => {
        const res = await fetch(`${d.url}/v2/${name}/manifests/r${i + k}`);
        return res.status === 200 && (await res.text()) === manifest;
      });
      expect((await Promise.all(batch)).every(Boolean)).toBe(true);
    }
    for (const name of [names[0]!, names[N >> 1]!, names[N - 1]!]) {
      expect(await (await fetch(`${d.url}/v2/${name}/blobs/${sha256(layer)}`)).text()).toBe(layer);
    }
    // one inode for the layer: every repository and the pool link to it
    expect(statSync(join(root.path, "store/.berth/pool/sha256", sha256(layer).slice(7))).nlink).toBe(N + 2);
    expect(await d.stop()).toBe(0);
  }, 60_000);
}
