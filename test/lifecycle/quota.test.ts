/**
 * Quota and eviction: a push that would cross the store's quota evicts the least recently
 * pulled evictable image, never a pinned one; with nothing evictable it is refused with 507
 * and a message, and everything stored stays intact. Prefix quotas and the free-space floor.
 */
import { describe, expect, test } from "bun:test";
import { createLifecycleRegistry, testLifecycleOptions } from "../helpers/lifecycle";
import { pushBlob, pushImage, sha256 } from "../helpers/registry";

const quota = (over: Partial<ReturnType<typeof testLifecycleOptions>["quota"]>) => ({ quota: { ...testLifecycleOptions().quota, ...over } });
const big = (seed: string, n = 40_000) => seed.repeat(Math.ceil(n / seed.length)).slice(0, n);

describe("quota and eviction", () => {
  test("a push over the quota evicts the least recently pulled evictable image; pinned content stays", async () => {
    await using r = await createLifecycleRegistry(quota({ maxBytes: 150_000, evictable: ["mirror/**"], pinned: ["mirror/base:keep"] }));
    await pushBlob(r, "mirror/base", big("pinned "));
    const pinnedImg = await pushImage(r, "mirror/base", "keep", "pinned image");
    const a = await pushBlob(r, "mirror/app", big("old a "));
    const b = await pushBlob(r, "mirror/app", big("new b "));
    const cfg = JSON.stringify({ architecture: "amd64", os: "linux" });
    await pushBlob(r, "mirror/app", cfg);
    const manifest = (layer: string) => JSON.stringify({
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(cfg), size: cfg.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer, size: 40_000 }],
    });
    for (const [tag, layer] of [["a", a], ["b", b]] as const) {
      expect((await r.call("PUT", `/v2/mirror/app/manifests/${tag}`, { headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" }, body: manifest(layer) })).status).toBe(201);
    }
    // The pinned layer blob is not referenced by a manifest; reference it so GC keeps it.
    r.lifecycle.usage.get("mirror/app", "a")!.pushedAt = Date.now() - 10_000;
    expect((await r.call("GET", "/v2/mirror/app/manifests/b")).status).toBe(200); // b pulled now
    // ~120 KB stored; 40 KB more crosses 150 KB: "a" (least recently used) must go.
    const res = await r.call("POST", `/v2/local/blobs/uploads/?digest=${sha256(big("local "))}`, { body: big("local ") });
    expect(res.status).toBe(201);
    expect((await r.call("GET", "/v2/mirror/app/manifests/a")).status).toBe(404);
    expect((await r.call("GET", `/v2/mirror/app/blobs/${a}`)).status).toBe(404);
    expect((await r.call("GET", "/v2/mirror/app/manifests/b")).status).toBe(200);
    expect(await (await r.call("GET", "/v2/mirror/base/manifests/keep")).text()).toBe(pinnedImg.manifest);
    expect(r.lifecycle.evictor.history.map((h) => h.tag)).toEqual(["a"]);
  });

  test("what sync serves is evictable and what sync pins is not, with no eviction patterns configured", async () => {
    await using r = await createLifecycleRegistry(quota({ maxBytes: 110_000 }));
    r.lifecycle.evictor.setUpstreamPolicy({
      serves: (repo) => repo.startsWith("cache/"),
      pinned: (repo, tag) => repo === "cache/app" && tag === "pinned",
    });
    const pinned = await pushImage(r, "cache/app", "pinned", big("pinned layer ", 18_000));
    await pushImage(r, "cache/app", "loose", big("loose layer ", 18_000));
    r.lifecycle.usage.get("cache/app", "loose")!.pushedAt = Date.now() - 10_000;
    const res = await r.call("POST", `/v2/local/blobs/uploads/?digest=${sha256(big("local "))}`, { body: big("local ") });
    expect(res.status).toBe(201);
    expect((await r.call("GET", "/v2/cache/app/manifests/loose")).status).toBe(404);
    expect(await (await r.call("GET", "/v2/cache/app/manifests/pinned")).text()).toBe(pinned.manifest);
    expect(r.lifecycle.evictor.history.map((h) => h.tag)).toEqual(["loose"]);
  });

  test("with nothing evictable the push is refused with 507 DENIED saying why, and nothing is lost", async () => {
    await using r = await createLifecycleRegistry(quota({ maxBytes: 60_000 }));
    const img = await pushImage(r, "app", "v1", "stays");
    const first = await pushBlob(r, "app", big("first "));
    const data = big("too much ");
    const res = await r.call("POST", `/v2/app/blobs/uploads/?digest=${sha256(data)}`, { body: data, headers: { "Content-Length": String(data.length) } });
    expect(res.status).toBe(507);
    const err = ((await res.json()) as { errors: { code: string; detail: string }[] }).errors[0]!;
    expect(err.code).toBe("DENIED");
    expect(err.detail).toContain("quota of 60000 bytes");
    expect((await r.call("HEAD", `/v2/app/blobs/${sha256(data)}`)).status).toBe(404);
    expect(await (await r.call("GET", "/v2/app/manifests/v1")).text()).toBe(img.manifest);
    expect((await r.call("HEAD", `/v2/app/blobs/${first}`)).status).toBe(200);
    // A streamed (chunked, no length) upload is refused during streaming, and the session survives at its offset.
    const start = await r.call("POST", "/v2/app/blobs/uploads/");
    const location = start.headers.get("location")!;
    const body = new ReadableStream<Uint8Array>({ start(c) { for (let i = 0; i < 3; i++) c.enqueue(new TextEncoder().encode(big(`chunk${i} `, 600_000))); c.close(); } });
    const patch = await r.call("PATCH", location, { body });
    expect(patch.status).toBe(507);
    expect((await r.call("GET", location)).headers.get("range")).toBe("0-0");
  });

  test("a prefix quota applies to its repositories only; the free-space floor refuses with its own message", async () => {
    await using r = await createLifecycleRegistry(quota({ prefixes: [{ prefix: "team/", maxBytes: 50_000 }] }));
    await pushBlob(r, "team/a", big("one "));
    const over = big("two ");
    const res = await r.call("POST", `/v2/team/b/blobs/uploads/?digest=${sha256(over)}`, { body: over, headers: { "Content-Length": String(over.length) } });
    expect(res.status).toBe(507);
    expect(((await res.json()) as { errors: { detail: string }[] }).errors[0]!.detail).toContain('under "team/"');
    expect((await r.call("POST", `/v2/elsewhere/blobs/uploads/?digest=${sha256(over)}`, { body: over })).status).toBe(201);

    await using f = await createLifecycleRegistry(quota({ minFree: { percent: 100 } }));
    const floor = await f.call("POST", `/v2/x/blobs/uploads/?digest=${sha256("x")}`, { body: "x", headers: { "Content-Length": "1" } });
    expect(floor.status).toBe(507);
    expect(((await floor.json()) as { errors: { detail: string }[] }).errors[0]!.detail).toContain("must stay free");
    const m = await f.call("PUT", "/v2/x/manifests/v1", { headers: { "Content-Type": "application/vnd.oci.image.index.v1+json" }, body: JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] }) });
    expect(m.status).toBe(507);
  });
});
