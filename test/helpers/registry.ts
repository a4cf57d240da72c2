/**
 * An in-process registry over a temp root, for socketless tests of the /v2 handler: the
 * handler is called with Request objects directly, no port is opened.
 */
import { createHash } from "node:crypto";
import { sha256 } from "./clients";
import { mkdtempSync, rmSync } from "node:fs";
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

/** sha256 digest of bytes or text (the one helper, from clients.ts). */
export { sha256 };

/** A registry under test. */
export interface TestRegistry extends AsyncDisposable {
  root: string;
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
  // test S3 peer; tests that look at files under the root are local-only and will say so by failing)
  const onS3 = process.env.BERTH_TEST_STORAGE === "s3" && !options.disk;
  const { store, report } = onS3 ? await s3Registry(root, options) : await (async () => {
    const local = new Store(options.disk ?? realDisk, {
      root,
      dedupe: options.dedupe ?? true,
      maxBlobBytes: options.maxBlobBytes ?? 0,
      manifestCacheBytes: 1 << 20,
      hashing: options.hashing,
      ...(options.uploadLimits ? { uploadLimits: options.uploadLimits } : {}),
    }, silentLogger);
    return { store: local, report: await local.recover() };
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
    async [Symbol.asyncDispose]() {
      try {
        db.close();
      } catch {
        // already closed by reopen()
      }
      if (owned) rmSync(root, { recursive: true, force: true });
    },
  };
  return self;
}

/** The S3 backend for {@link createTestRegistry} (BERTH_TEST_STORAGE=s3), typed as the local store for the tables. */
async function s3Registry(root: string, options: TestRegistryOptions): Promise<{ store: Store; report: { repositories: string[] } }> {
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
  return { store: t.storage as unknown as Store, report: { repositories: await t.storage.repositories() } };
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
