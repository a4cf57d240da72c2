/**
 * Generated stores for the scale scripts (scale.ts, startup.ts): OCI layouts written straight
 * into a storage root, which berth serves as dropped-in layouts. Each repository holds 10
 * manifests (tags t0..t9) over one config and one layer of its own, so 100,000 manifests are
 * 10,000 repositories named gen/g<r/100>/r<r>.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The OCI image manifest media type. */
export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** The sha256 digest of `b`, as "sha256:<hex>". */
export const sha = (b: Uint8Array | string) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;

/** The name of generated repository number `r`. */
export const repoName = (r: number) => `gen/g${Math.floor(r / 100)}/r${r}`;

/** A small image manifest over `config` and one `layer`, made unique by `note`. */
export function manifestOf(config: { digest: string; size: number }, layer: { digest: string; size: number }, note: string): string {
  return JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
    annotations: { "berth.scale": note },
  });
}

/** Writes `manifests` manifests as OCI layouts under `root`, 10 per repository. */
export function generate(root: string, manifests: number): void {
  for (let r = 0; r < Math.ceil(manifests / 10); r++) {
    const name = repoName(r);
    const dir = join(root, name);
    const blobs = join(dir, "blobs", "sha256");
    mkdirSync(blobs, { recursive: true });
    const put = (bytes: string) => {
      const d = sha(bytes);
      writeFileSync(join(blobs, d.slice(7)), bytes);
      return { digest: d, size: Buffer.byteLength(bytes) };
    };
    const config = put(JSON.stringify({ architecture: "arm64", os: "linux", repo: name }));
    const layer = put(`layer of ${name}`);
    const entries = [];
    for (let t = 0; t < 10 && r * 10 + t < manifests; t++) {
      const m = put(manifestOf(config, layer, `${name}:${t}`));
      entries.push({ mediaType: OCI_MANIFEST, ...m, annotations: { "org.opencontainers.image.ref.name": `t${t}` } });
    }
    writeFileSync(join(dir, "oci-layout"), `{"imageLayoutVersion":"1.0.0"}\n`);
    writeFileSync(join(dir, "index.json"), `${JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: entries })}\n`);
  }
}
