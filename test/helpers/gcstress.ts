/**
 * GC against concurrent pushes, over HTTP against a running daemon: shared by the
 * regression test (a few seconds) and scripts/stress-gc.ts (minutes). Clients push images
 * (and now and then an index over one) the way real clients do — blobs first, a shared
 * layer skipped when HEAD finds it, an abandoned upload here and there — while garbage
 * collection passes run back to back through the admin API. Afterwards every manifest that
 * was acknowledged with 201 must be complete: the manifest by its tag, and every blob it
 * needs (its own bytes, config, layers, an index's children) by GET, with the right digest.
 * A refused manifest push must be MANIFEST_BLOB_UNKNOWN (a blob collected before the
 * manifest arrived), never anything else.
 */
import { OCI_INDEX, OCI_MANIFEST } from "../../daemon/oci/mediatypes";
import { sha256 as sha } from "./clients";

/** Options for {@link runGcStress}. */
export interface GcStressOptions {
  /** Base URL of the daemon, e.g. http://127.0.0.1:5000. */
  url: string;
  clients: number;
  /** How long clients push; GC runs until they stop. */
  durationMs: number;
  /** Repositories the clients spread over. */
  repositories?: number;
  /** Bytes of each client's own layer. */
  layerBytes?: number;
  /** Random pause of up to this many ms between a push's blobs and its manifest (a client's think time). */
  thinkMs?: number;
  /** Random pause of up to this many ms between GC passes (0: back to back). */
  gcGapMs?: number;
  /** Called with a line of progress now and then (the script prints it). */
  progress?: (line: string) => void;
}

/** What a run found. */
export interface GcStressResult {
  acknowledged: number;
  indexes: number;
  /** Acknowledged images with a manifest or blob missing or wrong afterwards. */
  broken: string[];
  /** Manifest pushes refused with MANIFEST_BLOB_UNKNOWN (allowed). */
  refusedBlobUnknown: number;
  /** Anything else: a refused push with another code, a 5xx, a failed GC call. */
  errors: string[];
  gcPasses: number;
  blobsCollected: number;
  poolCollected: number;
  manifestsCollected: number;
  manifestsChecked: number;
  blobsChecked: number;
}


interface Acked {
  repo: string;
  tag: string;
  body: string;
  blobs: { digest: string; bytes: string }[];
}

