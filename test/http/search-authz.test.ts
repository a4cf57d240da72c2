/**
 * The authorization matrix extended to the search API (issue 12: "nobody finds what they
 * may not pull"). The two repositories of the matrix (auth-matrix-table.ts), plus an image
 * in `secret/app` built on the shared image's layer, so derived images, digest searches and
 * CVE lists have something to leak. For each identity, every query that does not name the
 * secret repository must return exactly the visible repositories' results (names, tags,
 * totals in PageInfo), and every query that names it must answer exactly as for a
 * repository that does not exist. No response to an identity that may not pull `secret/app`
 * may carry its name, tags, digests or bytes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setupAuth } from "../../daemon/auth/setup";
import { silentLogger } from "../../daemon/log";
import { type TestRegistry, createTestRegistry, sha256 } from "../helpers/registry";
import { basic, configOf, writeHtpasswd } from "../helpers/auth";
import { ResponseLog, SECRET, SHARED, seedRepositories } from "./auth-matrix-table";
import { pushConfigured } from "../search/fixture";

const IDENTITIES: Record<string, { headers: Record<string, string>; status: number; sees: string[] }> = {
  anonymous: { headers: {}, status: 200, sees: [SHARED] },
  viewer: { headers: basic("viewer", "viewer-pw"), status: 200, sees: [SHARED] },
  dev: { headers: basic("dev", "dev-pw"), status: 200, sees: [SHARED] },
  ci: { headers: basic("ci", "ci-pw"), status: 200, sees: [SECRET, SHARED] },
  wrong: { headers: basic("ci", "wrong-pw"), status: 401, sees: [] },
};

const SHARED_LAYER = "layer bytes of SHARED-CONTENT";
const CVE = "CVE-2099-0001";
let dir: string;
let r: TestRegistry;
let markers: string[];
let derivedDigest: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "berth-search-matrix-"));
  const root = join(dir, "root");
  const seeded = await seedRepositories(root);
  {
    await using seed = await createTestRegistry({ root });
    const derived = await pushConfigured(seed, SECRET, "derived-tag", { created: "2025-01-01T00:00:00Z", layers: [SHARED_LAYER, "SECRET-EXTRA-LAYER"] });
    derivedDigest = derived.digest;
  }
  markers = [...seeded.secretMarkers, "derived-tag", "SECRET-EXTRA-LAYER", derivedDigest.slice(7), sha256("SECRET-EXTRA-LAYER").slice(7)];
  const htpasswd = await writeHtpasswd(dir, { viewer: "viewer-pw", dev: "dev-pw", ci: "ci-pw" });
  const config = configOf(`
[auth]
htpasswd = "${htpasswd}"
[[access]]
repos = ["**"]
anonymous = ["pull"]
users = { viewer = ["pull"], dev = ["*"], ci = ["pull", "push", "delete"] }
[[access]]
repos = ["secret/**"]
users = { ci = ["pull", "push", "delete"] }
`);
  const everyImage = { vulnSummaryOf: () => ({ maxSeverity: "HIGH" as const, count: 1 }), cvesOf: () => [{ id: CVE, title: "t", description: "d", severity: "HIGH" as const, packages: [] }] };
  r = await createTestRegistry({ root, auth: setupAuth(config, silentLogger, undefined)!, search: { vulns: everyImage } });
});
afterAll(async () => {
  await r[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

const log = new ResponseLog();

/** The JSON body of a search answer, as far as these tests read it. */
interface SearchBody {
  data: { [query: string]: unknown; Image?: { Digest: string } | null };
  errors?: { message: string }[];
}

async function ask(identity: string, query: string): Promise<{ status: number; body: SearchBody | undefined; text: string }> {
  const res = await r.handle(new Request("http://registry.test/v2/_zot/ext/search", {
    method: "POST",
    headers: { "Content-Type": "application/json", ...IDENTITIES[identity]!.headers },
    body: JSON.stringify({ query }),
  }));
  const text = await res.clone().text();
  await log.record(identity, query, res);
  return { status: res.status, body: res.status === 200 ? (JSON.parse(text) as SearchBody) : undefined, text };
}

