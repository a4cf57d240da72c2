/**
 * A store filled through the real /v2 API for the search tests: images with real configs
 * (platform, created time, labels, history), a multi-platform index, a derived image that
 * shares its base's layers, a referrer (an SBOM), and a second repository.
 */
import { expect } from "bun:test";
import { type TestRegistry, imageManifest, pushBlob, sha256 } from "../helpers/registry";
import { OCI_INDEX, OCI_MANIFEST } from "../../daemon/oci/mediatypes";

/** A pushed image. */
export interface Pushed {
  digest: string;
  manifest: string;
  config: string;
  layers: string[];
}

/** Pushes an image with a realistic config; returns what was pushed. */
export async function pushConfigured(
  r: TestRegistry,
  repo: string,
  reference: string,
  o: { os?: string; arch?: string; created: string; layers: string[]; labels?: Record<string, string>; annotations?: Record<string, string> },
): Promise<Pushed> {
  const config = JSON.stringify({
    architecture: o.arch ?? "amd64",
    os: o.os ?? "linux",
    created: o.created,
    config: { Labels: o.labels ?? {} },
    rootfs: { type: "layers", diff_ids: o.layers.map((l) => sha256(l)) },
    history: o.layers.map((l, i) => ({ created: o.created, created_by: `RUN step ${i} ${l}` })),
  });
  await pushBlob(r, repo, config);
  for (const l of o.layers) await pushBlob(r, repo, l);
  const manifest = imageManifest(config, o.layers, o.annotations ? { annotations: o.annotations } : {});
  const res = await r.call("PUT", `/v2/${repo}/manifests/${reference}`, { headers: { "Content-Type": OCI_MANIFEST }, body: manifest });
  expect(res.status).toBe(201);
  return { digest: sha256(manifest), manifest, config, layers: o.layers };
}

/** What {@link fill} pushed. */
export interface Filled {
  base: Pushed;
  app: Pushed;
  arm: Pushed;
  amd: Pushed;
  index: { digest: string; body: string };
  sbom: { digest: string; body: string };
  other: Pushed;
}

/** Fills `r`: lib/base:1.0, lib/app:2.0 (derived from base), lib/multi:latest (index amd64+arm64), secret/db:1 and an SBOM of lib/app:2.0. */
export async function fill(r: TestRegistry): Promise<Filled> {
  const base = await pushConfigured(r, "lib/base", "1.0", {
    created: "2024-01-01T00:00:00Z",
    layers: ["base layer one", "base layer two"],
    labels: { "org.opencontainers.image.vendor": "Base Corp" },
  });
  const app = await pushConfigured(r, "lib/app", "2.0", {
    created: "2024-03-01T00:00:00Z",
    layers: ["base layer one", "base layer two", "app layer"],
    annotations: { "org.opencontainers.image.title": "The app", "org.opencontainers.image.description": "An app on base", "org.opencontainers.image.licenses": "MIT" },
  });
  const amd64 = await pushConfigured(r, "lib/multi", "amd64-only", { created: "2024-02-01T00:00:00Z", arch: "amd64", layers: ["multi amd64"] });
  const arm64 = await pushConfigured(r, "lib/multi", "arm64-only", { created: "2024-02-02T00:00:00Z", arch: "arm64", layers: ["multi arm64"] });
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      { mediaType: OCI_MANIFEST, digest: amd64.digest, size: Buffer.byteLength(amd64.manifest), platform: { os: "linux", architecture: "amd64" } },
      { mediaType: OCI_MANIFEST, digest: arm64.digest, size: Buffer.byteLength(arm64.manifest), platform: { os: "linux", architecture: "arm64" } },
    ],
  });
  expect((await r.call("PUT", "/v2/lib/multi/manifests/latest", { headers: { "Content-Type": OCI_INDEX }, body })).status).toBe(201);
  const empty = "{}";
  await pushBlob(r, "lib/app", empty);
  await pushBlob(r, "lib/app", "sbom payload");
  const sbom = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: "application/spdx+json",
    config: { mediaType: "application/vnd.oci.empty.v1+json", digest: sha256(empty), size: 2 },
    layers: [{ mediaType: "application/spdx+json", digest: sha256("sbom payload"), size: 12 }],
    subject: { mediaType: OCI_MANIFEST, digest: app.digest, size: Buffer.byteLength(app.manifest) },
    annotations: { "org.example.kind": "sbom" },
  });
  expect((await r.call("PUT", `/v2/lib/app/manifests/${sha256(sbom)}`, { headers: { "Content-Type": OCI_MANIFEST }, body: sbom })).status).toBe(201);
  const other = await pushConfigured(r, "secret/db", "1", { created: "2024-05-01T00:00:00Z", layers: ["base layer one", "base layer two", "secret layer"] });
  return { base, app, arm: arm64, amd: amd64, index: { digest: sha256(body), body }, sbom: { digest: sha256(sbom), body: sbom }, other };
}

/** POSTs a GraphQL query to the search endpoint; returns status and parsed body. */
export async function gql(r: TestRegistry, query: string, variables?: Record<string, unknown>, headers: Record<string, string> = {}): Promise<{ status: number; body: { data?: Record<string, any> | null; errors?: { message: string }[] } }> {
  const res = await r.handle(new Request("http://registry.test/v2/_zot/ext/search", {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(variables ? { query, variables } : { query }),
  }));
  return { status: res.status, body: (await res.json()) as never };
}
