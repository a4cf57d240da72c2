/**
 * Socketless table tests of the read side of /v2 (distribution spec "Pull" and "Content
 * Discovery"): each row is a request and the status, headers and body the spec requires.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type TestRegistry, createTestRegistry, pushBlob, pushImage, sha256, sha512 } from "../helpers/registry";
import { OCI_INDEX, OCI_MANIFEST } from "../../daemon/oci/mediatypes";

let r: TestRegistry;
let v1: Awaited<ReturnType<typeof pushImage>>;
let v2: Awaited<ReturnType<typeof pushImage>>;
let indexBody: string;
let sbom: string;
let sig: string;

beforeAll(async () => {
  r = await createTestRegistry();
  v1 = await pushImage(r, "lib/app", "v1", "one");
  v2 = await pushImage(r, "lib/app", "v2", "two");
  indexBody = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      { mediaType: OCI_MANIFEST, digest: v1.digest, size: v1.manifest.length, platform: { os: "linux", architecture: "amd64" } },
      { mediaType: OCI_MANIFEST, digest: v2.digest, size: v2.manifest.length, platform: { os: "linux", architecture: "arm64" } },
    ],
  });
  expect((await r.call("PUT", "/v2/lib/app/manifests/multi", { headers: { "Content-Type": OCI_INDEX }, body: indexBody })).status).toBe(201);
  // Two referrers of v1: an artifact with artifactType, and an image whose config type stands in for it.
  const empty = "{}";
  await pushBlob(r, "lib/app", empty);
  await pushBlob(r, "lib/app", "sbom payload");
  sbom = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: "application/vnd.example.sbom.v1",
    config: { mediaType: "application/vnd.oci.empty.v1+json", digest: sha256(empty), size: 2 },
    layers: [{ mediaType: "application/json", digest: sha256("sbom payload"), size: 12 }],
    subject: { mediaType: OCI_MANIFEST, digest: v1.digest, size: v1.manifest.length },
    annotations: { "org.example.kind": "sbom" },
  });
  expect((await r.call("PUT", `/v2/lib/app/manifests/${sha256(sbom)}`, { headers: { "Content-Type": OCI_MANIFEST }, body: sbom })).status).toBe(201);
  await pushBlob(r, "lib/app", "signature config");
  sig = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.example.sig.config.v1+json", digest: sha256("signature config"), size: 16 },
    layers: [],
    subject: { mediaType: OCI_MANIFEST, digest: v1.digest, size: v1.manifest.length },
  });
  expect((await r.call("PUT", `/v2/lib/app/manifests/${sha256(sig)}`, { headers: { "Content-Type": OCI_MANIFEST }, body: sig })).status).toBe(201);
  for (const tag of ["alpha", "beta", "gamma"]) {
    expect((await r.call("PUT", `/v2/lib/app/manifests/${tag}`, { headers: { "Content-Type": OCI_MANIFEST }, body: v2.manifest })).status).toBe(201);
  }
  await pushImage(r, "lib/zeta", "latest", "zeta");
  await pushImage(r, "base", "latest", "base");
});

afterAll(async () => {
  await r[Symbol.asyncDispose]();
});

interface Row {
  name: string;
  method?: string;
  path: () => string;
  headers?: Record<string, string> | [string, string][];
  status: number;
  /** Expected response headers (exact values). */
  expectHeaders?: () => Record<string, string | null>;
  /** Expected error code in the OCI error body. */
  code?: string;
  /** Expected exact body text. */
  body?: () => string;
  /** Expected JSON body. */
  json?: () => unknown;
}

