/**
 * Writes small bundles for tests without a daemon: images given as strings (config,
 * layers), stored as an oci-archive with berth's annotations (daemon/bundle/format.ts).
 */
import { createHash } from "node:crypto";
import { REF_NAME, REPO_ANNOTATION } from "../../daemon/bundle/format";
import { TarWriter } from "../../daemon/bundle/tar";

/** One image of a test bundle: its manifest text and the blobs it references. */
export interface TestImage {
  repo: string;
  tag: string;
  manifest: string;
  blobs: string[];
}

const sha256 = (s: string) => `sha256:${createHash("sha256").update(s).digest("hex")}`;

/** Writes `images` as one bundle at `file`. */
export async function writeBundle(file: string, images: TestImage[]): Promise<void> {
  const enc = new TextEncoder();
  const tar = await TarWriter.create(file);
  const layout = enc.encode('{"imageLayoutVersion":"1.0.0"}');
  await tar.file("oci-layout", layout.length, [layout]);
  const entries = images.map((i) => ({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: sha256(i.manifest), size: Buffer.byteLength(i.manifest), annotations: { [REPO_ANNOTATION]: i.repo, [REF_NAME]: `${i.repo}:${i.tag}` } }));
  const index = enc.encode(JSON.stringify({ schemaVersion: 2, manifests: entries }));
  await tar.file("index.json", index.length, [index]);
  const seen = new Set<string>();
  for (const text of images.flatMap((i) => [i.manifest, ...i.blobs])) {
    const d = sha256(text);
    if (seen.has(d)) continue;
    seen.add(d);
    const bytes = enc.encode(text);
    await tar.file(`blobs/sha256/${d.slice(7)}`, bytes.length, [bytes]);
  }
  await tar.close();
}
