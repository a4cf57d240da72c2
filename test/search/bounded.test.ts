/**
 * Search's in-memory models are bounded by bytes (`[search] model_bytes`, search/catalog.ts):
 * the least recently used repositories' models are dropped and read again from meta.db when
 * a query needs them. The answers must be the same whatever the bound: every query kind is
 * asked of one store with a bound that holds everything and with one that holds almost
 * nothing, and the answers compared whole. The bound itself is checked on the catalog.
 * (The whole search suite, access matrix included, also runs under any bound with
 * BERTH_SEARCH_MODEL_BYTES=N.)
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { createTestRegistry } from "../helpers/registry";
import { tempDir } from "../helpers/daemon";
import { fill, gql, pushConfigured } from "./fixture";
import { Catalog, type CatalogSource, modelBytes } from "../../daemon/search/catalog";
import { openDatabase } from "../../daemon/platform/sqlite";
import { imageManifest, sha256 } from "../helpers/registry";
import { createSearchHandler } from "../../daemon/search/handler";
import { silentLogger } from "../../daemon/log";
import { RegistryError } from "../../daemon/oci/errors";
import { waitFor } from "../helpers/clients";

const PAGE = "Page { TotalCount ItemCount }";
const IMAGE = "RepoName Tag Digest LastUpdated Size Vendor Manifests { Digest Platform { Os Arch } Size }";
const REPO = "Name LastUpdated Size Platforms { Os Arch } NewestImage { Tag Digest }";

function queries(f: Awaited<ReturnType<typeof fill>>): string[] {
  return [
    `{ GlobalSearch(query: "lib") { ${PAGE} Repos { ${REPO} } } }`,
    `{ GlobalSearch(query: "", requestedPage: {limit: 3, offset: 1, sortBy: UPDATE_TIME}) { ${PAGE} Repos { ${REPO} } } }`,
    `{ GlobalSearch(query: "", requestedPage: {sortBy: ALPHABETIC_DSC}, filter: {Arch: ["arm64"]}) { ${PAGE} Repos { ${REPO} } } }`,
    `{ GlobalSearch(query: "lib/multi:a") { ${PAGE} Images { ${IMAGE} } } }`,
    `{ GlobalSearch(query: ":1", requestedPage: {sortBy: UPDATE_TIME}) { ${PAGE} Images { ${IMAGE} } } }`,
    `{ GlobalSearch(query: "${f.base.digest}") { ${PAGE} Images { ${IMAGE} } } }`,
    `{ ImageList(repo: "") { ${PAGE} Results { ${IMAGE} } } }`,
    `{ ImageList(repo: "lib/multi", requestedPage: {limit: 2, sortBy: ALPHABETIC_ASC}) { ${PAGE} Results { ${IMAGE} } } }`,
    `{ ImageListForDigest(id: "${f.base.layers[0] ? sha256(f.base.layers[0]) : ""}") { ${PAGE} Results { ${IMAGE} } } }`,
    `{ ExpandedRepoInfo(repo: "lib/app") { Summary { ${REPO} } Images { ${IMAGE} } } }`,
    `{ RepoListWithNewestImage(requestedPage: {sortBy: UPDATE_TIME}) { ${PAGE} Results { ${REPO} } } }`,
    `{ Image(image: "lib/multi:latest") { ${IMAGE} } }`,
    `{ DerivedImageList(image: "lib/base:1.0") { ${PAGE} Results { ${IMAGE} } } }`,
    `{ BaseImageList(image: "lib/app:2.0") { ${PAGE} Results { ${IMAGE} } } }`,
    `{ Referrers(repo: "lib/app", digest: "${f.app.digest}") { Digest ArtifactType } }`,
  ];
}

describe("search's in-memory models bounded by bytes", () => {
  test("every query kind answers the same with a bound that holds almost nothing", async () => {
    using dir = tempDir("berth-search-bound-");
    const answers: string[][] = [];
    // two stores filled alike (same bytes, same digests), one per bound
    for (const modelBytes of [64 * 1024 * 1024, 1]) {
      await using r = await createTestRegistry({ root: join(dir.path, String(modelBytes)), search: { modelBytes } });
      const f = await fill(r);
      // more repositories than a tiny bound holds
      for (let i = 0; i < 12; i++) await pushConfigured(r, `fleet/r${i}`, `v${i % 3}`, { created: `2024-06-${String(i + 1).padStart(2, "0")}T00:00:00Z`, arch: i % 2 ? "arm64" : "amd64", layers: ["base layer one", `fleet ${i}`] });
      const out: string[] = [];
      for (const q of queries(f)) {
        const { status, body } = await gql(r, q);
        expect(`${status} ${body.errors ? JSON.stringify(body.errors) : ""}`).toBe("200 ");
        out.push(JSON.stringify(body.data));
      }
      // a change after the models were read: pushed, then asked again
      await pushConfigured(r, "fleet/late", "v9", { created: "2024-07-01T00:00:00Z", layers: ["base layer one", "late"] });
      await pushConfigured(r, "fleet/r3", "v9", { created: "2024-07-02T00:00:00Z", layers: ["base layer one", "late"] });
      for (const q of [`{ GlobalSearch(query: "fleet") { ${PAGE} Repos { ${REPO} } } }`, `{ ImageList(repo: "fleet/r3") { ${PAGE} Results { ${IMAGE} } } }`]) {
        out.push(JSON.stringify((await gql(r, q)).body.data));
      }
      answers.push(out);
    }
    expect(answers[1]).toEqual(answers[0]!);
    expect(answers[0]!.join("").length).toBeGreaterThan(5000); // the queries found things
  }, 30_000);

  test("the catalog keeps at most its budget of models, least recently used dropped, and reads the rest back", async () => {
    const db = openDatabase(":memory:");
    const repos = Array.from({ length: 40 }, (_, i) => `r${String(i).padStart(2, "0")}`);
    const bytes = new Map<string, string>();
    const manifests = new Map<string, { digest: string; mediaType: string; size: number }[]>();
    for (const repo of repos) {
      const config = JSON.stringify({ architecture: "arm64", os: "linux", created: "2024-01-01T00:00:00Z", repo });
      const m = imageManifest(config, [`layer of ${repo}`]);
      bytes.set(sha256(config), config);
      bytes.set(sha256(m), m);
      manifests.set(repo, [{ digest: sha256(m), mediaType: "application/vnd.oci.image.manifest.v1+json", size: m.length }]);
    }
    const source: CatalogSource = {
      repoStamps: () => repos.map((name) => ({ name, stamp: "1" })),
      manifestsOf: (repo) => manifests.get(repo) ?? [],
      tags: async (repo) => new Map([["v1", manifests.get(repo)![0]!.digest]]),
      read: async (_repo, digest) => new TextEncoder().encode(bytes.get(digest)),
    };
    const probe = new Catalog(db, source, { maxManifestBytes: 1 << 20, maxConfigBytes: 1 << 20, modelBytes: 1 << 30 });
    await probe.refresh();
    const one = modelBytes(probe.repo("r00")!);
    const budget = one * 10;
    const catalog = new Catalog(db, source, { maxManifestBytes: 1 << 20, maxConfigBytes: 1 << 20, modelBytes: budget });
    await catalog.refresh();
    const names = [...catalog.repositories()].map((r) => r.name);
    expect(names).toEqual(repos); // every repository listed, read back from the tables
    const held = catalog.memory();
    expect(held.bytes).toBeLessThanOrEqual(budget);
    expect(held.repositories).toBe(10);
    // a scan keeps the models that fit (the first ten) and reads the rest each time; one asked for by name is cached, the least recent dropped
    expect(catalog.repo("r00")!.manifests.get(manifests.get("r00")![0]!.digest)!.arch).toBe("arm64");
    expect(catalog.memory().bytes).toBeLessThanOrEqual(budget);
    db.close();
  });

  test("a first search whose index build outlasts the query deadline is a retryable 503; the build goes on and a retry is answered", async () => {
    const db = openDatabase(":memory:");
    const config = JSON.stringify({ architecture: "arm64", os: "linux", created: "2024-01-01T00:00:00Z" });
    const m = imageManifest(config, ["layer"]);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const source: CatalogSource = {
      repoStamps: () => [{ name: "slow/app", stamp: "1" }],
      manifestsOf: () => [{ digest: sha256(m), mediaType: "application/vnd.oci.image.manifest.v1+json", size: m.length }],
      tags: async () => new Map([["v1", sha256(m)]]),
      read: async (_repo, digest) => {
        await gate; // the store's reads take as long as the test says
        return new TextEncoder().encode(digest === sha256(m) ? m : config);
      },
    };
    const handler = createSearchHandler({ db, source, referrers: () => [], usage: { get: () => undefined }, maxManifestBytes: 1 << 20, maxResults: 100, maxQueryBytes: 16 * 1024, limits: { timeoutMs: 50 }, log: silentLogger });
    const ask = () => handler(new Request("http://registry.test/v2/_zot/ext/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query: '{ GlobalSearch(query: "slow") { Repos { Name } } }' }) }), undefined);
    const refused = await ask().then(() => undefined, (err: unknown) => err);
    expect(refused).toBeInstanceOf(RegistryError);
    expect((refused as RegistryError).code).toBe("UNAVAILABLE");
    expect((refused as RegistryError).retryAfter).toBeGreaterThan(0);
    expect((refused as RegistryError).detail).toContain("still indexing");
    open();
    let answer: unknown;
    await waitFor("the build to finish", async () => {
      answer = await ask().then((res) => res.json(), () => undefined);
      return answer !== undefined;
    });
    expect(answer).toEqual({ data: { GlobalSearch: { Repos: [{ Name: "slow/app" }] } } });
    db.close();
  });
});