const rows: Row[] = [
  // end-1: GET /v2/
  { name: "base endpoint answers 200 with an empty JSON object", path: () => "/v2/", status: 200, json: () => ({}) },
  { name: "base endpoint answers HEAD", method: "HEAD", path: () => "/v2/", status: 200, body: () => "" },
  { name: "base endpoint without the trailing slash", path: () => "/v2", status: 200 },
  { name: "base endpoint refuses POST with 405 UNSUPPORTED", method: "POST", path: () => "/v2/", status: 405, code: "UNSUPPORTED" },

  // end-3: manifests
  {
    name: "manifest by tag is served byte-exact with its media type and digest",
    path: () => "/v2/lib/app/manifests/v1",
    status: 200,
    body: () => v1.manifest,
    expectHeaders: () => ({ "content-type": OCI_MANIFEST, "docker-content-digest": v1.digest, "content-length": String(v1.manifest.length) }),
  },
  {
    name: "manifest HEAD has the headers and no body",
    method: "HEAD",
    path: () => "/v2/lib/app/manifests/v1",
    status: 200,
    body: () => "",
    expectHeaders: () => ({ "docker-content-digest": v1.digest, "content-length": String(v1.manifest.length) }),
  },
  { name: "manifest by digest", path: () => `/v2/lib/app/manifests/${v2.digest}`, status: 200, body: () => v2.manifest },
  { name: "manifest digest with a percent-encoded colon", path: () => `/v2/lib/app/manifests/${v2.digest.replace(":", "%3A")}`, status: 200, body: () => v2.manifest },
  { name: "index by tag", path: () => "/v2/lib/app/manifests/multi", status: 200, body: () => indexBody, expectHeaders: () => ({ "content-type": OCI_INDEX }) },
  { name: "unknown tag is 404 MANIFEST_UNKNOWN", path: () => "/v2/lib/app/manifests/nope", status: 404, code: "MANIFEST_UNKNOWN" },
  { name: "unknown digest is 404 MANIFEST_UNKNOWN", path: () => `/v2/lib/app/manifests/${sha256("nothing")}`, status: 404, code: "MANIFEST_UNKNOWN" },
  { name: "unknown sha512 digest is 404 MANIFEST_UNKNOWN", path: () => `/v2/lib/app/manifests/${sha512("nothing")}`, status: 404, code: "MANIFEST_UNKNOWN" },
  { name: "a layer's digest on the manifests endpoint is not a manifest", path: () => `/v2/lib/app/manifests/${sha256(v1.layer)}`, status: 404, code: "MANIFEST_UNKNOWN" },
  // the conformance suite asks for ".INVALID_MANIFEST_NAME" and expects 404: no manifest can have a reference that is neither tag nor digest
  { name: "a reference that is neither tag nor digest is 404 MANIFEST_UNKNOWN", path: () => "/v2/lib/app/manifests/.INVALID_MANIFEST_NAME", status: 404, code: "MANIFEST_UNKNOWN" },
  { name: "HEAD of a reference that is neither tag nor digest is 404", method: "HEAD", path: () => "/v2/lib/app/manifests/.INVALID_MANIFEST_NAME", status: 404, body: () => "" },
  { name: "a malformed reference is 400 DIGEST_INVALID", path: () => "/v2/lib/app/manifests/sha256:xyz", status: 400, code: "DIGEST_INVALID" },
  { name: "an unsupported digest algorithm is 400 DIGEST_INVALID", path: () => `/v2/lib/app/manifests/md5:${"a".repeat(32)}`, status: 400, code: "DIGEST_INVALID" },
  { name: "unknown repository is 404 NAME_UNKNOWN", path: () => "/v2/lib/missing/manifests/v1", status: 404, code: "NAME_UNKNOWN" },
  { name: "upper-case name is 400 NAME_INVALID", path: () => "/v2/Lib/App/manifests/v1", status: 400, code: "NAME_INVALID" },
  { name: "encoded slash in a name is 400 NAME_INVALID", path: () => "/v2/lib%2fapp/manifests/v1", status: 400, code: "NAME_INVALID" },
  { name: "dot-segments joined by an encoded slash are 400 NAME_INVALID", path: () => "/v2/..%2f..%2fetc/manifests/v1", status: 400, code: "NAME_INVALID" },
  { name: "encoded dot-segments resolve before routing and cannot climb out of /v2", path: () => "/v2/%2e%2e/%2e%2e/etc/manifests/v1", status: 404, code: "UNSUPPORTED" },
  { name: "a name reaching into a layout's blobs is 400 NAME_INVALID", path: () => "/v2/lib/app/blobs/sha256/manifests/v1", status: 400, code: "NAME_INVALID" },
  { name: "a name with a leading separator is 400 NAME_INVALID", path: () => "/v2/-lib/manifests/v1", status: 400, code: "NAME_INVALID" },
  { name: "a name of 256 characters is 400 NAME_INVALID", path: () => `/v2/${"a".repeat(256)}/manifests/v1`, status: 400, code: "NAME_INVALID" },
  {
    name: "Accept that excludes the manifest's type is 404 MANIFEST_UNKNOWN",
    path: () => "/v2/lib/app/manifests/v1",
    headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" },
    status: 404,
    code: "MANIFEST_UNKNOWN",
  },
  {
    name: "Accept sent as several header lines is merged",
    path: () => "/v2/lib/app/manifests/v1",
    headers: [["Accept", "application/vnd.docker.distribution.manifest.v2+json"], ["Accept", `${OCI_MANIFEST}, ${OCI_INDEX}`]],
    status: 200,
    body: () => v1.manifest,
  },
  { name: "Accept */* admits anything", path: () => "/v2/lib/app/manifests/multi", headers: { Accept: "*/*" }, status: 200 },

  // end-2: blobs
  {
    name: "blob GET is served whole with its digest",
    path: () => `/v2/lib/app/blobs/${sha256(v1.layer)}`,
    status: 200,
    body: () => v1.layer,
    expectHeaders: () => ({ "content-type": "application/octet-stream", "docker-content-digest": sha256(v1.layer), "content-length": String(v1.layer.length), "accept-ranges": "bytes" }),
  },
  { name: "blob HEAD has the length and no body", method: "HEAD", path: () => `/v2/lib/app/blobs/${sha256(v1.layer)}`, status: 200, body: () => "", expectHeaders: () => ({ "content-length": String(v1.layer.length) }) },
  {
    name: "Range bytes=0-4 is 206 with Content-Range",
    path: () => `/v2/lib/app/blobs/${sha256(v1.layer)}`,
    headers: { Range: "bytes=0-4" },
    status: 206,
    body: () => v1.layer.slice(0, 5),
    expectHeaders: () => ({ "content-range": `bytes 0-4/${v1.layer.length}`, "content-length": "5" }),
  },
  { name: "Range bytes=6- reads to the end", path: () => `/v2/lib/app/blobs/${sha256(v1.layer)}`, headers: { Range: "bytes=6-" }, status: 206, body: () => v1.layer.slice(6) },
  {
    name: "Range bytes=-3 reads the last three bytes, and says which",
    path: () => `/v2/lib/app/blobs/${sha256(v1.layer)}`,
    headers: { Range: "bytes=-3" },
    status: 206,
    body: () => v1.layer.slice(-3),
    expectHeaders: () => ({ "content-range": `bytes ${v1.layer.length - 3}-${v1.layer.length - 1}/${v1.layer.length}`, "content-length": "3" }),
  },
  { name: "Range past the end clamps", path: () => `/v2/lib/app/blobs/${sha256(v1.layer)}`, headers: { Range: "bytes=2-100000" }, status: 206, body: () => v1.layer.slice(2) },
  {
    name: "unsatisfiable Range is 416 with an empty body and Content-Range bytes */size",
    path: () => `/v2/lib/app/blobs/${sha256(v1.layer)}`,
    headers: { Range: "bytes=100000-" },
    status: 416,
    body: () => "",
    expectHeaders: () => ({ "content-range": `bytes */${v1.layer.length}` }),
  },
  { name: "unknown blob is 404 BLOB_UNKNOWN", path: () => `/v2/lib/app/blobs/${sha256("none")}`, status: 404, code: "BLOB_UNKNOWN" },
  { name: "another repository's blob is 404 BLOB_UNKNOWN", path: () => `/v2/base/blobs/${sha256(v1.layer)}`, status: 404, code: "BLOB_UNKNOWN" },
  { name: "malformed blob digest is 400 DIGEST_INVALID", path: () => "/v2/lib/app/blobs/sha256:1234", status: 400, code: "DIGEST_INVALID" },
  { name: "upper-case hex is 400 DIGEST_INVALID", path: () => `/v2/lib/app/blobs/${sha256(v1.layer).toUpperCase().replace("SHA256", "sha256")}`, status: 400, code: "DIGEST_INVALID" },
  { name: "PUT on a blob is 405", method: "PUT", path: () => `/v2/lib/app/blobs/${sha256(v1.layer)}`, status: 405, code: "UNSUPPORTED" },

  // end-8: tags
  { name: "tags are listed in lexical order", path: () => "/v2/lib/app/tags/list", status: 200, json: () => ({ name: "lib/app", tags: ["alpha", "beta", "gamma", "multi", "v1", "v2"] }) },
  {
    name: "n limits the page and Link points at the next",
    path: () => "/v2/lib/app/tags/list?n=2",
    status: 200,
    json: () => ({ name: "lib/app", tags: ["alpha", "beta"] }),
    expectHeaders: () => ({ link: '</v2/lib/app/tags/list?n=2&last=beta>; rel="next"' }),
  },
  { name: "last continues after the given tag", path: () => "/v2/lib/app/tags/list?n=2&last=beta", status: 200, json: () => ({ name: "lib/app", tags: ["gamma", "multi"] }) },
  { name: "the last page has no Link", path: () => "/v2/lib/app/tags/list?n=2&last=multi", status: 200, json: () => ({ name: "lib/app", tags: ["v1", "v2"] }), expectHeaders: () => ({ link: null }) },
  { name: "last without n returns the rest", path: () => "/v2/lib/app/tags/list?last=multi", status: 200, json: () => ({ name: "lib/app", tags: ["v1", "v2"] }) },
  { name: "n=0 is an empty list without Link", path: () => "/v2/lib/app/tags/list?n=0", status: 200, json: () => ({ name: "lib/app", tags: [] }), expectHeaders: () => ({ link: null }) },
  { name: "a bad n is 400", path: () => "/v2/lib/app/tags/list?n=ten", status: 400, code: "UNSUPPORTED" },
  { name: "tags of an unknown repository is 404 NAME_UNKNOWN", path: () => "/v2/nope/tags/list", status: 404, code: "NAME_UNKNOWN" },

  // catalog
  { name: "catalog lists repositories in lexical order", path: () => "/v2/_catalog", status: 200, json: () => ({ repositories: ["base", "lib/app", "lib/zeta"] }) },
  {
    name: "catalog paginates with Link",
    path: () => "/v2/_catalog?n=1",
    status: 200,
    json: () => ({ repositories: ["base"] }),
    expectHeaders: () => ({ link: '</v2/_catalog?n=1&last=base>; rel="next"' }),
  },
  { name: "catalog after last", path: () => "/v2/_catalog?n=5&last=base", status: 200, json: () => ({ repositories: ["lib/app", "lib/zeta"] }), expectHeaders: () => ({ link: null }) },

  // end-12: referrers
  {
    name: "referrers lists both referring manifests with artifactType and annotations",
    path: () => `/v2/lib/app/referrers/${v1.digest}`,
    status: 200,
    expectHeaders: () => ({ "content-type": OCI_INDEX, "oci-filters-applied": null }),
    json: () => ({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: sha256(sbom), size: sbom.length, artifactType: "application/vnd.example.sbom.v1", annotations: { "org.example.kind": "sbom" } },
        { mediaType: OCI_MANIFEST, digest: sha256(sig), size: sig.length, artifactType: "application/vnd.example.sig.config.v1+json" },
      ].sort((a, b) => (a.digest < b.digest ? -1 : 1)),
    }),
  },
  {
    name: "artifactType filters and says so in OCI-Filters-Applied",
    path: () => `/v2/lib/app/referrers/${v1.digest}?artifactType=application/vnd.example.sbom.v1`,
    status: 200,
    expectHeaders: () => ({ "oci-filters-applied": "artifactType" }),
    json: () => ({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(sbom), size: sbom.length, artifactType: "application/vnd.example.sbom.v1", annotations: { "org.example.kind": "sbom" } }],
    }),
  },
  { name: "no referrers is an empty index, never 404", path: () => `/v2/lib/app/referrers/${v2.digest}`, status: 200, json: () => ({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }) },
  { name: "referrers in an unknown repository is an empty index", path: () => `/v2/nope/referrers/${v2.digest}`, status: 200, json: () => ({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }) },
  { name: "referrers with a malformed digest is 400", path: () => "/v2/lib/app/referrers/sha256:zz", status: 400, code: "DIGEST_INVALID" },

  // routing
  { name: "an unknown endpoint is 404", path: () => "/v2/lib/app/nothing/here", status: 404, code: "UNSUPPORTED" },
  { name: "DELETE on tags/list is 405", method: "DELETE", path: () => "/v2/lib/app/tags/list", status: 405, code: "UNSUPPORTED" },
];

