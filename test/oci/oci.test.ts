/** Unit tests of the pure OCI layer: digests, names, tags, media types, manifests, index.json. */
import { describe, expect, test } from "bun:test";
import { parseDigest, requireDigest } from "../../daemon/oci/digest";
import { RegistryError, errorBody, ERROR_TABLE } from "../../daemon/oci/errors";
import { tagOf, withManifest, withoutDigest, withoutTag } from "../../daemon/oci/layoutindex";
import { parseManifest, sniffManifestType } from "../../daemon/oci/manifest";
import { acceptAdmits, bareMediaType } from "../../daemon/oci/mediatypes";
import { isTag, nameProblem } from "../../daemon/oci/names";

const H64 = "a".repeat(64);
const H128 = "b".repeat(128);

describe("digests", () => {
  test.each([
    [`sha256:${H64}`, true],
    [`sha512:${H128}`, true],
    [`sha256:${"A".repeat(64)}`, false],
    [`sha256:${H64.slice(1)}`, false],
    [`sha512:${H64}`, false],
    [`md5:${"a".repeat(32)}`, false],
    ["sha256", false],
    [":abc", false],
    ["", false],
  ])("%s valid=%p", (text, valid) => {
    expect(parseDigest(text) !== undefined).toBe(valid);
  });

  test("errors say what is wrong", () => {
    expect(() => requireDigest(`md5:${"a".repeat(32)}`)).toThrow(/algorithm "md5" is not supported/);
    expect(() => requireDigest(`sha256:${H64.slice(2)}`)).toThrow(/64 lowercase hex/);
    expect(() => requireDigest("nonsense")).toThrow(/is not a digest/);
  });
});

describe("names and tags (spec grammar)", () => {
  test.each([
    ["library/ubuntu", true],
    ["a", true],
    ["a.b_c__d-e---f/g", true],
    ["x/y/z/deep/nesting", true],
    ["Upper", false],
    ["-lead", false],
    ["trail-", false],
    ["a//b", false],
    ["a/../b", false],
    ["/abs", false],
    ["a___b", false],
    ["a/blobs", false],
    ["a/oci-layout/b", false],
    ["index.json", false],
    ["", false],
    ["a".repeat(256), false],
  ])("name %s valid=%p", (name, valid) => {
    expect(nameProblem(name) === undefined).toBe(valid);
  });

  test.each([
    ["latest", true],
    ["v1.2.3-rc.1_x", true],
    ["_under", true],
    ["a".repeat(128), true],
    ["a".repeat(129), false],
    [".dot", false],
    ["-dash", false],
    ["has:colon", false],
    ["", false],
  ])("tag %s valid=%p", (tag, valid) => {
    expect(isTag(tag)).toBe(valid);
  });
});

describe("errors", () => {
  test("every code has a status and a message; the body has the spec's shape", () => {
    for (const [code, entry] of Object.entries(ERROR_TABLE)) {
      expect(code).toMatch(/^[A-Z_]+$/);
      expect(entry.status).toBeGreaterThanOrEqual(400);
      expect(entry.message.length).toBeGreaterThan(0);
    }
    expect(JSON.parse(errorBody("BLOB_UNKNOWN", "x"))).toEqual({ errors: [{ code: "BLOB_UNKNOWN", message: "blob unknown to registry", detail: "x" }] });
    const err = new RegistryError("BLOB_UPLOAD_INVALID", "d", { status: 416 });
    expect(err.status).toBe(416);
  });
});

describe("media types", () => {
  test("Accept handling", () => {
    const t = "application/vnd.oci.image.manifest.v1+json";
    expect(acceptAdmits(null, t)).toBe(true);
    expect(acceptAdmits("", t)).toBe(true);
    expect(acceptAdmits(`application/json, ${t};q=0.5`, t)).toBe(true);
    expect(acceptAdmits("application/vnd.docker.distribution.manifest.v2+json", t)).toBe(false);
    expect(acceptAdmits("*/*", t)).toBe(true);
    expect(bareMediaType(" Application/JSON ; charset=utf-8")).toBe("application/json");
  });
});

