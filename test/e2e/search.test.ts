/**
 * The search API in the real daemon (main.ts wiring, `[search]` config): an image pushed over
 * HTTP is found by GlobalSearch with its platform and pull count, `/v2/_oci/ext/discover`
 * lists the extension, and with `[search] enabled = false` both say search is not there.
 */
import { expect, test } from "bun:test";
import { startDaemon } from "../helpers/daemon";
import { sha256 } from "../helpers/clients";

async function push(url: string, repo: string, tag: string): Promise<string> {
  const config = JSON.stringify({ architecture: "arm64", os: "linux", created: "2024-04-01T10:00:00Z" });
  const layer = "e2e layer";
  for (const blob of [config, layer]) {
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, { method: "POST", body: blob });
    expect(res.status).toBe(201);
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(layer), size: layer.length }],
  });
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: "PUT", headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" }, body: manifest });
  expect(res.status).toBe(201);
  return sha256(manifest);
}

const search = (url: string, query: string) => fetch(`${url}/v2/_zot/ext/search?query=${encodeURIComponent(query)}`);

test("search is on by default: a pushed image is found with its platform, time and pulls", async () => {
  await using d = await startDaemon();
  const digest = await push(d.url, "edge/sensor", "1.2");
  expect((await fetch(`${d.url}/v2/edge/sensor/manifests/1.2`)).status).toBe(200);
  const res = await search(d.url, `{ GlobalSearch(query: "edge/sensor:1") { Page { TotalCount } Images { RepoName Tag Digest LastUpdated DownloadCount Manifests { Platform { Os Arch } } } } }`);
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({
    data: { GlobalSearch: { Page: { TotalCount: 1 }, Images: [{ RepoName: "edge/sensor", Tag: "1.2", Digest: digest, LastUpdated: "2024-04-01T10:00:00Z", DownloadCount: 1, Manifests: [{ Platform: { Os: "linux", Arch: "arm64" } }] }] } },
  });
  const discover = (await (await fetch(`${d.url}/v2/_oci/ext/discover`)).json()) as { extensions: { endpoints: string[] }[] };
  expect(discover.extensions[0]!.endpoints).toEqual(["/v2/_zot/ext/search"]);
});

test("[search] enabled = false: 404 in the OCI error format and nothing discovered", async () => {
  await using d = await startDaemon({ extra: "[search]\nenabled = false\n" });
  const res = await search(d.url, "{ ImageList(repo: \"\") { Page { TotalCount } } }");
  expect(res.status).toBe(404);
  expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("UNSUPPORTED");
  expect(await (await fetch(`${d.url}/v2/_oci/ext/discover`)).json()).toEqual({ extensions: [] });
});
