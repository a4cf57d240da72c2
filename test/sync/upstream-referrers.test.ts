/**
 * Referrers from upstreams that have the referrers API, and upstreams that answer it badly
 * (issue 15, killing mutants that survived the sync tests, which only had docker-registry
 * 2.8 and its fallback tag). A scripted fake upstream serves one image with a signature in
 * four repositories: one lists the signature through the referrers API (next to entries with
 * unusable digests, which must be skipped), one answers the referrers API with another
 * content type, one has no referrers API (404), both of which must fall back to the
 * `sha256-<hex>` tag; and one whose tag serves bytes that are not a manifest. A scheduled
 * sync must mirror the image and its signature from the first three, fail the fourth with
 * a log line saying why, and store nothing of it. A fifth repository lists its tags over
 * three pages (Link rel="next", as distribution paginates): every tag is mirrored.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { syncView, waitFor } from "../helpers/clients";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fakeupstream";

const sha = (b: string | Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const INDEX = "application/vnd.oci.image.index.v1+json";
const EMPTY = "application/vnd.oci.empty.v1+json";

const config = JSON.stringify({ architecture: "amd64", os: "linux" });
const layer = "the image's one layer";
const manifest = JSON.stringify({
  schemaVersion: 2,
  mediaType: MANIFEST,
  config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length },
  layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha(layer), size: layer.length }],
});
const sig = JSON.stringify({
  schemaVersion: 2,
  mediaType: MANIFEST,
  artifactType: "application/vnd.example.sig",
  config: { mediaType: EMPTY, digest: sha("{}"), size: 2 },
  layers: [{ mediaType: EMPTY, digest: sha("{}"), size: 2 }],
  subject: { mediaType: MANIFEST, digest: sha(manifest), size: manifest.length },
});
const sigDesc = { mediaType: MANIFEST, digest: sha(sig), size: sig.length, artifactType: "application/vnd.example.sig" };
const fallbackTag = `sha256-${sha(manifest).slice(7)}`;
const fallback = JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [sigDesc] });
const REPOS = ["api", "othertype", "noapi", "garbage", "paged"];
/** Tags of lib/paged, one per page. */
const PAGES = ["p1", "p2", "p3"];

let fake: FakeUpstream;
let d: Daemon;
beforeAll(async () => {
  fake = startFakeUpstream((_req, path) => {
    const m = /^\/v2\/lib\/(\w+)\/(manifests|blobs|tags|referrers)\/(.+)$/.exec(path);
    if (!m || !REPOS.includes(m[1]!)) return undefined;
    const [, repo, kind, ref] = m as unknown as [string, string, string, string];
    if (kind === "tags" && repo === "paged") {
      const last = new URL(_req.url).searchParams.get("last");
      const i = last === null ? 0 : PAGES.indexOf(last) + 1;
      const next = i + 1 < PAGES.length ? { link: `</v2/lib/paged/tags/list?n=1000&last=${PAGES[i]}>; rel="next"` } : undefined;
      return Response.json({ name: "lib/paged", tags: [PAGES[i]] }, { headers: next });
    }
    if (kind === "tags") return Response.json({ name: `lib/${repo}`, tags: ["v1"] });
    if (kind === "referrers") {
      if (ref !== sha(manifest)) return undefined;
      if (repo === "api") {
        const manifests = [{ digest: "not-a-digest", mediaType: MANIFEST }, { digest: 42 }, sigDesc];
        return new Response(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests }), { headers: { "content-type": INDEX } });
      }
      if (repo === "othertype") return new Response("<html>referrers</html>", { headers: { "content-type": "text/html" } });
      return undefined; // noapi: 404
    }
    if (kind === "manifests") {
      const answer = (body: string, type: string) => new Response(body, { headers: { "content-type": type, "docker-content-digest": sha(body) } });
      if (ref === "v1" && repo === "garbage") return answer("this is not a manifest", MANIFEST);
      if (ref === "v1" || PAGES.includes(ref) || ref === sha(manifest)) return answer(manifest, MANIFEST);
      if (ref === sha(sig)) return answer(sig, MANIFEST);
      if (ref === fallbackTag && repo !== "api") return answer(fallback, INDEX);
      return undefined;
    }
    for (const b of [config, layer, "{}"]) if (ref === sha(b)) return new Response(b);
    return undefined;
  });
  d = await startDaemon({ extra: `[[sync.registries]]\nname = "fake"\nurls = ["${fake.url}"]\nrepos = ${JSON.stringify(REPOS.map((r) => `lib/${r}`))}\non_demand = false\ntimeout_ms = 2000\nretries = 0\n` });
});
afterAll(async () => {
  await d?.[Symbol.asyncDispose]();
  await fake?.[Symbol.asyncDispose]();
});

test("the referrers API, a wrong content type and a missing API each yield the signature; bytes that are not a manifest fail that tag only; paged tags all come", async () => {
  expect((await fetch(`${d.url}/api/v1/sync/fake/run`, { method: "POST" })).status).toBe(202);
  await waitFor("the sync run to end", async () => (await syncView(d.url)).registries[0]!.lastRun !== null, 8_000);
  expect((await syncView(d.url)).registries[0]!.lastRun!.report).toMatchObject({ referrers: 4, failed: 1 });
  const tags = (await (await fetch(`${d.url}/v2/lib/paged/tags/list`)).json()) as { tags: string[] };
  expect(tags.tags).toEqual(PAGES);
  for (const repo of ["api", "othertype", "noapi"]) {
    const res = await fetch(`${d.url}/v2/lib/${repo}/referrers/${sha(manifest)}`);
    expect(res.status).toBe(200);
    const listed = ((await res.json()) as { manifests: { digest: string; artifactType?: string }[] }).manifests;
    expect(listed.map((m) => [m.digest, m.artifactType])).toEqual([[sha(sig), "application/vnd.example.sig"]]);
    expect(await (await fetch(`${d.url}/v2/lib/${repo}/manifests/${sha(sig)}`)).text()).toBe(sig);
  }
  expect(fake.hits(`/v2/lib/api/manifests/${fallbackTag}`)).toBe(0); // the API answered: no fallback asked
  expect(fake.hits(`/v2/lib/noapi/manifests/${fallbackTag}`)).toBe(1);
  expect(existsSync(join(d.root, "lib/garbage/index.json")) && (await fetch(`${d.url}/v2/lib/garbage/manifests/v1`)).status === 200).toBe(false);
  expect(d.logs().split("\n").some((l) => /"level":"(warn|error)"/.test(l) && l.includes("lib/garbage") && l.includes("unusable manifest"))).toBe(true);
});
