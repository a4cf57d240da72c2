/**
 * An in-process registry over a temp root, for socketless tests of the /v2 handler: the
 * handler is called with Request objects directly, no port is opened. With
 * BERTH_TEST_STORAGE=s3 the same registry stands on the S3 backend, a bucket per root on the
 * test S3 peer (scripts/test runs the /v2 tables a second time so); what a table asks of the
 * storage itself (placement, a layout written behind the registry's back) is answered per
 * backend.
 */
import { createHash } from "node:crypto";
import { sha256 } from "./clients";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createV2Handler } from "../../daemon/http/v2";
import { silentLogger } from "../../daemon/log";
import { Meta } from "../../daemon/meta/meta";
import { type Disk, realDisk } from "../../daemon/platform/disk";
import { openDatabase } from "../../daemon/platform/sqlite";
import { Registry } from "../../daemon/registry/registry";
import { Store } from "../../daemon/storage/store";
import type { UploadHashing } from "../../daemon/platform/uploadhash";
import type { UploadLimits } from "../../daemon/storage/uploads";
import type { RequestPeer } from "../../daemon/platform/serve";
import type { AuditTrail } from "../../daemon/audit/audit";
import type { Principal } from "../../daemon/auth/identity";
import { authenticatedV2, type FrontAuth } from "../../daemon/http/app";
import type { V2Auth } from "../../daemon/http/v2";
import { UsageStats } from "../../daemon/meta/usage";
import { type SearchExtension, lazySearch } from "../../daemon/search/lazy";
import { searchSource } from "../../daemon/search/source";
import type { TrustProvider, VulnerabilityProvider } from "../../daemon/search/providers";
import type { QueryLimits } from "../../daemon/search/limits";
import type { S3Storage } from "../../daemon/storage/s3/backend";

/** sha256 digest of bytes or text (the one helper, from clients.ts). */
export { sha256 };

/** Where and how many times a blob's bytes are stored (see {@link TestRegistry.placement}). */
export interface BlobPlacement {
  /** Distinct stored copies of the bytes (files with their own inode; objects with content). */
  copies: number;
  /** The repositories (of those asked about) that hold the blob. */
  linked: string[];
  /** Local backend: hard links of the stored file (the pool's and the repositories'). */
  nlink?: number;
}

/** A registry under test. */
export interface TestRegistry extends AsyncDisposable {
  root: string;
  /** The storage backend the tables run on: the local layouts, or S3 with BERTH_TEST_STORAGE=s3. */
  backend: "local" | "s3";
  /** The search extension, when `options.search` was given. */
  search?: SearchExtension;
  store: Store;
  registry: Registry;
  /** Calls the handler; `peer` stands for the connection (its address is the client), `principal` for the caller. */
  handle(req: Request, peer?: RequestPeer, principal?: Principal): Promise<Response>;
  /** Calls the handler with a request built from the arguments. */
  call(method: string, path: string, init?: { headers?: Record<string, string>; body?: RequestInit["body"] }): Promise<Response>;
  /** Re-opens the same root as a fresh process would (new caches, new database handle). */
  reopen(): Promise<TestRegistry>;
  /** How `digest` is stored: copies of its bytes, and which of `repos` hold it. */
  placement(digest: string, repos: string[]): Promise<BlobPlacement>;
  /**
   * Puts an OCI layout into storage behind the registry's back, as another writer would: the
   * local backend gets `<root>/<repo>/` with blobs/, oci-layout and index.json (a dropped-in
   * layout); S3 gets the blob objects, the repository's links and its `_index.json` (another
   * berth process, or a tool, writing the bucket).
   */
  dropLayout(repo: string, blobs: string[], index: string): Promise<void>;
}

/** Options for {@link createTestRegistry}. */
export interface TestRegistryOptions {
  root?: string;
  disk?: Disk;
  maxManifestBytes?: number;
  maxBlobBytes?: number;
  dedupe?: boolean;
  hashing?: UploadHashing;
  /** Caps and expiry of upload sessions (default: none). */
  uploadLimits?: UploadLimits;
  /** Manifest body budget and deadline of the handler (default: none). */
  manifestBudgetBytes?: number;
  bodyTimeoutMs?: number;
  /** The audit trail the handler reports to (default: none). */
  audit?: AuditTrail;
  /** Told the size of each blob body served (the daemon counts foreground reads with it). */
  onServe?: (bytes: number) => void;
  /** Authentication and authorization, as the front and the daemon wire them (auth/setup.ts). */
  auth?: { front: FrontAuth; v2: V2Auth };
  /** Serves the search API (lazily loaded, as main.ts wires it), with pull statistics; providers optional. */
  search?: { trust?: TrustProvider; vulns?: VulnerabilityProvider; maxResults?: number; limits?: Partial<QueryLimits>; modelBytes?: number };
}