/** Queries that do not name the secret repository, and what each identity must get from each (from `sees`). */
const LISTINGS: { name: string; query: () => string; expect: (sees: string[]) => unknown }[] = [
  { name: "GlobalSearch of every name", query: () => `{ GlobalSearch(query: "") { Page { TotalCount } Repos { Name } } }`, expect: (s) => ({ Page: { TotalCount: s.length }, Repos: s.map((Name) => ({ Name })) }) },
  { name: "GlobalSearch of a shared word", query: () => `{ GlobalSearch(query: "app") { Page { TotalCount } Repos { Name } } }`, expect: (s) => ({ Page: { TotalCount: s.length }, Repos: s.map((Name) => ({ Name })) }) },
  { name: "GlobalSearch of tags", query: () => `{ GlobalSearch(query: ":tag") { Page { TotalCount } Images { RepoName Tag } } }`, expect: (s) => imagesOf(s) },
  { name: "GlobalSearch of a digest prefix", query: () => `{ GlobalSearch(query: "sha256:") { Page { TotalCount } Images { RepoName Tag } } }`, expect: (s) => imagesOf(s) },
  { name: "ImageList of every repository", query: () => `{ ImageList(repo: "") { Page { TotalCount } Results { RepoName Tag } } }`, expect: (s) => resultsOf(s) },
  { name: "RepoListWithNewestImage", query: () => `{ RepoListWithNewestImage { Page { TotalCount } Results { Name } } }`, expect: (s) => ({ Page: { TotalCount: s.length }, Results: s.map((Name) => ({ Name })) }) },
  { name: "ImageListForDigest of the shared layer", query: () => `{ ImageListForDigest(id: "${sha256(SHARED_LAYER)}") { Page { TotalCount } Results { RepoName Tag } } }`, expect: (s) => resultsOf(s, (repo, tag) => repo === SHARED || tag === "derived-tag") },
  { name: "DerivedImageList of the shared image", query: () => `{ DerivedImageList(image: "${SHARED}:shared-tag") { Page { TotalCount } Results { RepoName Tag } } }`, expect: (s) => resultsOf(s, (repo, tag) => tag === "derived-tag") },
  { name: "ImageListForCVE", query: () => `{ ImageListForCVE(id: "${CVE}") { Page { TotalCount } Results { RepoName Tag } } }`, expect: (s) => resultsOf(s) },
];

const TAGS: [string, string][] = [[SECRET, "classified-tag"], [SECRET, "derived-tag"], [SHARED, "shared-tag"]];
function tagsOf(sees: string[], keep: (repo: string, tag: string) => boolean = () => true) {
  return TAGS.filter(([repo, tag]) => sees.includes(repo) && keep(repo, tag)).map(([RepoName, Tag]) => ({ RepoName, Tag }));
}
function imagesOf(sees: string[]) {
  const images = tagsOf(sees);
  return { Page: { TotalCount: images.length }, Images: images };
}
function resultsOf(sees: string[], keep?: (repo: string, tag: string) => boolean) {
  const results = tagsOf(sees, keep);
  return { Page: { TotalCount: results.length }, Results: results };
}

/** Queries naming a repository; each must answer for the secret one exactly as for a repository that does not exist. */
const NAMED: ((repo: string) => string)[] = [
  (repo) => `{ Image(image: "${repo}:classified-tag") { RepoName Tag Digest } }`,
  (repo) => `{ ExpandedRepoInfo(repo: "${repo}") { Images { Tag Digest } Summary { Name Size } } }`,
  (repo) => `{ ImageList(repo: "${repo}") { Page { TotalCount ItemCount } Results { Tag } } }`,
  (repo) => `{ Referrers(repo: "${repo}", digest: "${sha256("x")}") { Digest } }`,
  (repo) => `{ CVEListForImage(image: "${repo}:classified-tag") { Tag Page { TotalCount } CVEList { Id } } }`,
  (repo) => `{ BaseImageList(image: "${repo}:derived-tag") { Page { TotalCount } Results { Tag } } }`,
  (repo) => `{ DerivedImageList(image: "${repo}:classified-tag") { Page { TotalCount } Results { Tag } } }`,
  (repo) => `{ ImageListWithCVEFixed(id: "CVE-0", image: "${repo}") { Page { TotalCount } Results { Tag } } }`,
  (repo) => `{ GlobalSearch(query: "${repo}:") { Page { TotalCount } Images { Tag } } }`,
];

describe.each(Object.keys(IDENTITIES))("%s", (identity) => {
  const { sees, status } = IDENTITIES[identity]!;
  for (const l of LISTINGS) {
    test(`${l.name}: only what the identity may pull`, async () => {
      const res = await ask(identity, l.query());
      expect(res.status).toBe(status);
      if (status !== 200) return;
      expect(Object.values(res.body?.data ?? {})[0]).toEqual(l.expect(sees));
    });
  }

  test("queries naming the secret repository answer as for one that does not exist (or show it, to ci)", async () => {
    for (const named of NAMED) {
      const secret = await ask(identity, named(SECRET));
      const missing = await ask(identity, named("nosuch/app"));
      expect(secret.status).toBe(status);
      if (sees.includes(SECRET) || status !== 200) continue;
      expect(secret.text.replaceAll(SECRET, "nosuch/app")).toBe(missing.text);
    }
  });

  test("ci sees the secret repository's images through the same queries (the matrix is not vacuous)", async () => {
    const res = await ask(identity, `{ Image(image: "${SECRET}:derived-tag") { Digest } }`);
    if (sees.includes(SECRET)) expect(res.body?.data.Image?.Digest).toBe(derivedDigest);
    else if (status === 200) expect(res.body?.errors?.[0]?.message).toBe(`image "${SECRET}:derived-tag" is not known`);
  });

  test("no name, tag, digest or byte of the secret repository reaches an identity that may not pull it", () => {
    if (sees.includes(SECRET)) return;
    expect(log.count(identity)).toBeGreaterThan(LISTINGS.length);
    // queries naming a repository echo what the caller typed (checked above: equal to a missing repository's answer)
    const named = new Set([...NAMED.map((q) => q(SECRET)), ...NAMED.map((q) => q("nosuch/app"))]);
    log.expectNoLeak(identity, markers, (label) => !named.has(label) && !label.includes(SECRET));
  });
});