describe("GET side of /v2, from the spec's text", () => {
  for (const row of rows) {
    test(row.name, async () => {
      const headers = new Headers();
      const given = row.headers;
      if (Array.isArray(given)) for (const [k, v] of given) headers.append(k, v);
      else if (given) for (const [k, v] of Object.entries(given)) headers.set(k, v);
      const res = await r.handle(new Request(`http://registry.test${row.path()}`, { method: row.method ?? "GET", headers }));
      const text = await res.text();
      expect({ status: res.status, text }).toMatchObject({ status: row.status });
      expect(res.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
      if (row.expectHeaders) {
        for (const [k, v] of Object.entries(row.expectHeaders())) expect(`${k}: ${res.headers.get(k)}`).toBe(`${k}: ${v}`);
      }
      if (row.code) {
        if ((row.method ?? "GET") === "HEAD") expect(text).toBe("");
        else {
          const body = JSON.parse(text) as { errors: { code: string; message: string; detail?: string }[] };
          expect(body.errors[0]!.code).toBe(row.code);
          expect(typeof body.errors[0]!.message).toBe("string");
        }
      }
      if (row.body) expect(text).toBe(row.body());
      if (row.json) expect(JSON.parse(text)).toEqual(row.json());
    });
  }

  test("If-None-Match with the manifest's ETag answers 304", async () => {
    const first = await r.call("GET", "/v2/lib/app/manifests/v1");
    const etag = first.headers.get("etag")!;
    expect(etag).toBe(`"${v1.digest}"`);
    const again = await r.call("GET", "/v2/lib/app/manifests/v1", { headers: { "If-None-Match": etag } });
    expect(again.status).toBe(304);
  });
});

test("each blob body served is counted with its size for the IO budget; HEAD and a 404 count nothing", async () => {
  const served: number[] = [];
  await using counted = await createTestRegistry({ onServe: (bytes) => void served.push(bytes) });
  const body = "a blob whose reads are counted";
  const digest = await pushBlob(counted, "team/app", body);
  expect((await counted.call("HEAD", `/v2/team/app/blobs/${digest}`)).status).toBe(200);
  expect((await counted.call("GET", `/v2/team/app/blobs/${sha256("absent")}`)).status).toBe(404);
  expect(served).toEqual([]);
  const res = await counted.call("GET", `/v2/team/app/blobs/${digest}`);
  expect(await res.text()).toBe(body);
  expect(served).toEqual([body.length]);
});

test("a repository name that is not valid is 400 NAME_INVALID for a tag list and a manifest DELETE too", async () => {
  for (const [method, path] of [["GET", "/v2/Team/App/tags/list"], ["DELETE", "/v2/Team/App/manifests/v1"]] as const) {
    const res = await r.call(method, path);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("NAME_INVALID");
  }
});

test("the extensions discovery endpoint answers GET, and refuses other methods with 405", async () => {
  const res = await r.call("GET", "/v2/_oci/ext/discover");
  expect(res.status).toBe(200);
  expect(typeof (await res.json())).toBe("object");
  const post = await r.call("POST", "/v2/_oci/ext/discover");
  expect(post.status).toBe(405);
  expect(post.headers.get("allow")).toBe("GET");
});