describe("manifest parsing", () => {
  const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  const desc = (d = H64) => ({ mediaType: "a/b", digest: `sha256:${d}`, size: 1 });

  test("image manifest: blobs are config and distributable layers; artifactType falls back to config type", () => {
    const p = parseManifest(enc({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { ...desc(), mediaType: "application/vnd.example.config" },
      layers: [desc("c".repeat(64)), { ...desc("d".repeat(64)), mediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar", urls: ["https://x"] }],
    }), "");
    expect(p.kind).toBe("image");
    expect(p.blobs.map((b) => b.digest)).toEqual([`sha256:${H64}`, `sha256:${"c".repeat(64)}`]);
    expect(p.artifactType).toBe("application/vnd.example.config");
  });

  test("index with subject and artifactType", () => {
    const p = parseManifest(enc({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", artifactType: "x/y", manifests: [{ ...desc(), mediaType: "application/vnd.oci.image.manifest.v1+json" }], subject: desc("e".repeat(64)) }), "");
    expect(p.kind).toBe("index");
    expect(p.manifests).toHaveLength(1);
    expect(p.subject?.digest).toBe(`sha256:${"e".repeat(64)}`);
    expect(p.artifactType).toBe("x/y");
  });

  test("errors name the field", () => {
    expect(() => parseManifest(enc({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: desc(), layers: [desc(), { mediaType: "a", digest: "x", size: 1 }] }), "")).toThrow(/layers\[1\]\.digest/);
    expect(() => parseManifest(enc({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: desc(), layers: [], annotations: { a: 1 } }), "")).toThrow(/annotations\["a"\]/);
    expect(() => parseManifest(new Uint8Array([0xff, 0xfe]), "application/vnd.oci.image.manifest.v1+json")).toThrow(/UTF-8 JSON/);
  });

  test("sniffing stored bytes without a recorded type", () => {
    expect(sniffManifestType(enc({ schemaVersion: 2, manifests: [] }))).toBe("application/vnd.oci.image.index.v1+json");
    expect(sniffManifestType(enc({ schemaVersion: 2, config: {}, layers: [] }))).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(sniffManifestType(new TextEncoder().encode("binary layer"))).toBeUndefined();
  });
});

describe("index.json as the set of a repository's manifests", () => {
  const d = (n: string) => ({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${n.repeat(64)}`, size: 10 });
  const view = (entries: ReturnType<typeof withManifest>) => entries.map((e) => `${e.digest.slice(7, 8)}:${tagOf(e) ?? "-"}`).sort();

  test("tagging, untagged pushes, moving a tag, deleting", () => {
    let e = withManifest([], d("a"), ["v1"]);
    expect(view(e)).toEqual(["a:v1"]);
    e = withManifest(e, d("b"), []);
    expect(view(e)).toEqual(["a:v1", "b:-"]);
    e = withManifest(e, d("b"), ["v1", "latest"]);
    expect(view(e)).toEqual(["a:-", "b:latest", "b:v1"]);
    expect(view(withoutTag(e, "latest")!)).toEqual(["a:-", "b:v1"]);
    expect(view(withoutTag(withoutTag(e, "latest")!, "v1")!)).toEqual(["a:-", "b:-"]);
    expect(withoutTag(e, "nope")).toBeUndefined();
    expect(view(withoutDigest(e, d("b").digest))).toEqual(["a:-"]);
  });
});

describe("manifests already stored", () => {
  const cfg = `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:${"a".repeat(64)}","size":2}`;
  const dup = new TextEncoder().encode(
    `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":${cfg},"layers":[],"annotations":{"k":"1","k":"2"}}`,
  );

  test("a duplicate key is refused on push but read from the store (pushed before the rule, or dropped in)", () => {
    expect(() => parseManifest(dup, "application/vnd.oci.image.manifest.v1+json")).toThrow(/appears twice/);
    const parsed = parseManifest(dup, "application/vnd.oci.image.manifest.v1+json", "stored");
    expect(parsed.blobs.map((b) => b.digest)).toEqual([`sha256:${"a".repeat(64)}`]);
  });

  test("hostile nesting is refused from the store too", () => {
    const deep = new TextEncoder().encode(`{"schemaVersion":2,"x":${"[".repeat(100)}${"]".repeat(100)}}`);
    expect(() => parseManifest(deep, "application/vnd.oci.image.manifest.v1+json", "stored")).toThrow(/deeper/);
  });
});
