/**
 * `berth bundle import FILE`: loads a bundle (berth's or any oci-archive, see format.ts)
 * into a running registry over HTTP, so every byte enters through the registry's one ingest
 * path (digest verified, quota and free space admitted, flushed, power-cut safe) and every
 * manifest through its manifest PUT (references checked, tags written atomically), under the
 * caller's push rights.
 *
 * Order, so that nothing partial is visible: the archive's headers are read first (a
 * truncated or damaged archive fails before anything is written), then index.json and every
 * manifest are read and verified against their digests, push rights are probed on every
 * target repository (an upload session opened and cancelled), and only then does writing
 * start, image by image: its missing blobs (each verified by the registry, and hashed here
 * too for a clear message), its child manifests by digest, and last the manifest under its
 * tag. A tag therefore never points at an image that is not whole. Referrers come after the
 * images they refer to.
 *
 * Resumable and idempotent: what is in the registry (HEAD) is skipped, so a rerun after a
 * power cut or a kill continues where the committed state ends, and a second run changes
 * nothing. `dryRun` reports the same plan without writing.
 */
import { ClientError, EXIT } from "../client/errors";
import type { ProgressState } from "../client/output";
import { createHasher } from "../platform/hash";
import type { Algorithm } from "../oci/digest";
import { declaredType, entryTarget, type IndexEntry, MAX_DOC, parseDoc } from "./format";
import { entryChunks, readEntry, scanTar, type TarEntry, TarError } from "./tar";

/**
 * Where an import writes: a running registry over HTTP (remote.ts, `httpTarget`) or, in
 * the daemon and offline on a root, the registry and storage in process (local.ts).
 */
export interface ImportTarget {
  /** The digest `tag` of `repo` points at, or undefined. */
  tagged(repo: string, tag: string): Promise<string | undefined>;
  hasManifest(repo: string, digest: string): Promise<boolean>;
  hasBlob(repo: string, digest: string): Promise<boolean>;
  /** Throws a ClientError (exit 4) when the caller may not push to `repo`; writes nothing. */
  mayPush(repo: string): Promise<void>;
  /**
   * Stores `size` bytes from `chunks` as blob `digest` of `repo` through the one ingest
   * path. The iteration throws (and nothing is stored) when the bundle's bytes are bad.
   */
  putBlob(repo: string, digest: string, size: number, chunks: AsyncIterable<Uint8Array>): Promise<void>;
  /** Stores manifest bytes under `reference` (a tag, or its digest). */
  putManifest(repo: string, reference: string, mediaType: string, bytes: Uint8Array): Promise<void>;
}

/** What an import reports its progress to (a ProgressBar, or a task of the admin API). */
export interface ImportProgress {
  update(p: ProgressState): void;
  finish(): void;
}

/** Options of {@link importBundle}. */
export interface ImportOptions {
  /** Repository for entries that name none (an archive made by another tool). */
  repo?: string;
  dryRun?: boolean;
  /** Upper bound on the upload rate, bytes per second (spares the device's IO). */
  rateBytes?: number;
  progress?: ImportProgress;
}

/** One image (tagged or not) of the bundle and what importing it did or would do. */
export interface ImportedEntry {
  repo: string;
  tag?: string;
  digest: string;
  /** new: not there; update: the tag pointed elsewhere (`was`); unchanged: already there. */
  state: "new" | "update" | "unchanged";
  was?: string;
  blobs: number;
  bytes: number;
}

/** What an import did (or, dry, would do). */
export interface ImportReport {
  dryRun: boolean;
  entries: ImportedEntry[];
  blobsUploaded: number;
  bytesUploaded: number;
  manifestsPut: number;
}

interface Planned {
  entry: IndexEntry;
  repo: string;
  tag?: string;
  /**
   * Manifests children first, root last, with where their bytes are in the bundle (none: the
   * target holds it). Bytes are read again (and verified again) when written, so a plan of
   * many images holds no manifest bodies in memory.
   */
  manifests: { digest: string; at?: TarEntry; mediaType: string }[];
  blobs: Map<string, number>;
  subject?: string;
}

