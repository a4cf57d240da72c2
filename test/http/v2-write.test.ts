/**
 * Socketless tests of the write side of /v2 (distribution spec "Push" and "Content
 * Management"): upload sessions, chunk ordering, mounts, manifest rules, deletes. Each
 * test states the spec rule it checks; every failure must leave stored content unchanged.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { type TestRegistry, createTestRegistry, imageManifest, pushBlob, pushImage, sha256, sha512 } from "../helpers/registry";
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST as DOCKER_LIST, OCI_INDEX, OCI_MANIFEST } from "../../daemon/oci/mediatypes";

let r: TestRegistry;
beforeEach(async () => {
  r = await createTestRegistry({ maxManifestBytes: 64 * 1024 });
});
afterEach(async () => {
  await r[Symbol.asyncDispose]();
});

async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as { errors: { code: string }[] };
  return body.errors[0]!.code;
}

async function startSession(repo: string): Promise<string> {
  const res = await r.call("POST", `/v2/${repo}/blobs/uploads/`);
  expect(res.status).toBe(202);
  return res.headers.get("location")!;
}

function streamOf(parts: string[], failAfter?: number): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (failAfter !== undefined && i === failAfter) {
        controller.error(new Error("client went away"));
        return;
      }
      if (i < parts.length) controller.enqueue(new TextEncoder().encode(parts[i++]!));
      else controller.close();
    },
  });
}

describe("blob uploads (end-4 … end-6, end-13, end-14)", () => {
  test("POST opens a session: 202, Location, Docker-Upload-UUID, Range 0-0", async () => {
    const res = await r.call("POST", "/v2/up/blobs/uploads/");
    expect(res.status).toBe(202);
    const location = res.headers.get("location")!;
    expect(location).toMatch(/^\/v2\/up\/blobs\/uploads\/[0-9a-f-]{36}$/);
    expect(location.endsWith(res.headers.get("docker-upload-uuid")!)).toBe(true);
    expect(res.headers.get("range")).toBe("0-0");
  });

  test("streamed PATCH (no Content-Range, chunked) then PUT with digest stores the blob", async () => {
    const loc = await startSession("up");
    const patch = await r.call("PATCH", loc, { body: streamOf(["hello ", "streamed ", "world"]) });
    expect(patch.status).toBe(202);
    expect(patch.headers.get("range")).toBe("0-19");
    const digest = sha256("hello streamed world");
    const put = await r.call("PUT", `${loc}?digest=${digest}`);
    expect(put.status).toBe(201);
    expect(put.headers.get("location")).toBe(`/v2/up/blobs/${digest}`);
    expect(put.headers.get("docker-content-digest")).toBe(digest);
    expect(await (await r.call("GET", `/v2/up/blobs/${digest}`)).text()).toBe("hello streamed world");
  });

  test("chunked PATCHes with Content-Range, status GET, and a final chunk on PUT", async () => {
    const loc = await startSession("up");
    let res = await r.call("PATCH", loc, { headers: { "Content-Range": "0-4", "Content-Length": "5" }, body: "01234" });
    expect(res.status).toBe(202);
    expect(res.headers.get("range")).toBe("0-4");
    res = await r.call("PATCH", res.headers.get("location")!, { headers: { "Content-Range": "5-9" }, body: "56789" });
    expect(res.headers.get("range")).toBe("0-9");
    const status = await r.call("GET", loc);
    expect(status.status).toBe(204);
    expect(status.headers.get("range")).toBe("0-9");
    expect(status.headers.get("location")).toBe(loc);
    const digest = sha256("0123456789abc");
    res = await r.call("PUT", `${loc}?digest=${digest}`, { headers: { "Content-Range": "10-12" }, body: "abc" });
    expect(res.status).toBe(201);
    expect(await (await r.call("GET", `/v2/up/blobs/${digest}`)).text()).toBe("0123456789abc");
  });

  test("an out-of-order chunk is 416 with the current Range, and the upload is unchanged", async () => {
    const loc = await startSession("up");
    await r.call("PATCH", loc, { headers: { "Content-Range": "0-4" }, body: "01234" });
    const res = await r.call("PATCH", loc, { headers: { "Content-Range": "7-9" }, body: "789" });
    expect(res.status).toBe(416);
    expect(res.headers.get("range")).toBe("0-4");
    // where to resume: the session's own Location and id, as on a 202
    expect(res.headers.get("location")).toBe(loc);
    expect(res.headers.get("docker-upload-uuid")).toBe(loc.split("/").pop()!);
    expect(await errorCode(res)).toBe("BLOB_UPLOAD_INVALID");
    expect((await r.call("GET", loc)).headers.get("range")).toBe("0-4");
  });

  test("a chunk shorter than its Content-Range is SIZE_INVALID and is not kept", async () => {
    const loc = await startSession("up");
    const res = await r.call("PATCH", loc, { headers: { "Content-Range": "0-99" }, body: "short" });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe("SIZE_INVALID");
    expect((await r.call("GET", loc)).headers.get("range")).toBe("0-0");
  });

  test("a client that disconnects mid-chunk loses that chunk only; the upload resumes", async () => {
    const loc = await startSession("up");
    await r.call("PATCH", loc, { body: "first-" });
    const broken = await r.call("PATCH", loc, { body: streamOf(["second-", "more"], 1) });
    expect(broken.status).toBe(400);
    expect(await errorCode(broken)).toBe("BLOB_UPLOAD_INVALID");
    expect((await r.call("GET", loc)).headers.get("range")).toBe("0-5");
    await r.call("PATCH", loc, { body: "second" });
    const digest = sha256("first-second");
    expect((await r.call("PUT", `${loc}?digest=${digest}`)).status).toBe(201);
    expect(await (await r.call("GET", `/v2/up/blobs/${digest}`)).text()).toBe("first-second");
  });

  test("an absolute Location sent back works as well as a relative one", async () => {
    const loc = await startSession("up");
    const absolute = `http://registry.example:5000${loc}`;
    const res = await r.handle(new Request(absolute, { method: "PATCH", body: "abs" }));
    expect(res.status).toBe(202);
    const digest = sha256("abs");
    expect((await r.handle(new Request(`${absolute}?digest=${digest}`, { method: "PUT" }))).status).toBe(201);
  });

  test("PUT with the wrong digest is DIGEST_INVALID and stores nothing", async () => {
    const loc = await startSession("up");
    await r.call("PATCH", loc, { body: "payload" });
    const wrong = sha256("something else");
    const res = await r.call("PUT", `${loc}?digest=${wrong}`);
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe("DIGEST_INVALID");
    expect((await r.call("HEAD", `/v2/up/blobs/${wrong}`)).status).toBe(404);
    expect((await r.call("HEAD", `/v2/up/blobs/${sha256("payload")}`)).status).toBe(404);
  });

  test("PUT without a digest is DIGEST_INVALID; a malformed one too", async () => {
    const loc = await startSession("up");
    expect(await errorCode(await r.call("PUT", loc))).toBe("DIGEST_INVALID");
    expect(await errorCode(await r.call("PUT", `${loc}?digest=sha256:abc`))).toBe("DIGEST_INVALID");
  });

  test("an unknown session is 404 BLOB_UPLOAD_UNKNOWN for GET, PATCH, PUT and DELETE", async () => {
    const loc = "/v2/up/blobs/uploads/00000000-0000-0000-0000-000000000000";
    for (const method of ["GET", "PATCH", "PUT", "DELETE"]) {
      const res = await r.call(method, method === "PUT" ? `${loc}?digest=${sha256("")}` : loc, { body: method === "PATCH" ? "x" : null });
      expect(`${method} ${res.status}`).toBe(`${method} 404`);
      expect(await errorCode(res)).toBe("BLOB_UPLOAD_UNKNOWN");
    }
  });

  test("a session belongs to its repository", async () => {
    const loc = await startSession("up");
    const elsewhere = loc.replace("/v2/up/", "/v2/other/");
    const res = await r.call("PATCH", elsewhere, { body: "x" });
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("BLOB_UPLOAD_UNKNOWN");
    expect((await r.call("GET", loc)).headers.get("range")).toBe("0-0");
  });

  test("DELETE cancels a session: 204, then 404", async () => {
    const loc = await startSession("up");
    await r.call("PATCH", loc, { body: "abc" });
    expect((await r.call("DELETE", loc)).status).toBe(204);
    expect((await r.call("GET", loc)).status).toBe(404);
  });

  test("monolithic POST with digest is 201; with a wrong digest 400 and nothing stored", async () => {
    const digest = sha256("mono");
    const ok = await r.call("POST", `/v2/up/blobs/uploads/?digest=${digest}`, { body: "mono" });
    expect(ok.status).toBe(201);
    expect(ok.headers.get("location")).toBe(`/v2/up/blobs/${digest}`);
    const bad = await r.call("POST", `/v2/up/blobs/uploads/?digest=${sha256("not mono")}`, { body: "mono2" });
    expect(bad.status).toBe(400);
    expect(await errorCode(bad)).toBe("DIGEST_INVALID");
    expect((await r.call("HEAD", `/v2/up/blobs/${sha256("not mono")}`)).status).toBe(404);
    expect(r.store.uploads.count()).toBe(0);
  });

  test("sha512 uploads: digest-algorithm on POST, and a monolithic sha512 push", async () => {
    const res = await r.call("POST", "/v2/up/blobs/uploads/?digest-algorithm=sha512");
    const loc = res.headers.get("location")!;
    await r.call("PATCH", loc, { body: "five-twelve" });
    const digest = sha512("five-twelve");
    expect((await r.call("PUT", `${loc}?digest=${digest}`)).status).toBe(201);
    expect(await (await r.call("GET", `/v2/up/blobs/${digest}`)).text()).toBe("five-twelve");
    const mono = sha512("mono512");
    expect((await r.call("POST", `/v2/up/blobs/uploads/?digest=${mono}`, { body: "mono512" })).status).toBe(201);
    const md5 = await r.call("POST", "/v2/up/blobs/uploads/?digest-algorithm=md5");
    expect(md5.status).toBe(400);
    const error = ((await md5.json()) as { errors: { code: string; detail: string }[] }).errors[0]!;
    expect(error.code).toBe("DIGEST_INVALID");
    expect(error.detail).toContain("md5");
  });

  test("a blob over max_blob_bytes is 413 and nothing is stored", async () => {
    await using small = await createTestRegistry({ maxBlobBytes: 10 });
    const digest = sha256("this is longer than ten bytes");
    const res = await small.call("POST", `/v2/up/blobs/uploads/?digest=${digest}`, { body: "this is longer than ten bytes" });
    expect(res.status).toBe(413);
    expect(await errorCode(res)).toBe("SIZE_INVALID");
    expect((await small.call("HEAD", `/v2/up/blobs/${digest}`)).status).toBe(404);
  });

  test("bad repository names are refused on POST", async () => {
    expect(await errorCode(await r.call("POST", "/v2/UP/blobs/uploads/"))).toBe("NAME_INVALID");
  });
});

describe("cross-repository mount (end-11)", () => {
  test("mount from another repository is 201 and shares the inode", async () => {
    const digest = await pushBlob(r, "src/a", "shared layer");
    const res = await r.call("POST", `/v2/dst/b/blobs/uploads/?mount=${digest}&from=src/a`);
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe(`/v2/dst/b/blobs/${digest}`);
    expect(res.headers.get("docker-content-digest")).toBe(digest);
    // one copy of the bytes held by both: local, one inode (pool + two repositories); S3, one
    // content-addressed object and an empty link object per repository
    const placed = await r.placement(digest, ["src/a", "dst/b"]);
    expect(placed.copies).toBe(1);
    expect(placed.linked).toEqual(["dst/b", "src/a"]);
    if (r.backend === "local") expect(placed.nlink).toBe(3);
  });

  test("mount without from finds the blob in the pool", async () => {
    const digest = await pushBlob(r, "src/a", "pooled");
    expect((await r.call("POST", `/v2/dst/c/blobs/uploads/?mount=${digest}`)).status).toBe(201);
    expect(await (await r.call("GET", `/v2/dst/c/blobs/${digest}`)).text()).toBe("pooled");
  });

  test("a mount that cannot be done falls back to a session (202)", async () => {
    const missing = sha256("never pushed");
    let res = await r.call("POST", `/v2/dst/d/blobs/uploads/?mount=${missing}&from=src/a`);
    expect(res.status).toBe(202);
    expect(res.headers.get("location")).toMatch(/\/v2\/dst\/d\/blobs\/uploads\//);
    res = await r.call("POST", `/v2/dst/d/blobs/uploads/?mount=${missing}&from=Not_A_Valid/Name`);
    expect(res.status).toBe(202);
    // A mount that fell back to a session creates no repository until something is stored.
    expect(((await (await r.call("GET", "/v2/_catalog")).json()) as { repositories: string[] }).repositories).not.toContain("dst/d");
  });

  test("identical blobs pushed to two repositories are stored once", async () => {
    const digest = await pushBlob(r, "one", "same bytes");
    await pushBlob(r, "two", "same bytes");
    const placed = await r.placement(digest, ["one", "two"]);
    expect(placed.copies).toBe(1);
    expect(placed.linked).toEqual(["one", "two"]);
    if (r.backend === "local") expect(placed.nlink).toBe(3); // pool + two repositories
  });
});

describe("manifests (end-7, end-9)", () => {
  test("PUT by tag: 201, Location by digest, Docker-Content-Digest", async () => {
    const cfg = await pushBlob(r, "m", "{}");
    void cfg;
    const body = imageManifest("{}", []);
    const res = await r.call("PUT", "/v2/m/manifests/latest", { headers: { "Content-Type": OCI_MANIFEST }, body });
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe(`/v2/m/manifests/${sha256(body)}`);
    expect(res.headers.get("docker-content-digest")).toBe(sha256(body));
  });

  test("manifests are stored byte-exact, whitespace and key order included", async () => {
    await pushBlob(r, "m", "{}");
    const body = `{\n  "schemaVersion" : 2,\n  "config": {"size": 2, "digest": "${sha256("{}")}", "mediaType": "application/vnd.oci.image.config.v1+json"},\n  "layers": [ ],\n  "mediaType": "${OCI_MANIFEST}"\n}\n`;
    expect((await r.call("PUT", "/v2/m/manifests/odd", { headers: { "Content-Type": OCI_MANIFEST }, body })).status).toBe(201);
    const got = await r.call("GET", "/v2/m/manifests/odd");
    expect(await got.text()).toBe(body);
    expect(got.headers.get("docker-content-digest")).toBe(sha256(body));
  });

  test("PUT by digest with ?tag= tags it and echoes OCI-Tag", async () => {
    await pushBlob(r, "m", "{}");
    const body = imageManifest("{}", []);
    const res = await r.call("PUT", `/v2/m/manifests/${sha256(body)}?tag=1.0&tag=1&tag=latest`, { headers: { "Content-Type": OCI_MANIFEST }, body });
    expect(res.status).toBe(201);
    expect(res.headers.get("oci-tag")).toBe("1.0, 1, latest");
    expect(await (await r.call("GET", "/v2/m/tags/list")).json()).toEqual({ name: "m", tags: ["1", "1.0", "latest"] });
  });

  test("PUT by a digest that does not match the body is DIGEST_INVALID", async () => {
    await pushBlob(r, "m", "{}");
    const res = await r.call("PUT", `/v2/m/manifests/${sha256("other")}`, { headers: { "Content-Type": OCI_MANIFEST }, body: imageManifest("{}", []) });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe("DIGEST_INVALID");
  });

  test("a manifest pushed by sha512 digest is addressable by it", async () => {
    await pushBlob(r, "m", "{}");
    const body = imageManifest("{}", []);
    expect((await r.call("PUT", `/v2/m/manifests/${sha512(body)}`, { headers: { "Content-Type": OCI_MANIFEST }, body })).status).toBe(201);
    expect(await (await r.call("GET", `/v2/m/manifests/${sha512(body)}`)).text()).toBe(body);
  });

  const invalid: [string, () => string, string, string, number?][] = [
    ["not JSON", () => "{not json", OCI_MANIFEST, "MANIFEST_INVALID"],
    ["a JSON array", () => "[]", OCI_MANIFEST, "MANIFEST_INVALID"],
    ["schema 1", () => JSON.stringify({ schemaVersion: 1, name: "m", tag: "x", fsLayers: [] }), "application/vnd.docker.distribution.manifest.v1+prettyjws", "MANIFEST_INVALID"],
    ["mediaType differs from Content-Type", () => imageManifest("{}", []), OCI_INDEX, "MANIFEST_INVALID"],
    ["no mediaType and no Content-Type", () => JSON.stringify({ schemaVersion: 2, config: { mediaType: "a/b", digest: sha256("{}"), size: 2 }, layers: [] }), "", "MANIFEST_INVALID"],
    ["a config with a malformed digest", () => JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: "a/b", digest: "sha256:nope", size: 2 }, layers: [] }), OCI_MANIFEST, "MANIFEST_INVALID"],
    ["a negative size", () => JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: "a/b", digest: sha256("{}"), size: -1 }, layers: [] }), OCI_MANIFEST, "MANIFEST_INVALID"],
    ["an index that also has layers", () => JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [], layers: [] }), OCI_INDEX, "MANIFEST_INVALID"],
    ["a missing layer blob", () => imageManifest("{}", ["not pushed"]), OCI_MANIFEST, "MANIFEST_BLOB_UNKNOWN"],
    ["a layer size that differs from the blob's", () => imageManifest("{}", []).replace('"size":2', '"size":3'), OCI_MANIFEST, "MANIFEST_INVALID"],
    ["an index listing a missing manifest", () => JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256("x"), size: 1 }] }), OCI_INDEX, "MANIFEST_BLOB_UNKNOWN"],
    ["an unknown manifest media type", () => JSON.stringify({ schemaVersion: 2, mediaType: "application/x-nope", config: {} }), "application/x-nope", "MANIFEST_INVALID"],
    // issue 9 item 7: an index lists manifests only, not the layer blob that is in the repository
    ["an index listing a layer blob", () => JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256("{}"), size: 2 }] }), OCI_INDEX, "MANIFEST_INVALID"],
    ["a Docker list listing a config blob", () => JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_LIST, manifests: [{ mediaType: "application/vnd.docker.container.image.v1+json", digest: sha256("{}"), size: 2 }] }), DOCKER_LIST, "MANIFEST_INVALID"],
    // an index child must be a manifest the repository holds, whatever media type its descriptor claims
    ["an index whose child claims a manifest type but is a layer blob", () => JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256("{}"), size: 2 }] }), OCI_INDEX, "MANIFEST_BLOB_UNKNOWN"],
    ["a Docker list whose child claims an image type but is a config blob", () => JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_LIST, manifests: [{ mediaType: DOCKER_MANIFEST, digest: sha256("{}"), size: 2 }] }), DOCKER_LIST, "MANIFEST_BLOB_UNKNOWN"],
    // issue 9 item 9: JSON must be unambiguous (image-spec); JSON.parse would keep the last value
    ["a duplicate top-level key", () => imageManifest("{}", []).replace('"layers":[]', '"layers":[],"layers":[]'), OCI_MANIFEST, "MANIFEST_INVALID"],
    ["a duplicate key inside the config descriptor", () => imageManifest("{}", []).replace('"size":2', '"size":2,"size":2'), OCI_MANIFEST, "MANIFEST_INVALID"],
    // issue 9 item 4: hostile nesting is refused by the pre-scan, not parsed
    ["nesting deeper than 64 levels", () => `{"schemaVersion":2,"annotations":${"[".repeat(60_000)}`, OCI_MANIFEST, "MANIFEST_INVALID"],
    // review of issue 9: JSON must not start with a byte order mark (RFC 8259); Go clients cannot parse it
    ["a byte order mark before the JSON", () => `\ufeff${imageManifest("{}", [])}`, OCI_MANIFEST, "MANIFEST_INVALID"],
    ["a body over max_manifest_bytes", () => JSON.stringify({ schemaVersion: 2, pad: "x".repeat(70 * 1024) }), OCI_MANIFEST, "SIZE_INVALID", 413],
  ];
  for (const [what, body, type, code, status] of invalid) {
    test(`refuses ${what} with ${status ?? 400} ${code} and stores nothing`, async () => {
      await pushBlob(r, "m", "{}");
      const headers: Record<string, string> = type ? { "Content-Type": type } : {};
      const res = await r.call("PUT", "/v2/m/manifests/bad", { headers, body: body() });
      expect(res.status).toBe(status ?? 400);
      expect(await errorCode(res)).toBe(code);
      expect((await r.call("GET", "/v2/m/manifests/bad")).status).toBe(404);
      expect(await r.registry.tags("m", undefined, undefined)).toEqual({ items: [] });
    });
  }

  test("an index child that is a blob, not a manifest, is named in the refusal; a pushed child manifest is accepted", async () => {
    const img = await pushImage(r, "m", "img", "child");
    const layer = sha256(img.layer);
    const index = (digest: string, size: number) => JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest, size }] });
    const res = await r.call("PUT", "/v2/m/manifests/idx", { headers: { "Content-Type": OCI_INDEX }, body: index(layer, img.layer.length) });
    expect(res.status).toBe(400);
    const error = ((await res.json()) as { errors: { code: string; detail: string }[] }).errors[0]!;
    expect(error.code).toBe("MANIFEST_BLOB_UNKNOWN");
    expect(error.detail).toContain(layer);
    expect((await r.call("GET", "/v2/m/manifests/idx")).status).toBe(404);
    expect((await r.call("PUT", "/v2/m/manifests/idx", { headers: { "Content-Type": OCI_INDEX }, body: index(img.digest, img.manifest.length) })).status).toBe(201);
  });

  test("a child only a dropped-in layout's index lists (not in its index.json) is a manifest a new index may list", async () => {
    const config = '{"architecture":"arm64","os":"linux"}';
    const layer = "dropped layer";
    const manifest = imageManifest(config, [layer]);
    const first = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(manifest), size: manifest.length }] });
    await r.dropLayout("dropped", [config, layer, manifest, first], JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: OCI_INDEX, digest: sha256(first), size: first.length, annotations: { "org.opencontainers.image.ref.name": "v1" } }] }));
    const second = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(manifest), size: manifest.length }], annotations: { n: "2" } });
    expect((await r.call("PUT", "/v2/dropped/manifests/v2", { headers: { "Content-Type": OCI_INDEX }, body: second })).status).toBe(201);
    const bad = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(layer), size: layer.length }] });
    expect(await errorCode(await r.call("PUT", "/v2/dropped/manifests/v3", { headers: { "Content-Type": OCI_INDEX }, body: bad }))).toBe("MANIFEST_BLOB_UNKNOWN");
  });

  test("the refusal names the duplicate key and the index entry", async () => {
    await pushBlob(r, "m", "{}");
    const dup = await r.call("PUT", "/v2/m/manifests/bad", { headers: { "Content-Type": OCI_MANIFEST }, body: imageManifest("{}", []).replace('"size":2', '"size":2,"size":2') });
    expect(((await dup.json()) as { errors: { detail: string }[] }).errors[0]!.detail).toBe('the key "size" appears twice in one object');
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256("{}"), size: 2 }] });
    const res = await r.call("PUT", "/v2/m/manifests/bad", { headers: { "Content-Type": OCI_INDEX }, body: index });
    expect(((await res.json()) as { errors: { detail: string }[] }).errors[0]!.detail).toContain(`manifests[0] (${sha256("{}")}) has media type "application/vnd.oci.image.layer.v1.tar"`);
    expect((await r.call("GET", `/v2/m/manifests/${sha256(index)}`)).status).toBe(404);
  });

  test("an invalid ?tag= is refused", async () => {
    await pushBlob(r, "m", "{}");
    const body = imageManifest("{}", []);
    const res = await r.call("PUT", `/v2/m/manifests/${sha256(body)}?tag=-bad`, { headers: { "Content-Type": OCI_MANIFEST }, body });
    expect(res.status).toBe(400);
    const error = ((await res.json()) as { errors: { code: string; detail: string }[] }).errors[0]!;
    expect(error.code).toBe("MANIFEST_INVALID");
    expect(error.detail).toContain('"-bad"');
    expect((await r.call("GET", `/v2/m/manifests/${sha256(body)}`)).status).toBe(404);
  });

  test("a body without mediaType is served with the Content-Type it was pushed with", async () => {
    await pushBlob(r, "m", "{}");
    const body = JSON.stringify({ schemaVersion: 2, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256("{}"), size: 2 }, layers: [] });
    expect((await r.call("PUT", "/v2/m/manifests/bare", { headers: { "Content-Type": OCI_MANIFEST }, body })).status).toBe(201);
    const got = await r.call("GET", "/v2/m/manifests/bare");
    expect(got.headers.get("content-type")).toBe(OCI_MANIFEST);
    expect(await got.text()).toBe(body);
    const reopened = await r.reopen();
    const again = await reopened.call("GET", "/v2/m/manifests/bare");
    expect(again.headers.get("content-type")).toBe(OCI_MANIFEST);
    await reopened[Symbol.asyncDispose]();
  });

  test("Docker v2 schema 2 manifest and manifest list are accepted and served with their types", async () => {
    await pushBlob(r, "d", "cfg");
    await pushBlob(r, "d", "layer");
    const m = JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: sha256("cfg"), size: 3 },
      layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", digest: sha256("layer"), size: 5 }],
    });
    expect((await r.call("PUT", "/v2/d/manifests/img", { headers: { "Content-Type": DOCKER_MANIFEST }, body: m })).status).toBe(201);
    const list = JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_LIST, manifests: [{ mediaType: DOCKER_MANIFEST, digest: sha256(m), size: m.length, platform: { os: "linux", architecture: "amd64" } }] });
    expect((await r.call("PUT", "/v2/d/manifests/list", { headers: { "Content-Type": DOCKER_LIST }, body: list })).status).toBe(201);
    expect((await r.call("GET", "/v2/d/manifests/img")).headers.get("content-type")).toBe(DOCKER_MANIFEST);
    expect((await r.call("GET", "/v2/d/manifests/list")).headers.get("content-type")).toBe(DOCKER_LIST);
  });

  test("a manifest with a subject answers OCI-Subject, and the subject need not exist", async () => {
    await pushBlob(r, "m", "{}");
    const subject = { mediaType: OCI_MANIFEST, digest: sha256("absent subject"), size: 14 };
    const body = imageManifest("{}", [], { artifactType: "application/vnd.example+type", subject });
    const res = await r.call("PUT", `/v2/m/manifests/${sha256(body)}`, { headers: { "Content-Type": OCI_MANIFEST }, body });
    expect(res.status).toBe(201);
    expect(res.headers.get("oci-subject")).toBe(subject.digest);
    const refs = (await (await r.call("GET", `/v2/m/referrers/${subject.digest}`)).json()) as { manifests: { digest: string; artifactType: string }[] };
    expect(refs.manifests).toEqual([{ mediaType: OCI_MANIFEST, digest: sha256(body), size: body.length, artifactType: "application/vnd.example+type" } as never]);
  });

  test("moving a tag keeps the old manifest reachable by digest", async () => {
    const a = await pushImage(r, "m", "t", "a");
    const b = await pushImage(r, "m", "t", "b");
    expect((await r.call("GET", "/v2/m/manifests/t")).headers.get("docker-content-digest")).toBe(b.digest);
    expect((await r.call("GET", `/v2/m/manifests/${a.digest}`)).status).toBe(200);
  });
});

describe("content management (end-9, end-10)", () => {
  test("DELETE by tag removes the tag only", async () => {
    const img = await pushImage(r, "m", "gone", "x");
    expect((await r.call("DELETE", "/v2/m/manifests/gone")).status).toBe(202);
    expect((await r.call("GET", "/v2/m/manifests/gone")).status).toBe(404);
    expect((await r.call("GET", `/v2/m/manifests/${img.digest}`)).status).toBe(200);
    expect(await errorCode(await r.call("DELETE", "/v2/m/manifests/gone"))).toBe("MANIFEST_UNKNOWN");
  });

  test("DELETE by digest removes the manifest and every tag pointing at it", async () => {
    const img = await pushImage(r, "m", "one", "y");
    await r.call("PUT", "/v2/m/manifests/two", { headers: { "Content-Type": OCI_MANIFEST }, body: img.manifest });
    expect((await r.call("DELETE", `/v2/m/manifests/${img.digest}`)).status).toBe(202);
    for (const ref of [img.digest, "one", "two"]) expect((await r.call("GET", `/v2/m/manifests/${ref}`)).status).toBe(404);
    expect(await errorCode(await r.call("DELETE", `/v2/m/manifests/${img.digest}`))).toBe("MANIFEST_UNKNOWN");
  });

  test("a manifest listed by an index cannot be deleted by digest", async () => {
    const img = await pushImage(r, "m", "child", "z");
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: img.digest, size: img.manifest.length }] });
    await r.call("PUT", "/v2/m/manifests/idx", { headers: { "Content-Type": OCI_INDEX }, body: index });
    const res = await r.call("DELETE", `/v2/m/manifests/${img.digest}`);
    expect(res.status).toBe(409);
    expect(await errorCode(res)).toBe("DENIED");
    expect((await r.call("GET", `/v2/m/manifests/${img.digest}`)).status).toBe(200);
    expect((await r.call("DELETE", `/v2/m/manifests/${sha256(index)}`)).status).toBe(202);
    expect((await r.call("DELETE", `/v2/m/manifests/${img.digest}`)).status).toBe(202);
  });

  test("a deleted referrer leaves the referrers list", async () => {
    await pushBlob(r, "m", "{}");
    const subject = { mediaType: OCI_MANIFEST, digest: sha256("s"), size: 1 };
    const body = imageManifest("{}", [], { subject });
    const digest = sha256(body);
    const referrers = async () => ((await (await r.call("GET", `/v2/m/referrers/${subject.digest}`)).json()) as { manifests: { digest: string }[] }).manifests;
    expect((await r.call("PUT", `/v2/m/manifests/${digest}`, { headers: { "Content-Type": OCI_MANIFEST }, body })).status).toBe(201);
    expect((await referrers()).map((m) => m.digest)).toEqual([digest]);
    expect((await r.call("DELETE", `/v2/m/manifests/${digest}`)).status).toBe(202);
    expect((await r.call("GET", `/v2/m/manifests/${digest}`)).status).toBe(404);
    expect(await referrers()).toEqual([]);
  });

  test("DELETE of a blob: 202, then 404; of an unknown blob 404", async () => {
    const digest = await pushBlob(r, "m", "bye");
    expect((await r.call("DELETE", `/v2/m/blobs/${digest}`)).status).toBe(202);
    expect((await r.call("GET", `/v2/m/blobs/${digest}`)).status).toBe(404);
    const again = await r.call("DELETE", `/v2/m/blobs/${digest}`);
    expect(again.status).toBe(404);
    expect(await errorCode(again)).toBe("BLOB_UNKNOWN");
  });

  test("a manifest cannot be deleted through the blobs endpoint", async () => {
    const img = await pushImage(r, "m", "keep", "k");
    const res = await r.call("DELETE", `/v2/m/blobs/${img.digest}`);
    expect(res.status).toBe(405);
    expect((await r.call("GET", "/v2/m/manifests/keep")).status).toBe(200);
  });
});
