/**
 * The JSON pre-scan that runs before JSON.parse on manifests: nesting limit and duplicate
 * keys (issue 9, items 4 and 9), and that it leaves ordinary JSON alone.
 */
import { describe, expect, test } from "bun:test";
import { RegistryError } from "../../daemon/oci/errors";
import { MAX_JSON_DEPTH, NestingScanner, jsonProblem } from "../../daemon/oci/jsonscan";
import { parseManifest, sniffManifestType } from "../../daemon/oci/manifest";
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST } from "../../daemon/oci/mediatypes";

const D = `sha256:${"a".repeat(64)}`;
const enc = (s: string) => new TextEncoder().encode(s);

function manifestError(text: string, type = OCI_MANIFEST): RegistryError {
  try {
    parseManifest(enc(text), type);
  } catch (err) {
    return err as RegistryError;
  }
  throw new Error("parseManifest accepted the manifest");
}

describe("jsonProblem", () => {
  test.each([
    ['{"a":1,"b":[1,2,{"c":"d"}],"e":{"f":null}}'],
    ['{"a":"x\\"y","b":"\\\\","c":{"a":1},"d":[{"a":1},{"a":2}]}'],
    ['{"k":"{[\\"not a key\\"]}","l":"a,b"}'],
    ["[]"],
    ['"just a string"'],
  ])("accepts %s", (text) => {
    expect(jsonProblem(text)).toBeUndefined();
    JSON.parse(text); // really valid JSON
  });

  test("refuses a duplicate key at the top and deep down, escapes unfolded", () => {
    expect(jsonProblem('{"a":1,"b":2,"a":3}')).toBe('the key "a" appears twice in one object');
    expect(jsonProblem('{"x":[{"y":{"mediaType":"a","digest":"b","mediaType":"c"}}]}')).toMatch(/"mediaType" appears twice/);
    expect(jsonProblem('{"size":1,"\\u0073ize":2}')).toMatch(/"size" appears twice/);
  });

  test("refuses keys that differ only in lone surrogates, which decoders such as Go's read as the same U+FFFD", () => {
    expect(jsonProblem('{"\\ud800":1,"\\udc00":2}')).toMatch(/appears twice/);
    expect(jsonProblem('{"a\\ufffd":1,"a\\udbff":2}')).toMatch(/appears twice/);
    // a well-formed pair is one character, and differs from U+FFFD
    expect(jsonProblem('{"\\ud83d\\ude00":1,"\\ufffd":2}')).toBeUndefined();
  });

  test("refuses nesting over the limit, at any size of input", () => {
    expect(jsonProblem("[".repeat(MAX_JSON_DEPTH) + "]".repeat(MAX_JSON_DEPTH))).toBeUndefined();
    expect(jsonProblem("[".repeat(MAX_JSON_DEPTH + 1))).toBe(`the JSON nests deeper than ${MAX_JSON_DEPTH} levels`);
    // 4 MiB of "[" (what took the daemon to 676 MiB) is refused after the 65th byte
    expect(jsonProblem("[".repeat(4 << 20))).toMatch(/nests deeper/);
    expect(jsonProblem('{"a":'.repeat(10_000))).toMatch(/nests deeper/);
  });
});

describe("parseManifest refuses ambiguous and hostile manifests", () => {
  test("a duplicate key anywhere is MANIFEST_INVALID naming the key", () => {
    const cfg = `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"${D}","size":2}`;
    const top = manifestError(`{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":${cfg},"layers":[],"layers":[{"mediaType":"x","digest":"${D}","size":1}]}`);
    expect(top.code).toBe("MANIFEST_INVALID");
    expect(top.detail).toContain('"layers"');
    const nested = manifestError(`{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":{"mediaType":"a/b","digest":"${D}","size":2,"size":3},"layers":[]}`);
    expect(nested.detail).toContain('"size" appears twice');
  });

  test("deep nesting is MANIFEST_INVALID", () => {
    const err = manifestError(`{"schemaVersion":2,"annotations":${"[".repeat(100_000)}`);
    expect(err.code).toBe("MANIFEST_INVALID");
    expect(err.detail).toContain("nests deeper");
  });

  test("an index may list only manifests and indexes", () => {
    const list = (type: string) => JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: D, size: 1 }, { mediaType: type, digest: D, size: 1 }] });
    for (const ok of [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST]) expect(parseManifest(enc(list(ok)), OCI_INDEX).manifests).toHaveLength(2);
    const err = manifestError(list("application/vnd.oci.image.layer.v1.tar+gzip"), OCI_INDEX);
    expect(err.code).toBe("MANIFEST_INVALID");
    expect(err.detail).toContain("manifests[1]");
    expect(err.detail).toContain("application/vnd.oci.image.layer.v1.tar+gzip");
  });
});

describe("NestingScanner (streaming)", () => {
  test("agrees with jsonProblem on depth, across chunk boundaries and inside strings", () => {
    const text = `{"a":"[[[[\\"[[[","b":${"[".repeat(MAX_JSON_DEPTH - 1)}${"]".repeat(MAX_JSON_DEPTH - 1)}}`;
    expect(jsonProblem(text)).toBeUndefined();
    const bytes = enc(text);
    const s = new NestingScanner();
    for (let i = 0; i < bytes.length; i += 3) expect(s.feed(bytes.subarray(i, i + 3))).toBeUndefined();
    const deep = new NestingScanner();
    let problem: string | undefined;
    for (let i = 0; i < 100 && !problem; i++) problem = deep.feed(enc("[{\"k\":"));
    expect(problem).toBe(`the JSON nests deeper than ${MAX_JSON_DEPTH} levels`);
  });
});

test("sniffing a stored file of hostile nesting says it is no manifest, without parsing it", () => {
  expect(sniffManifestType(enc(`{"manifests":[],"x":${"[".repeat(1 << 20)}`))).toBeUndefined();
  expect(sniffManifestType(enc('{"manifests":[]}'))).toBe(OCI_INDEX);
});