/** Reads, verifies and imports the bundle at `file`. */
export async function importBundle(target: ImportTarget, file: string, options: ImportOptions = {}): Promise<ImportReport> {
  const files = await scanTar(file).catch((err) => {
    if (err instanceof TarError) throw new ClientError(`"${file}" is not a usable bundle: ${err.message}`, EXIT.error);
    throw new ClientError(`cannot read "${file}": ${(err as Error).message}`, EXIT.error);
  });
  const blobPath = (digest: string) => `blobs/${digest.replace(":", "/")}`;
  const readDoc = async (name: string, entry: TarEntry) => {
    if (entry.size > MAX_DOC) throw new ClientError(`"${name}" in the bundle has ${entry.size} bytes, more than ${MAX_DOC}`, EXIT.error);
    return readEntry(file, entry);
  };
  if (!files.has("oci-layout")) throw new ClientError(`"${file}" is not an OCI image layout archive (no oci-layout file)`, EXIT.error);
  const indexFile = files.get("index.json");
  if (!indexFile) throw new ClientError(`"${file}" is not an OCI image layout archive (no index.json)`, EXIT.error);
  let index: { manifests?: IndexEntry[] };
  try {
    index = JSON.parse(new TextDecoder().decode(await readDoc("index.json", indexFile)));
  } catch {
    throw new ClientError(`the index.json of "${file}" is not JSON`, EXIT.error);
  }
  if (!Array.isArray(index.manifests)) throw new ClientError(`the index.json of "${file}" lists no manifests`, EXIT.error);

  // Plan: every manifest read and verified before anything is written.
  const plans: Planned[] = [];
  for (const entry of index.manifests) {
    const { repo, tag } = entryTarget(entry, options.repo);
    const plan: Planned = { entry, repo, ...(tag !== undefined && { tag }), manifests: [], blobs: new Map() };
    const visit = async (digest: string, fallbackType: string, root: boolean) => {
      if (plan.manifests.some((m) => m.digest === digest)) return;
      const at = files.get(blobPath(digest));
      if (!at) {
        // an incremental bundle may leave out what the target holds, but a tag can only be set from the bytes
        const held = root && tag !== undefined ? (await target.tagged(repo, tag)) === digest : await target.hasManifest(repo, digest);
        if (held) return void plan.manifests.push({ digest, mediaType: fallbackType });
        throw new ClientError(`the bundle lacks manifest ${digest} of ${repo}${tag ? `:${tag}` : ""}, and ${repo} does not hold it`, EXIT.error);
      }
      const bytes = await readDoc(digest, at);
      verify(digest, bytes, "manifest");
      const mediaType = declaredType(bytes, fallbackType);
      const parsed = parseDoc(bytes, mediaType, digest);
      for (const c of parsed.manifests) await visit(c.digest, c.mediaType, false);
      for (const b of parsed.blobs) plan.blobs.set(b.digest, b.size);
      if (root && parsed.subject) plan.subject = parsed.subject.digest;
      plan.manifests.push({ digest, at, mediaType });
    };
    await visit(entry.digest, entry.mediaType, true);
    plans.push(plan);
  }
  // images first, then what refers to them
  plans.sort((a, b) => Number(a.subject !== undefined) - Number(b.subject !== undefined));

  const repos = [...new Set(plans.map((p) => p.repo))];
  if (!options.dryRun) for (const repo of repos) await target.mayPush(repo);

  const report: ImportReport = { dryRun: options.dryRun === true, entries: [], blobsUploaded: 0, bytesUploaded: 0, manifestsPut: 0 };
  const totalBytes = plans.reduce((a, p) => a + [...p.blobs.values()].reduce((x, y) => x + y, 0), 0);
  const progress = { done: 0, total: plans.length, bytes: 0, totalBytes };
  const limiter = rateLimiter(options.rateBytes);
  try {
    for (const plan of plans) {
      const root = plan.manifests[plan.manifests.length - 1]!;
      const current = plan.tag !== undefined ? await target.tagged(plan.repo, plan.tag) : (await target.hasManifest(plan.repo, root.digest)) ? root.digest : undefined;
      const item: ImportedEntry = { repo: plan.repo, ...(plan.tag !== undefined && { tag: plan.tag }), digest: root.digest, state: current === root.digest ? "unchanged" : current ? "update" : "new", blobs: 0, bytes: 0 };
      if (current && current !== root.digest) item.was = current;
      report.entries.push(item);
      if (item.state !== "unchanged") {
        for (const [digest, size] of plan.blobs) {
          if (await target.hasBlob(plan.repo, digest)) {
            progress.bytes += size;
            continue;
          }
          const at = files.get(blobPath(digest));
          if (!at) throw new ClientError(`the bundle lacks blob ${digest} of ${plan.repo}${plan.tag ? `:${plan.tag}` : ""}, and ${plan.repo} does not hold it (an incremental bundle made for another target?)`, EXIT.error);
          if (at.size !== size) throw new ClientError(`blob ${digest} in the bundle has ${at.size} bytes, not the ${size} its manifest says`, EXIT.error);
          item.blobs++;
          item.bytes += size;
          if (options.dryRun) continue;
          await target.putBlob(plan.repo, digest, size, verifiedChunks(file, at, digest, async (n) => {
            progress.bytes += n;
            options.progress?.update(progress);
            await limiter(n);
          }));
          report.blobsUploaded++;
          report.bytesUploaded += size;
        }
        if (!options.dryRun) {
          for (const m of plan.manifests) {
            const last = m === root;
            if (!m.at) continue; // held by the target already (checked while planning)
            if (!last && (await target.hasManifest(plan.repo, m.digest))) continue;
            const bytes = await readDoc(m.digest, m.at);
            verify(m.digest, bytes, "manifest");
            await target.putManifest(plan.repo, last && plan.tag !== undefined ? plan.tag : m.digest, m.mediaType, bytes);
            report.manifestsPut++;
          }
        }
      } else progress.bytes += [...plan.blobs.values()].reduce((x, y) => x + y, 0);
      progress.done++;
      options.progress?.update(progress);
    }
  } finally {
    options.progress?.finish();
  }
  return report;
}