/** Builds a registry on a fresh temp root (or `options.root`). */
export async function createTestRegistry(options: TestRegistryOptions = {}): Promise<TestRegistry> {
  const owned = options.root === undefined;
  const root = options.root ?? mkdtempSync(join(tmpdir(), "berth-reg-"));
  const maxManifestBytes = options.maxManifestBytes ?? 4 * 1024 * 1024;
  // BERTH_TEST_STORAGE=s3: the same tables on the S3 backend (a bucket per registry on the
  // test S3 peer); a table that looks at how a blob is stored asks placement()/dropLayout(),
  // which answer for either backend
  const onS3 = process.env.BERTH_TEST_STORAGE === "s3" && !options.disk;
  const { store, report, s3 } = onS3 ? await s3Registry(root, options) : await (async () => {
    const local = new Store(options.disk ?? realDisk, {
      root,
      dedupe: options.dedupe ?? true,
      maxBlobBytes: options.maxBlobBytes ?? 0,
      manifestCacheBytes: 1 << 20,
      hashing: options.hashing,
      ...(options.uploadLimits ? { uploadLimits: options.uploadLimits } : {}),
    }, silentLogger);
    return { store: local, report: await local.recover(), s3: undefined };
  })();
  const db = openDatabase(store.metaDbPath);
  const meta = new Meta(db);
  const usage = options.search ? new UsageStats(db) : undefined;
  const hooks = usage ? { hooks: { pulled: usage.pulled.bind(usage), pushed: usage.pushed.bind(usage), deleted: usage.forget.bind(usage) } } : {};
  const registry = new Registry(store, meta, { maxManifestBytes, ...hooks }, silentLogger);
  await registry.reconcileAll(report.repositories);
  const s = options.search;
  const search = s && usage ? lazySearch(() => ({
    db,
    source: searchSource(store, meta),
    referrers: (repo, digest) => meta.referrers(repo, digest),
    usage,
    ...(s.trust ? { trust: s.trust } : {}),
    ...(s.vulns ? { vulns: s.vulns } : {}),
    ...(options.auth ? { access: options.auth.v2.access } : {}),
    maxManifestBytes,
    maxResults: s.maxResults ?? 1000,
    maxQueryBytes: 16 * 1024,
    ...(s.limits ? { limits: s.limits } : {}),
    // BERTH_SEARCH_MODEL_BYTES runs any search test with another bound on the in-memory models
    ...(s.modelBytes !== undefined || process.env.BERTH_SEARCH_MODEL_BYTES ? { modelBytes: s.modelBytes ?? Number(process.env.BERTH_SEARCH_MODEL_BYTES) } : {}),
    log: silentLogger,
  })) : undefined;
  const v2 = createV2Handler(registry, {
    maxManifestBytes,
    ...(options.auth ? { auth: options.auth.v2 } : {}),
    log: silentLogger,
    ...(options.manifestBudgetBytes !== undefined ? { manifestBudgetBytes: options.manifestBudgetBytes } : {}),
    ...(options.bodyTimeoutMs !== undefined ? { bodyTimeoutMs: options.bodyTimeoutMs } : {}),
    ...(options.audit ? { audit: options.audit } : {}),
    ...(options.onServe ? { onServe: options.onServe } : {}),
    ...(search ? { search } : {}),
  });
  const handle = options.auth ? (req: Request, peer?: RequestPeer) => Promise.resolve(authenticatedV2(options.auth!.front, v2)(req, peer)) : v2;
  const self: TestRegistry = {
    root,
    backend: s3 ? "s3" : "local",
    ...(search ? { search } : {}),
    store,
    registry,
    handle,
    call(method, path, init = {}) {
      return handle(new Request(`http://registry.test${path}`, { method, headers: init.headers, body: init.body ?? null }));
    },
    async reopen() {
      db.close();
      return createTestRegistry({ ...options, root });
    },
    placement: (digest, repos) => (s3 ? s3Placement(s3, digest, repos) : localPlacement(root, digest, repos)),
    dropLayout: (repo, blobs, index) => (s3 ? s3DropLayout(s3, repo, blobs, index) : localDropLayout(root, repo, blobs, index)),
    async [Symbol.asyncDispose]() {
      try {
        db.close();
      } catch {
        // already closed by reopen()
      }
      if (owned) {
        rmSync(root, { recursive: true, force: true });
        // the bucket goes with the root that named it (a reopened registry shares both)
        if (s3) await (await import("./ceph")).dropBucket(s3.s3);
      }
    },
  };
  return self;
}

/** The backend probes of a registry on local layouts under `root` (for helpers that build their own registry). */
export function localProbes(root: string): Pick<TestRegistry, "backend" | "placement" | "dropLayout"> {
  return {
    backend: "local",
    placement: (digest, repos) => localPlacement(root, digest, repos),
    dropLayout: (repo, blobs, index) => localDropLayout(root, repo, blobs, index),
  };
}

