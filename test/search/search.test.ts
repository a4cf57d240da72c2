/**
 * The search API against a store filled through the real /v2 API (socketless handler):
 * each query's answer is checked against the shape of zot's documented examples
 * (pkg/extensions/search/search.md: field names, nesting, strings for sizes, RFC 3339
 * times) and against the content pushed: platforms of an index, derived and base images by
 * shared layers, referrers, digests of layers, pagination and sorting, filters, and the
 * providers for signatures and vulnerabilities.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type TestRegistry, createTestRegistry, sha256 } from "../helpers/registry";
import { type Filled, fill, gql, pushConfigured } from "./fixture";
import type { CveRecord } from "../../daemon/search/providers";
import { Database } from "bun:sqlite";
import { rmSync } from "node:fs";
import { join } from "node:path";

let r: TestRegistry;
let f: Filled;
const signed = new Set<string>();
const cves = new Map<string, CveRecord[]>();

beforeAll(async () => {
  r = await createTestRegistry({
    search: {
      trust: { trustOf: (_repo, digest) => (signed.has(digest) ? { isSigned: true, signatures: [{ tool: "cosign", isTrusted: true, author: "ci@example" }] } : { isSigned: false, signatures: [] }) },
      vulns: {
        vulnSummaryOf: (_repo, digest) => {
          const list = cves.get(digest);
          return list && { maxSeverity: list.some((c) => c.severity === "HIGH") ? "HIGH" : "LOW", count: list.length, bySeverity: { HIGH: list.filter((c) => c.severity === "HIGH").length, LOW: list.filter((c) => c.severity === "LOW").length } };
        },
        cvesOf: (_repo, digest) => cves.get(digest),
      },
    },
  });
  f = await fill(r);
  signed.add(f.app.digest);
  const cve = (id: string, severity: "HIGH" | "LOW"): CveRecord => ({ id, title: `${id} title`, description: "d", severity, packages: [{ name: "openssl", installedVersion: "3.0.8", fixedVersion: "3.0.12" }] });
  cves.set(f.base.digest, [cve("CVE-2023-0001", "HIGH"), cve("CVE-2023-0002", "LOW")]);
  cves.set(f.app.digest, [cve("CVE-2023-0002", "LOW")]);
});
afterAll(() => r[Symbol.asyncDispose]());

const data = async (query: string, variables?: Record<string, unknown>) => {
  const { status, body } = await gql(r, query, variables);
  if (status !== 200 || body.errors) throw new Error(`${status} ${JSON.stringify(body)}`);
  return body.data!;
};
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

describe("endpoints", () => {
  test("the search module is loaded only by the first search request", async () => {
    await using fresh = await createTestRegistry({ search: {} });
    expect((await fresh.call("GET", "/v2/_catalog")).status).toBe(200);
    expect(fresh.search!.loaded()).toBe(false);
    expect((await gql(fresh, "{ ImageList(repo: \"\") { Page { TotalCount } } }")).body.data).toEqual({ ImageList: { Page: { TotalCount: 0 } } });
    expect(fresh.search!.loaded()).toBe(true);
  });

  test("/v2/_oci/ext/discover lists the _zot extension with the search endpoint", async () => {
    const res = await r.call("GET", "/v2/_oci/ext/discover");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ extensions: [{ name: "_zot", url: expect.stringContaining("_zot.md"), description: "zot registry extensions", endpoints: ["/v2/_zot/ext/search"] }] });
  });

  test("switched off: discover lists nothing and search is 404 in the OCI error format", async () => {
    await using off = await createTestRegistry();
    expect(await (await off.call("GET", "/v2/_oci/ext/discover")).json()).toEqual({ extensions: [] });
    const res = await off.call("POST", "/v2/_zot/ext/search", { body: "{}" });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { errors: { code: string; detail: string }[] }).errors[0]).toMatchObject({ code: "UNSUPPORTED", detail: expect.stringContaining("[search] enabled") });
  });

  test("variables, named operations, fragments and aliases", async () => {
    const query = `query A($repo: String!) { x: ImageList(repo: $repo) { Results { ...S } } } query B { ImageList(repo: "lib/app") { Results { Tag } } } fragment S on ImageSummary { RepoName Tag }`;
    const res = await r.handle(new Request("http://registry.test/v2/_zot/ext/search", { method: "POST", body: JSON.stringify({ query, variables: { repo: "lib/base" }, operationName: "A" }) }));
    expect(await res.json()).toEqual({ data: { x: { Results: [{ RepoName: "lib/base", Tag: "1.0" }] } } });
    const none = await gql(r, query, { repo: "lib/base" });
    expect(none.status).toBe(422);
    expect(none.body.errors![0]!.message).toBe("the query has several operations; name one in operationName");
  });

  test("GET with ?query= answers as POST does", async () => {
    const q = "{ ImageList(repo: \"lib/base\") { Results { RepoName Tag } } }";
    const res = await r.call("GET", `/v2/_zot/ext/search?query=${encodeURIComponent(q)}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: { ImageList: { Results: [{ RepoName: "lib/base", Tag: "1.0" }] } } });
  });

  test.each([
    ["another method", "PUT", undefined, "{}", 405, "UNSUPPORTED"],
    ["a body that is not JSON", "POST", "application/json", "not json", 400, "UNSUPPORTED"],
    ["a JSON array", "POST", "application/json", "[1]", 400, "UNSUPPORTED"],
    ["no query", "POST", "application/json", '{"variables":{}}', 400, "UNSUPPORTED"],
    ["a body over max_query_bytes", "POST", "application/json", JSON.stringify({ query: `{ ImageList(repo: "${"a".repeat(20_000)}") { Page { TotalCount } } }` }), 413, "SIZE_INVALID"],
  ])("%s: OCI error", async (_label, method, type, body, status, code) => {
    const res = await r.call(method, "/v2/_zot/ext/search", { headers: type ? { "Content-Type": type } : {}, body });
    expect(res.status).toBe(status);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe(code);
  });
});

describe("the index", () => {
  test("answers the same after a restart (persisted) and after its tables are dropped (rebuilt from meta and blobs)", async () => {
    const q = `{ ImageList(repo: "") { Page { TotalCount } Results { RepoName Tag Digest Size LastUpdated Manifests { Platform { Os Arch } Layers { Digest } } } } }`;
    const first = await createTestRegistry({ search: {} });
    await fill(first);
    const before = (await gql(first, q)).body;
    expect(before.data!.ImageList.Page.TotalCount).toBe(6);
    const again = await first.reopen();
    expect((await gql(again, q)).body).toEqual(before);
    await again[Symbol.asyncDispose]();
    const db = new Database(join(first.root, ".berth", "meta.db"));
    db.exec("DROP TABLE search_manifests; DROP TABLE search_tags; DROP TABLE search_repos; DROP TABLE search_layers; DROP TABLE search_info;");
    db.close();
    await using rebuilt = await createTestRegistry({ root: first.root, search: {} });
    expect((await gql(rebuilt, q)).body).toEqual(before);
    rmSync(first.root, { recursive: true, force: true });
  });
});

describe("queries, in zot's shapes", () => {
  test("GlobalSearch NAME:TAG (zot's example: Page, Images with Manifests and Layers)", async () => {
    const d = await data(`{ GlobalSearch(query: "lib/base:1") { Page { ItemCount TotalCount } Images { RepoName Tag LastUpdated Manifests { Digest Layers { Size Digest } } } } }`);
    expect(d.GlobalSearch).toEqual({
      Page: { ItemCount: 1, TotalCount: 1 },
      Images: [{
        RepoName: "lib/base", Tag: "1.0", LastUpdated: "2024-01-01T00:00:00Z",
        Manifests: [{ Digest: f.base.digest, Layers: f.base.layers.map((l) => ({ Size: String(l.length), Digest: sha256(l) })) }],
      }],
    });
  });

  test("GlobalSearch of a name ranks repositories as zot does and pages them", async () => {
    const d = await data(`{ GlobalSearch(query: "multi") { Page { TotalCount ItemCount } Repos { Name Rank Platforms { Os Arch } NewestImage { Tag } } } }`);
    expect(d.GlobalSearch).toEqual({ Page: { TotalCount: 1, ItemCount: 1 }, Repos: [{ Name: "lib/multi", Rank: 1, Platforms: [{ Os: "linux", Arch: "amd64" }, { Os: "linux", Arch: "arm64" }], NewestImage: { Tag: "latest" } }] });
    const all = await data(`{ GlobalSearch(query: "", requestedPage: {limit: 2, offset: 1, sortBy: ALPHABETIC_DSC}) { Page { TotalCount ItemCount } Repos { Name } } }`);
    expect(all.GlobalSearch).toEqual({ Page: { TotalCount: 4, ItemCount: 2 }, Repos: [{ Name: "lib/multi" }, { Name: "lib/base" }] });
    const recent = await data(`{ GlobalSearch(query: "lib", requestedPage: {sortBy: UPDATE_TIME}) { Repos { Name LastUpdated } } }`);
    expect(recent.GlobalSearch.Repos.map((x: { Name: string }) => x.Name)).toEqual(["lib/app", "lib/multi", "lib/base"]);
  });

  test("GlobalSearch :TAG finds tags anywhere; a digest finds the images holding it", async () => {
    const tags = await data(`{ GlobalSearch(query: ":only") { Images { RepoName Tag } } }`);
    expect(tags.GlobalSearch.Images).toEqual([{ RepoName: "lib/multi", Tag: "amd64-only" }, { RepoName: "lib/multi", Tag: "arm64-only" }]);
    const byLayer = await data(`{ GlobalSearch(query: "${sha256("multi arm64")}") { Images { RepoName Tag Manifests { Digest } } } }`);
    expect(byLayer.GlobalSearch.Images).toEqual([
      { RepoName: "lib/multi", Tag: "arm64-only", Manifests: [{ Digest: f.arm.digest }] },
      { RepoName: "lib/multi", Tag: "latest", Manifests: [{ Digest: f.arm.digest }] },
    ]);
  });

  test("filters: Arch, Os and HasToBeSigned (the trust provider); IsStarred: true matches nothing", async () => {
    const arm = await data(`{ GlobalSearch(query: "lib", filter: {Arch: ["ARM64"]}) { Repos { Name } } }`);
    expect(arm.GlobalSearch.Repos).toEqual([{ Name: "lib/multi" }]);
    const win = await data(`{ GlobalSearch(query: "lib", filter: {Os: ["windows"]}) { Page { TotalCount } Repos { Name } } }`);
    expect(win.GlobalSearch).toEqual({ Page: { TotalCount: 0 }, Repos: [] });
    const sig = await data(`{ GlobalSearch(query: "lib", filter: {HasToBeSigned: true}) { Repos { Name NewestImage { IsSigned SignatureInfo { Tool IsTrusted Author } } } } }`);
    expect(sig.GlobalSearch.Repos).toEqual([{ Name: "lib/app", NewestImage: { IsSigned: true, SignatureInfo: [{ Tool: "cosign", IsTrusted: true, Author: "ci@example" }] } }]);
    const starred = await data(`{ GlobalSearch(query: "lib", filter: {IsStarred: true}) { Repos { Name } } }`);
    expect(starred.GlobalSearch.Repos).toEqual([]);
  });

  test("ImageList of an index: one ImageSummary with a ManifestSummary per platform, sizes as strings", async () => {
    const d = await data(`{ ImageList(repo: "lib/multi", requestedPage: {limit: 1, sortBy: UPDATE_TIME}) { Page { TotalCount ItemCount } Results { Tag Digest MediaType Size LastUpdated Manifests { Digest ConfigDigest Size LastUpdated Platform { Os Arch } History { Layer { Digest } HistoryDescription { CreatedBy EmptyLayer } } } } } }`);
    const arm = f.arm;
    const img = d.ImageList.Results[0];
    expect(d.ImageList.Page).toEqual({ TotalCount: 3, ItemCount: 1 });
    expect(img.Digest === f.index.digest || img.Digest === arm.digest).toBe(true); // both updated 2024-02-02
    const index = (await data(`{ Image(image: "lib/multi:latest") { Tag Digest MediaType Size Manifests { Digest ConfigDigest Platform { Os Arch } History { HistoryDescription { CreatedBy } } } } }`)).Image;
    const armSize = Buffer.byteLength(arm.manifest) + Buffer.byteLength(arm.config) + arm.layers[0]!.length;
    const amdSize = Buffer.byteLength(f.amd.manifest) + Buffer.byteLength(f.amd.config) + f.amd.layers[0]!.length;
    expect(index).toEqual({
      Tag: "latest", Digest: f.index.digest, MediaType: "application/vnd.oci.image.index.v1+json",
      Size: String(Buffer.byteLength(f.index.body) + armSize + amdSize),
      Manifests: [
        { Digest: f.amd.digest, ConfigDigest: sha256(f.amd.config), Platform: { Os: "linux", Arch: "amd64" }, History: [{ HistoryDescription: { CreatedBy: "RUN step 0 multi amd64" } }] },
        { Digest: arm.digest, ConfigDigest: sha256(arm.config), Platform: { Os: "linux", Arch: "arm64" }, History: [{ HistoryDescription: { CreatedBy: "RUN step 0 multi arm64" } }] },
      ],
    });
  });

  test("Image: annotations, referrers, signatures and vulnerabilities of one image", async () => {
    const d = await data(`{ Image(image: "lib/app:2.0") { RepoName Tag Title Description Licenses Vendor IsSigned IsDeletable ArtifactType
      Referrers { MediaType ArtifactType Size Digest Annotations { Key Value } } Vulnerabilities { MaxSeverity Count LowCount HighCount } } }`);
    expect(d.Image).toEqual({
      RepoName: "lib/app", Tag: "2.0", Title: "The app", Description: "An app on base", Licenses: "MIT", Vendor: "", IsSigned: true, IsDeletable: true,
      ArtifactType: "application/vnd.oci.image.config.v1+json",
      Referrers: [{ MediaType: "application/vnd.oci.image.manifest.v1+json", ArtifactType: "application/spdx+json", Size: Buffer.byteLength(f.sbom.body), Digest: f.sbom.digest, Annotations: [{ Key: "org.example.kind", Value: "sbom" }] }],
      Vulnerabilities: { MaxSeverity: "LOW", Count: 1, LowCount: 1, HighCount: 0 },
    });
    const vendor = await data(`{ Image(image: "lib/base:1.0") { Vendor Vulnerabilities { MaxSeverity Count } } }`);
    expect(vendor.Image).toEqual({ Vendor: "Base Corp", Vulnerabilities: { MaxSeverity: "HIGH", Count: 2 } });
    const unknown = await gql(r, `{ Image(image: "lib/base:9.9") { Tag } }`);
    expect(unknown.body.errors![0]!.message).toBe('image "lib/base:9.9" is not known');
  });

  test("Referrers by type, ImageListForDigest, ExpandedRepoInfo and RepoListWithNewestImage", async () => {
    const refs = await data(`{ a: Referrers(repo: "lib/app", digest: "${f.app.digest}", type: ["application/spdx+json"]) { Digest } b: Referrers(repo: "lib/app", digest: "${f.app.digest}", type: ["other"]) { Digest } }`);
    expect(refs).toEqual({ a: [{ Digest: f.sbom.digest }], b: [] });
    const byLayer = await data(`{ ImageListForDigest(id: "${sha256("base layer two")}") { Page { TotalCount } Results { RepoName Tag } } }`);
    expect(byLayer.ImageListForDigest).toEqual({ Page: { TotalCount: 3 }, Results: [{ RepoName: "lib/app", Tag: "2.0" }, { RepoName: "lib/base", Tag: "1.0" }, { RepoName: "secret/db", Tag: "1" }] });
    const expanded = await data(`{ ExpandedRepoInfo(repo: "lib/multi") { Images { Tag } Summary { Name Size Platforms { Arch } NewestImage { Tag } DownloadCount StarCount IsStarred IsBookmarked } } }`);
    expect(expanded.ExpandedRepoInfo.Images).toEqual([{ Tag: "amd64-only" }, { Tag: "arm64-only" }, { Tag: "latest" }]);
    expect(expanded.ExpandedRepoInfo.Summary).toMatchObject({ Name: "lib/multi", Platforms: [{ Arch: "amd64" }, { Arch: "arm64" }], NewestImage: { Tag: "latest" }, StarCount: 0, IsStarred: false, IsBookmarked: false });
    const list = await data(`{ RepoListWithNewestImage(requestedPage: {limit: 10, sortBy: ALPHABETIC_ASC}) { Page { TotalCount ItemCount } Results { Name LastUpdated Size Vendors NewestImage { Tag LastUpdated } } } }`);
    expect(list.RepoListWithNewestImage.Page).toEqual({ TotalCount: 4, ItemCount: 4 });
    expect(list.RepoListWithNewestImage.Results[1]).toMatchObject({ Name: "lib/base", LastUpdated: "2024-01-01T00:00:00Z", Vendors: ["Base Corp"], NewestImage: { Tag: "1.0", LastUpdated: "2024-01-01T00:00:00Z" } });
    for (const x of list.RepoListWithNewestImage.Results) expect(x.LastUpdated).toMatch(RFC3339);
  });

  test("a partial digest (scanned) finds what the whole one (looked up) finds", async () => {
    const whole = sha256("base layer two");
    const q = (id: string) => `{ ImageListForDigest(id: "${id}") { Results { RepoName Tag } } }`;
    const full = await data(q(whole));
    expect(full.ImageListForDigest.Results.length).toBe(3);
    expect(await data(q(whole.slice(0, 30)))).toEqual(full);
    expect(await data(q(whole.slice(7, 40).toUpperCase()))).toEqual(full);
  });

  test("DerivedImageList and BaseImageList by shared leading layers", async () => {
    const d = await data(`{ DerivedImageList(image: "lib/base:1.0") { Page { TotalCount } Results { RepoName Tag } } BaseImageList(image: "lib/app:2.0") { Results { RepoName Tag } } }`);
    expect(d.DerivedImageList).toEqual({ Page: { TotalCount: 2 }, Results: [{ RepoName: "lib/app", Tag: "2.0" }, { RepoName: "secret/db", Tag: "1" }] });
    expect(d.BaseImageList).toEqual({ Results: [{ RepoName: "lib/base", Tag: "1.0" }] });
    const none = await data(`{ BaseImageList(image: "lib/base:1.0") { Results { Tag } } }`);
    expect(none.BaseImageList.Results).toEqual([]);
  });

  test("CVE queries through the vulnerability provider", async () => {
    const list = await data(`{ CVEListForImage(image: "lib/base:1.0", requestedPage: {limit: 1}) { Tag Page { TotalCount ItemCount } CVEList { Id Severity PackageList { Name InstalledVersion FixedVersion } } Summary { MaxSeverity Count } } }`);
    expect(list.CVEListForImage).toEqual({
      Tag: "1.0", Page: { TotalCount: 2, ItemCount: 1 },
      CVEList: [{ Id: "CVE-2023-0001", Severity: "HIGH", PackageList: [{ Name: "openssl", InstalledVersion: "3.0.8", FixedVersion: "3.0.12" }] }],
      Summary: { MaxSeverity: "HIGH", Count: 2 },
    });
    const affected = await data(`{ ImageListForCVE(id: "CVE-2023-0002") { Results { RepoName Tag } } }`);
    expect(affected.ImageListForCVE.Results).toEqual([{ RepoName: "lib/app", Tag: "2.0" }, { RepoName: "lib/base", Tag: "1.0" }]);
    const fixed = await data(`{ a: ImageListWithCVEFixed(id: "CVE-2023-0001", image: "lib/app") { Results { Tag } } b: ImageListWithCVEFixed(id: "CVE-2023-0001", image: "lib/base") { Results { Tag } } }`);
    expect(fixed).toEqual({ a: { Results: [{ Tag: "2.0" }] }, b: { Results: [] } });
  });

  test("pulls count as DownloadCount; a new tag and a deleted tag show at the next query", async () => {
    for (let i = 0; i < 3; i++) expect((await r.call("GET", "/v2/lib/base/manifests/1.0")).status).toBe(200);
    const d = await data(`{ Image(image: "lib/base:1.0") { DownloadCount LastPullTimestamp PushTimestamp } }`);
    expect(d.Image.DownloadCount).toBe(3);
    expect(d.Image.LastPullTimestamp).toMatch(/^\d{4}-/);
    expect(d.Image.PushTimestamp).toMatch(/^\d{4}-/);
    await pushConfigured(r, "lib/base", "1.1", { created: "2024-06-01T00:00:00Z", layers: ["base layer one", "base layer three"] });
    expect((await data(`{ ImageList(repo: "lib/base") { Results { Tag } } }`)).ImageList.Results).toEqual([{ Tag: "1.0" }, { Tag: "1.1" }]);
    expect((await r.call("DELETE", "/v2/lib/base/manifests/1.1")).status).toBe(202);
    expect((await data(`{ ImageList(repo: "lib/base") { Results { Tag } } }`)).ImageList.Results).toEqual([{ Tag: "1.0" }]);
  });

  test("bad input: negative limits, unknown sort for images, malformed search text", async () => {
    for (const [q, message] of [
      [`{ ImageList(repo: "", requestedPage: {limit: -1}) { Page { TotalCount } } }`, "requested page limit parameter can't be negative"],
      [`{ ImageList(repo: "", requestedPage: {offset: -1}) { Page { TotalCount } } }`, "requested page offset parameter can't be negative"],
      [`{ ImageList(repo: "", requestedPage: {sortBy: STARS}) { Page { TotalCount } } }`, "sorting images by 'STARS' is not supported"],
      [`{ GlobalSearch(query: ":") { Page { TotalCount } } }`, '":" is not a search query: use NAME, NAME:TAG, :TAG or a digest'],
    ] as const) {
      const res = await gql(r, q);
      expect(res.status).toBe(200);
      expect(res.body.errors?.[0]?.message).toBe(message);
    }
  });
});