function algorithmOf(digest: string): Algorithm {
  const alg = digest.slice(0, digest.indexOf(":"));
  if (alg !== "sha256" && alg !== "sha512") throw new ClientError(`digest "${digest}" in the bundle has an unsupported algorithm`, EXIT.error);
  return alg;
}

function verify(digest: string, bytes: Uint8Array, what: string): void {
  const h = createHasher(algorithmOf(digest));
  h.update(bytes);
  const actual = `${algorithmOf(digest)}:${h.hex()}`;
  if (actual !== digest) throw new ClientError(`the bundle is corrupt: ${what} ${digest} hashes to ${actual}`, EXIT.error);
}

/** One blob's bytes from the bundle, hashed on the way: the iteration throws at the end when they do not match `digest`. */
async function* verifiedChunks(file: string, at: TarEntry, digest: string, onChunk: (n: number) => Promise<void>): AsyncGenerator<Uint8Array> {
  const h = createHasher(algorithmOf(digest));
  try {
    for await (const chunk of entryChunks(file, at)) {
      h.update(chunk);
      await onChunk(chunk.length);
      yield chunk;
    }
  } catch (err) {
    throw err instanceof ClientError ? err : new ClientError(`cannot read blob ${digest} from the bundle: ${(err as Error).message}`, EXIT.error);
  }
  const actual = `${algorithmOf(digest)}:${h.hex()}`;
  if (actual !== digest) throw new ClientError(`the bundle is corrupt: blob ${digest} hashes to ${actual}`, EXIT.error);
}

/** Waits so that the bytes passed stay under `rate` per second on average (no limit without one). */
function rateLimiter(rate: number | undefined): (n: number) => Promise<void> {
  if (!rate) return async () => undefined;
  const started = Date.now();
  let sent = 0;
  return async (n) => {
    sent += n;
    const ahead = (sent / rate) * 1000 - (Date.now() - started);
    if (ahead > 5) await new Promise((r) => setTimeout(r, Math.min(ahead, 10_000)));
  };
}