/** Runs clients and GC passes for `durationMs`, then checks everything acknowledged. */
export async function runGcStress(o: GcStressOptions): Promise<GcStressResult> {
  const result: GcStressResult = { acknowledged: 0, indexes: 0, broken: [], refusedBlobUnknown: 0, errors: [], gcPasses: 0, blobsCollected: 0, poolCollected: 0, manifestsCollected: 0, manifestsChecked: 0, blobsChecked: 0 };
  const repos = o.repositories ?? 4;
  const layerBytes = o.layerBytes ?? 4096;
  const acked: Acked[] = [];
  const deadline = Date.now() + o.durationMs;
  let stop = false;
  const note = (e: string) => {
    if (result.errors.length < 50) result.errors.push(e);
  };

  const uploadBlob = async (repo: string, bytes: string): Promise<boolean> => {
    const res = await fetch(`${o.url}/v2/${repo}/blobs/uploads/?digest=${sha(bytes)}`, { method: "POST", body: bytes });
    await res.arrayBuffer();
    if (res.status !== 201) note(`blob upload to ${repo}: ${res.status}`);
    return res.status === 201;
  };
  const putManifest = async (repo: string, ref: string, type: string, body: string): Promise<"ok" | "refused" | "error"> => {
    const res = await fetch(`${o.url}/v2/${repo}/manifests/${ref}`, { method: "PUT", headers: { "Content-Type": type }, body });
    const text = await res.text();
    if (res.status === 201) return "ok";
    if (res.status === 400 && text.includes('"MANIFEST_BLOB_UNKNOWN"')) {
      result.refusedBlobUnknown++;
      return "refused";
    }
    note(`manifest PUT ${repo}:${ref}: ${res.status} ${text.slice(0, 200)}`);
    return "error";
  };

  const client = async (c: number) => {
    for (let n = 0; Date.now() < deadline; n++) {
      const repo = `stress/r${(c + n) % repos}`;
      const tag = `c${c}-n${n}`;
      const config = JSON.stringify({ architecture: "arm64", os: "linux", client: c, n });
      const own = `${tag} `.repeat(Math.ceil(layerBytes / (tag.length + 1))).slice(0, layerBytes);
      const shared = `shared layer ${n % 5} `.repeat(200);
      if (!(await uploadBlob(repo, config)) || !(await uploadBlob(repo, own))) continue;
      // As clients do: a layer the registry already has is not uploaded again.
      const head = await fetch(`${o.url}/v2/${repo}/blobs/${sha(shared)}`, { method: "HEAD" });
      if (head.status !== 200 && !(await uploadBlob(repo, shared))) continue;
      if (n % 7 === 3) await uploadBlob(repo, `abandoned ${tag}`); // a push that never sends its manifest: garbage
      if (o.thinkMs) await Bun.sleep(Math.random() * o.thinkMs);
      const manifest = JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length },
        layers: [own, shared].map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha(l), size: l.length })),
      });
      const image = { digest: sha(manifest), bytes: manifest };
      const blobs = [image, { digest: sha(config), bytes: config }, { digest: sha(own), bytes: own }, { digest: sha(shared), bytes: shared }];
      if (n % 4 === 0) {
        // An index over the image: the child by digest, then the index by tag.
        if ((await putManifest(repo, image.digest, OCI_MANIFEST, manifest)) !== "ok") continue;
        const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: image.digest, size: manifest.length }] });
        if ((await putManifest(repo, tag, OCI_INDEX, index)) !== "ok") continue;
        acked.push({ repo, tag, body: index, blobs: [{ digest: sha(index), bytes: index }, ...blobs] });
        result.indexes++;
      } else {
        if ((await putManifest(repo, tag, OCI_MANIFEST, manifest)) !== "ok") continue;
        acked.push({ repo, tag, body: manifest, blobs });
      }
      result.acknowledged++;
    }
  };

  const gcPass = async () => {
    const res = await fetch(`${o.url}/api/v1/storage/gc`, { method: "POST" });
    if (res.status !== 200) {
      note(`gc: ${res.status} ${(await res.text()).slice(0, 200)}`);
      return;
    }
    const report = (await res.json()) as { blobs: unknown[]; pool: unknown[]; manifests: unknown[] };
    result.gcPasses++;
    result.blobsCollected += report.blobs.length;
    result.poolCollected += report.pool.length;
    result.manifestsCollected += report.manifests.length;
  };
  const gcLoop = (async () => {
    let lastReport = Date.now();
    while (!stop) {
      await gcPass();
      if (o.gcGapMs) await Bun.sleep(Math.random() * o.gcGapMs);
      if (o.progress && Date.now() - lastReport >= 10_000) {
        lastReport = Date.now();
        o.progress(`${result.acknowledged} acknowledged, ${result.refusedBlobUnknown} refused (MANIFEST_BLOB_UNKNOWN), ${result.gcPasses} GC passes, ${result.blobsCollected} blobs collected`);
      }
    }
  })();
  await Promise.all(Array.from({ length: o.clients }, (_, c) => client(c)));
  stop = true;
  await gcLoop;
  await gcPass(); // one more with nothing in flight: it must not break anything either

  for (const a of acked) {
    const problems: string[] = [];
    const res = await fetch(`${o.url}/v2/${a.repo}/manifests/${a.tag}`);
    result.manifestsChecked++;
    if (res.status !== 200 || (await res.text()) !== a.body) problems.push(`manifest ${res.status}`);
    for (const b of a.blobs) {
      const blob = await fetch(`${o.url}/v2/${a.repo}/blobs/${b.digest}`);
      result.blobsChecked++;
      if (blob.status !== 200) problems.push(`${b.digest} ${blob.status}`);
      else if (sha(new Uint8Array(await blob.arrayBuffer())) !== b.digest) problems.push(`${b.digest} wrong bytes`);
    }
    if (problems.length > 0) result.broken.push(`${a.repo}:${a.tag}: ${problems.join(", ")}`);
  }
  return result;
}