function localPlacement(root: string, digest: string, repos: string[]): Promise<BlobPlacement> {
  const rel = digest.replace(":", "/");
  const pool = join(root, ".berth/pool", rel);
  const linked = repos.filter((repo) => existsSync(join(root, repo, "blobs", rel))).sort();
  const files = [...(existsSync(pool) ? [pool] : []), ...linked.map((repo) => join(root, repo, "blobs", rel))];
  const stats = files.map((f) => statSync(f));
  return Promise.resolve({
    copies: new Set(stats.map((st) => st.ino)).size,
    linked,
    ...(stats[0] ? { nlink: stats[0].nlink } : {}),
  });
}

async function s3Placement(s3: S3Storage, digest: string, repos: string[]): Promise<BlobPlacement> {
  let copies = 0;
  const linked: string[] = [];
  // the whole store (one bucket per test registry): every object named after the digest
  for await (const { object } of s3.s3.listAll({ prefix: s3.keys.prefix })) {
    if (!object || s3.keys.digestOf(object.key)?.value !== digest) continue;
    const repo = s3.keys.parseRepoKey(object.key);
    if (repo && "link" in repo) {
      if (repos.includes(repo.repo)) linked.push(repo.repo);
      if (object.size > 0) copies++; // a link object with bytes would be a copy
    } else if (object.size > 0) copies++;
  }
  return { copies, linked: linked.sort() };
}

function localDropLayout(root: string, repo: string, blobs: string[], index: string): Promise<void> {
  const dir = join(root, repo);
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  for (const b of blobs) writeFileSync(join(dir, "blobs", "sha256", sha256(b).slice(7)), b);
  writeFileSync(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, "index.json"), index);
  return Promise.resolve();
}

async function s3DropLayout(s3: S3Storage, repo: string, blobs: string[], index: string): Promise<void> {
  for (const b of blobs) {
    await s3.s3.put(s3.keys.blob(sha256(b)), b);
    await s3.s3.put(s3.keys.link(repo, sha256(b)), "");
  }
  await s3.s3.put(s3.keys.index(repo), index);
}

/** The S3 backend for {@link createTestRegistry} (BERTH_TEST_STORAGE=s3), typed as the local store for the tables. */
async function s3Registry(root: string, options: TestRegistryOptions): Promise<{ store: Store; report: { repositories: string[] }; s3: S3Storage }> {
  const { s3Peer } = await import("./ceph");
  const { openTestS3Storage } = await import("./s3store");
  // one bucket per root, so a registry made again on the same root (reopen, seeding) sees the same store
  const bucket = `berth-reg-${createHash("sha256").update(root).digest("hex").slice(0, 16)}`;
  const t = await openTestS3Storage(await s3Peer(), {
    bucket,
    cacheRoot: root,
    maxBlobBytes: options.maxBlobBytes ?? 0,
    ...(options.hashing ? { hashing: options.hashing } : {}),
    ...(options.uploadLimits ? { uploadLimits: options.uploadLimits } : {}),
  }, silentLogger);
  return { store: t.storage as unknown as Store, report: { repositories: await t.storage.repositories() }, s3: t.storage };
}


/** sha512 digest of bytes or text. */
export function sha512(data: Uint8Array | string): string {
  return `sha512:${createHash("sha512").update(data).digest("hex")}`;
}

/** Pushes a blob monolithically; returns its digest. */
export async function pushBlob(r: TestRegistry, repo: string, data: Uint8Array | string): Promise<string> {
  const digest = sha256(data);
  const res = await r.call("POST", `/v2/${repo}/blobs/uploads/?digest=${digest}`, { body: data });
  if (res.status !== 201) throw new Error(`push blob: ${res.status} ${await res.text()}`);
  return digest;
}

/** An OCI image manifest over the given config and layers (as text). */
export function imageManifest(config: string, layers: string[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: Buffer.byteLength(config) },
    layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(l), size: Buffer.byteLength(l) })),
    ...extra,
  });
}

/** Pushes config, layers and the manifest under `reference`; returns the manifest and its digest. */
export async function pushImage(
  r: TestRegistry,
  repo: string,
  reference: string,
  seed: string,
  extra: Record<string, unknown> = {},
): Promise<{ manifest: string; digest: string; config: string; layer: string }> {
  const config = JSON.stringify({ architecture: "amd64", os: "linux", seed });
  const layer = `layer bytes of ${seed}`;
  await pushBlob(r, repo, config);
  await pushBlob(r, repo, layer);
  const manifest = imageManifest(config, [layer], extra);
  const res = await r.call("PUT", `/v2/${repo}/manifests/${reference}`, {
    headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
    body: manifest,
  });
  if (res.status !== 201) throw new Error(`push manifest: ${res.status} ${await res.text()}`);
  return { manifest, digest: sha256(manifest), config, layer };
}
