#!/usr/bin/env bun
/**
 * berth's composition root and command line: `serve`, `verify`, `gc`, `scrub`, `version`,
 * `board detect`, `discover`, `keys` and `help`, as cli/usage.ts lists and documents them
 * (one help text per command there, with the conventions every command follows).
 * The configuration is read here, once; every module receives plain options.
 */
import { parseDigest } from "./oci/digest";
import { ConfigError, loadConfig } from "./config/load";
import type { Config } from "./config/schema";
import { createApp } from "./http/app";
import { createV2Handler, serverError } from "./http/v2";
import { createLogger, type Logger } from "./log";
import { Meta } from "./meta/meta";
import { lazySearch } from "./search/lazy";
import { searchSource } from "./search/source";
import { realDisk } from "./platform/disk";
import { memoryGovernor, residentBytes } from "./platform/memory";
import { type JitTiers, reexecTuned, serviceProblem, tuningEnv } from "./platform/runtimetune";
import { inlineHashing, workerHashing } from "./platform/uploadhash";
import { AddressInUseError, serve } from "./platform/serve";
import { lockRoot, RootInUseError } from "./platform/rootlock";
import { openIndex } from "./meta/open";
import type { SqlDatabase } from "./platform/sqlite";
import { Registry } from "./registry/registry";
import { IO_PROFILES, IoBudget } from "./scheduler/budget";
import { profileFor } from "./board/profiles";
import { identifyBoard } from "./board/identify";
import { Scheduler } from "./scheduler/scheduler";
import { parseWindow, type Window } from "./scheduler/windows";
import { SyncState } from "./meta/syncstate";
import { StartupWork } from "./meta/startup";
import { SyncService } from "./sync/service";
import { runService } from "./service";
import type { Storage } from "./storage/api";
import { metaDbPath, openRoots } from "./storage/roots/open";
import { RootLifecycles, RootMarks } from "./storage/roots/lifecycles";
import { Late } from "./late";
import { rootFamilies } from "./storage/roots/metrics";
import { HttpMetrics } from "./metrics/http";
import { MetricsRegistry } from "./metrics/registry";
import { registerStandard } from "./metrics/standard";
import { lifecycleFamilies, schedulerFamilies, syncFamilies } from "./metrics/background";
import { VERSION } from "./version";
import { runOffline } from "./lifecycle/offline";
import { lifecycleOptions } from "./lifecycle/options";
import type { PassProgress } from "./lifecycle/pacer";
import { countingDisk } from "./platform/countingdisk";
import { CLIENT_COMMANDS, COMMAND_HELP, USAGE, helpFor, isHelpFlag, usageError } from "./cli/usage";
import { configWarnings } from "./config/deprecated";
import { loadAndCheck, readTokenFile } from "./config/verify";
import { lockoutFor, rateLimiterFor } from "./http/limits";
import { AuditTrail } from "./audit/audit";
import { LoginAttempts } from "./auth/attempts";
import { setupAuth, type AuthSetup } from "./auth/setup";
import type { TokenAuth } from "./auth/tokensetup";
import type { LoginResult } from "./auth/tokenservice";
import type { Identified } from "./auth/authenticator";
import { setTimeout as sleep } from "node:timers/promises";
import { chainHooks } from "./registry/hooks";
import type { TrustSetup } from "./trust/setup";
import { withCveHooks } from "./cve/hooks";
import type { CveService } from "./cve/service";
import type { CveRecord, Severity, VulnerabilityProvider } from "./search/providers";

/** Runs `fn`, printing a configuration error (exit 1) instead of throwing it. */
async function withConfigErrors(fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ConfigError || err instanceof RootInUseError || err instanceof AddressInUseError) {
      console.error(err.message);
      return 1;
    }
    throw err;
  }
}

/**
 * Starts the registry on `config`; resolves once it is listening. `auditLog` receives the
 * audit trail (give it an info-level logger so `[log] level` cannot filter it away).
 */
export async function startDaemon(config: Config, log: Logger, auditLog: Logger = log) {
  const started = performance.now();
  // before anything is opened: a bad token file stops the start with a config error
  const adminToken = config.http.admin_token_file ? readAdminToken(config.http.admin_token_file) : undefined;
  // so is an unusable htpasswd file; undefined when [auth] is off
  const auth = setupAuth(config, log, adminToken);
  // LDAP and client certificates, only when configured (nothing loaded otherwise)
  if (auth && (config.auth.ldap || config.http.tls_client_ca)) await (await import("./auth/external")).plugExternalIdentities(auth, config, log);
  const clientCaFile = auth ? config.http.tls_client_ca : "";
  if (!auth && config.http.tls_client_ca) log.warn("http.tls_client_ca is set but authentication is off ([auth]): client certificates are not asked for", { ca: config.http.tls_client_ca });
  // before anything under the root is read or changed: one process per storage root
  const rootLock = await lockRoot(config.storage.root);
  // the token service and API keys (issue 10): their key files live under the locked root
  const tokenAuth = auth ? await plugTokenAuth(config, auth, rootLock) : undefined;
  if (!auth && config.auth.token.enabled) log.warn("[auth.token] enabled has no effect without [auth] htpasswd or [[access]] rules: berth is open and issues no tokens");
  let ready = false;
  const hashing = config.storage.hash_thread ? workerHashing() : inlineHashing;
  let ingressBytes = 0;
  // what an idle registry over its memory limit gives back (bound below, once the parts exist)
  const trims: (() => void)[] = [];
  const governor = memoryGovernor({ softLimitBytes: config.memory.rss_soft_limit, trim: () => {
    for (const t of trims) {
      try {
        t();
      } catch (err) {
        log.warn("dropping a cache for memory failed", { error: (err as Error).message });
      }
    }
  } });
  const profile = IO_PROFILES[config.scheduler.io_profile]!;
  const sch = config.scheduler;
  const budget = new IoBudget({
    readBytesPerSecond: sch.read_bytes_per_second || profile.readBytesPerSecond,
    writeBytesPerSecond: sch.write_bytes_per_second || profile.writeBytesPerSecond,
    readOpsPerSecond: sch.read_ops_per_second || profile.readOpsPerSecond,
    writeOpsPerSecond: sch.write_ops_per_second || profile.writeOpsPerSecond,
  });
  const scheduler = new Scheduler(budget, { concurrency: sch.concurrency, jitterMs: sch.jitter_ms, windows: sch.windows.map((w) => parseWindow(w) as Window) }, log);
  // whole-file replacements (index.json rewrites) churn memory like request bodies do
  const counted = countingDisk(realDisk, (bytes) => governor.ingress(bytes));
  // late-binding points (daemon/late.ts), bound once each below where the object is built:
  // storage admits upload bytes through the lifecycles, which are built over the opened roots
  // and the registry (before they are bound, during recovery and reconcile, no upload is
  // served: nothing to admit);
  // the registry's hooks reach the CVE scanner and the trust module, which need the registry,
  // and sync's only_signed check reaches the trust module too
  const late = {
    lifecycles: new Late<RootLifecycles>("the storage lifecycles"),
    cve: new Late<CveService>("the CVE scanner"),
    trust: new Late<TrustSetup>("the trust module"),
  };
  // every byte a client or a fetch writes: counted, told to the memory governor and the IO budget
  const onIngress = (bytes: number) => {
    ingressBytes += bytes;
    governor.ingress(bytes);
    budget.foreground(bytes, "write");
  };
  const uploadLimits = { maxSessions: config.storage.max_uploads, maxPerClient: config.storage.max_uploads_per_client, expiryMs: config.storage.upload_expiry * 1000 };
  // the main root and each [[storage.subpaths]] root (storage/roots/): one Storage routing by prefix
  const roots = await openRoots(counted.disk, config.storage.root, config.storage.subpaths, {
    base: {
      maxBlobBytes: config.storage.max_blob_bytes,
      onIngress,
      hashing,
      uploadLimits,
    },
    manifestCacheBytes: config.storage.manifest_cache_bytes,
    dedupe: config.storage.dedupe,
    // the walk of every layout (temp files of a killed run) runs after listening (meta/startup.ts)
    deferSweep: true,
    admit: (index, repo, bytes) => late.lifecycles.current?.admit(index, repo, bytes) ?? Promise.resolve(),
    // [storage] backend = "s3": the bucket is the main root (loaded only then; root keeps meta.db and spooled uploads)
    ...(config.storage.backend === "s3" ? {
      main: async () => (await import("./storage/s3/open")).openS3FromConfig(config, {
        root: config.storage.root,
        maxBlobBytes: config.storage.max_blob_bytes,
        manifestCacheBytes: 0, // the composite's cache serves
        onIngress,
        hashing,
        admit: (repo, bytes) => late.lifecycles.current?.admit(0, repo, bytes) ?? Promise.resolve(),
        uploadLimits,
      }, log),
    } : {}),
  }, log).catch((err) => {
    rootLock.release();
    throw err;
  });
  const store = roots.storage;
  const recovery = roots.recovery;
  // on a full disk the derived index lives in memory for this run (meta/open.ts)
  const opened = await openIndex(metaDbPath(config), log, async (db) => {
    const meta = new Meta(db);
    const options = lifecycleOptions(config);
    // touch marks and statistics first: the registry reports to them; the lifecycles, whose
    // collectors need the registry, are built whole after it
    const marks = new RootMarks(roots.roots, store.router, db, options.gc.graceMs);
    const hooks = withCveHooks(marks.hooks, () => late.cve.current?.hooks);
    // the trust module's hooks, once it is built (it needs meta.db); only with [trust] enabled
    const registry = new Registry(store, meta, { maxManifestBytes: config.storage.max_manifest_bytes, hooks: config.trust.enabled ? chainHooks(hooks, { pushed: (...a) => late.trust.current?.hooks.pushed?.(...a) }) : hooks }, log);
    const lcs = new RootLifecycles({ opened: roots.roots, router: store.router, marks, registry, meta, log, options, counters: counted.counters });
    return { meta, lcs, registry };
  });
  const { db } = opened;
  const { meta, lcs, registry } = opened.value;
  // manifest bodies and parsed indexes, the hashing thread when no upload is open, meta.db's SQLite page cache
  trims.push(() => store.trim(), () => hashing.release(), () => db.exec("PRAGMA shrink_memory"));
  // the temp-file sweep and the reconcile of every repository: after listening (meta/startup.ts)
  const startup = new StartupWork({ scheduler, sweep: (pace) => roots.sweep(pace), reconcileAll: (repos, pace) => registry.reconcileAll(repos, pace), log });
  late.lifecycles.bind(lcs);
  const lc = lcs.main;
  // offline vulnerability scanning (issue 11): loaded only when [cve] enabled
  const cve = config.cve.enabled ? late.cve.bind(await startCve(config, { db, registry, meta, store, scheduler, log, onRead: (bytes) => governor.ingress(bytes) })) : undefined;
  const syncState = new SyncState(db);
  const sync = config.sync.registries.length > 0
    ? new SyncService(store, registry, syncState, scheduler, {
      registries: config.sync.registries,
      maxManifestBytes: config.storage.max_manifest_bytes,
      // only_signed: verified with the trust store, built below (none without [trust]: nothing verifies)
      // (a child manifest fetched on demand passes when a stored index lists it: that index passed)
      ...(config.sync.registries.some((r) => r.onlySigned) ? {
        signatures: (u, repo, m, signal, local) => {
          if (local !== undefined && meta.parentsOf(local, m.digest).length > 0) return Promise.resolve({ ok: true, detail: "listed by a verified index" });
          const trust = late.trust.current;
          return trust ? trust.verifyUpstream(u, repo, m, signal) : Promise.resolve({ ok: false, detail: "[trust] is not enabled: there is no key to verify with" });
        },
      } : {}),
    }, log)
    : undefined;
  if (sync) for (const r of lcs.roots) r.lc.evictor.setUpstreamPolicy({ serves: (repo) => sync.serves(repo), pinned: (repo, tag) => sync.pinned(repo, tag) });
  const audit = new AuditTrail(auditLog, { pulls: config.audit.pulls, pullIntervalMs: config.audit.pull_interval * 1000 });
  // failed logins: counted, locked out and audited, around the authenticator's password checks
  auth?.plug({ events: new LoginAttempts(lockoutFor(config), audit) });
  try {
    if (config.trust.enabled) late.trust.bind(await plugTrust(config, db, store, meta, audit, log));
  } catch (err) {
    // an unusable keys_dir is a configuration error: release what is open so a caller may retry
    store.uploads.stop();
    governor.stop();
    await hashing.shutdown();
    db.close();
    roots.release();
    rootLock.release();
    throw err;
  }
  const trust = late.trust.current;
  const served = sync ? sync.decorate() : registry;
  const v2 = createV2Handler(trust ? trust.decorate(served) : served, {
    audit,
    maxManifestBytes: config.storage.max_manifest_bytes,
    manifestBudgetBytes: config.http.manifest_body_budget,
    bodyTimeoutMs: config.http.body_timeout * 1000,
    log,
    onServe: (bytes) => budget.foreground(bytes, "read"),
    ...(auth ? { auth: auth.v2 } : {}),
    ...(config.search.enabled ? {
      search: lazySearch(() => ({
        db,
        source: searchSource(store, meta),
        referrers: (repo, digest) => meta.referrers(repo, digest),
        usage: lc.usage,
        ...(auth ? { access: auth.v2.access } : {}),
        // IsSigned / SignatureInfo from the trust store's verdicts (unsigned without [trust])
        ...(trust ? { trust: { trustOf: (repo: string, digest: string) => trust!.trustOf(repo, digest) } } : {}),
        // Vulnerabilities / CVE queries from the scanner's results (not scanned without [cve])
        ...(cve ? { vulns: vulnerabilitiesForSearch(cve) } : {}),
        maxManifestBytes: config.storage.max_manifest_bytes,
        maxResults: config.search.max_results,
        maxQueryBytes: config.search.max_query_bytes,
        modelBytes: config.search.model_bytes,
        // the derived index is complete once the start-up reconcile is done
        ready: (ms: number) => startup.within(ms),
        log,
      })),
    } : {}),
  });
  const info = () => ({
    root: config.storage.root,
    ...(config.storage.subpaths.length > 0 ? { roots: lcs.status() } : {}),
    uploadsInFlight: store.uploads.count(),
    manifestCacheBytes: store.manifests.size(),
    rssBytes: residentBytes() ?? 0, // 0 when /proc cannot be read right now (EMFILE)
    memory: (() => {
      try {
        return process.memoryUsage();
      } catch {
        return undefined;
      }
    })(),
    forcedCollections: governor.stats(),
    board: boardInfo(),
  });
  // the board as configured and as detected (identified once: /proc and /sys reads)
  let board: Record<string, unknown> | undefined;
  const boardInfo = () => (board ??= (() => {
    const id = identifyBoard();
    return { profile: config.board.profile, detected: profileFor(id) ?? "none", ioProfile: config.scheduler.io_profile, model: id.model, arch: id.arch, memoryBytes: id.memoryBytes };
  })());
  const metrics = new MetricsRegistry();
  const httpMetrics = new HttpMetrics();
  registerStandard(metrics, {
    root: config.storage.root,
    storageFigures: () => store.meter.figures(),
    http: httpMetrics,
    uploadsInFlight: () => store.uploads.count(),
    ingressBytes: () => ingressBytes,
    board: config.board.profile,
    hostIntervalMs: config.metrics.host_interval * 1000,
  });
  metrics.provide("lifecycle", () => lifecycleFamilies(lc));
  if (config.storage.subpaths.length > 0) metrics.provide("roots", () => rootFamilies(roots.roots, lcs));
  metrics.provide("scheduler", () => schedulerFamilies(scheduler));
  if (cve) metrics.provide("cve", () => cve.metrics());
  if (sync) metrics.provide("sync", () => syncFamilies(sync));
  // GC, retention and scrub judge by the derived index: after the start-up reconcile
  const storage = {
    stats: () => lcs.stats(),
    quarantine: () => lcs.quarantine(),
    gc: async (dryRun: boolean, progress?: (p: PassProgress) => void) => (await startup.done, lcs.gc(dryRun, undefined, progress)),
    retention: async (dryRun: boolean, progress?: (p: PassProgress) => void) => (await startup.done, lcs.retention(dryRun, progress)),
    scrub: async (progress?: (p: { done: number; total: number; bytes: number; totalBytes: number }) => void) => (await startup.done, lcs.scrub(progress)),
  };
  const app = createApp({
    v2,
    storage,
    ready: () => ready,
    info,
    scheduler: () => scheduler.state(),
    sync: () => sync?.info() ?? { registries: [], fetches: [], pins: syncState.pins() },
    syncRun: (name, done) => sync?.runNow(name, done) ?? false,
    // air-gap bundles from the device, loaded on first use; off unless [bundle] import_dirs lists directories
    ...(config.bundle.import_dirs.length > 0 ? { bundleImport: async (path, options, progress) => (await import("./bundle/admin")).adminImport({ registry, storage: store, io: budget, dirs: config.bundle.import_dirs }, path, options, progress) } : {}),
    ...(config.metrics.enabled ? { metrics: { http: httpMetrics, render: () => metrics.render() } } : {}),
    ...(adminToken !== undefined ? { adminToken } : {}),
    ...rateLimiterFor(config),
    onAdmin: (req, path, status, address, principal) => audit.admin({ principal, address }, req.method, path, status),
    ...(auth ? { auth: auth.front } : {}),
    ...(trust ? { trustApi: trust.api } : {}),
    ...(config.ui.enabled ? { ui: { auth: auth !== undefined, tokens: auth?.front.tokenEndpoint !== undefined, keys: auth?.front.keysApi !== undefined, search: config.search.enabled } } : {}),
    ...(cve ? { cve } : {}),
  });
  const server = await serveOrRelease({ release: () => (roots.release(), rootLock.release()) }, (req, peer) => {
    governor.request();
    return app(req, peer);
  }, {
    hostname: config.http.address,
    port: config.http.port,
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    idleTimeout: config.http.idle_timeout,
    error: (err) => serverError(err, log),
    ...(config.http.tls_cert ? { tls: { certFile: config.http.tls_cert, keyFile: config.http.tls_key, ...(clientCaFile ? { clientCaFile } : {}) } } : {}),
  });
  scheduler.start();
  startup.start();
  sync?.start();
  audit.start();
  const advertisement = config.mdns.enabled ? await advertiseOnLan(config, server.port, log, auth?.access) : undefined;
  ready = true;
  // periodic GC, retention and scrub judge by the derived index: each run waits for the start-up reconcile
  lcs.start((intervalMs, make) => scheduler.every(intervalMs, () => startup.before(make())));
  log.info("berth listening", {
    version: VERSION,
    address: server.hostname,
    port: server.port,
    root: config.storage.root,
    ...(config.storage.subpaths.length > 0 ? { roots: lcs.status().map((r) => `${r.prefix || "(rest)"} ${r.root}${r.available ? "" : " (unavailable)"}`) } : {}),
    uploadsRemoved: recovery.uploadsRemoved,
    ...(opened.degraded ? { degraded: "derived index in memory: the disk is full" } : {}),
    startMs: Math.round(performance.now() - started),
  });
  return {
    server,
    /** Where other modules (GC, scrub, scheduler, sync) register their figures; see metrics/registry.ts. */
    metrics,
    lifecycle: lc,
    /** Every storage root's lifecycle (one entry per available root; `main` is `lifecycle`). */
    lifecycles: lcs,
    /** Authentication and authorization (undefined without [auth]): where the token service, API keys, LDAP, mTLS and audit plug in. */
    auth,
    /** Signature verification (undefined without [trust] enabled); `trust.trustOf` is the search API's read. */
    trust,
    /** Applies a re-read configuration (SIGHUP): the access policy and user groups. */
    reload(next: Config) {
      auth?.reload(next);
      trust?.reload();
      if (JSON.stringify([next.auth.ldap, next.auth.mtls, next.http.tls_client_ca]) !== JSON.stringify([config.auth.ldap, config.auth.mtls, config.http.tls_client_ca])) {
        log.error("reload: changes to [auth.ldap], [auth.mtls] or http.tls_client_ca need a restart; keeping the running ones");
      }
    },
    /** Stops accepting, lets requests in flight finish (up to `graceMs`), closes the database. */
    async close(graceMs = 30_000) {
      ready = false;
      startup.cancel();
      await advertisement?.stop();
      const stopping = server.stop(false);
      const deadline = Date.now() + graceMs;
      while (server.pendingRequests() > 0 && Date.now() < deadline) await sleep(50);
      await server.stop(true);
      await stopping;
      await scheduler.stop();
      // pull-through work clients started (blobs still being stored, images being completed) ends first
      if (sync && !(await sync.drain(deadline - Date.now()))) log.warn("stopping with pull-through fetches unfinished; they are fetched again when next asked for");
      sync?.close();
      audit.close();
      await lcs.close();
      store.uploads.stop();
      await hashing.shutdown();
      governor.stop();
      cve?.close();
      db.close();
      tokenAuth?.close();
      roots.release();
      rootLock.release();
    },
  };
}

/**
 * Builds the trust module (`[trust] enabled`, loaded on demand): it reads the registry
 * through a second, hookless {@link Registry} (its reads are not clients' pulls).
 */
async function plugTrust(config: Config, db: SqlDatabase, store: Storage, meta: Meta, audit: AuditTrail, log: Logger): Promise<TrustSetup> {
  const { setupTrust } = await import("./trust/setup");
  const reader = new Registry(store, meta, { maxManifestBytes: config.storage.max_manifest_bytes }, log);
  const quiet = <T>(p: Promise<T>): Promise<T | undefined> => p.catch(() => undefined);
  return setupTrust(config.trust, config.storage.root, db, {
    stamp: async (repo) => (await quiet(store.indexes.index(repo)))?.stamp,
    manifest: (repo, reference) => quiet(reader.manifest(repo, reference, null)),
    blob: async (repo, digestText, max) => {
      const digest = parseDigest(digestText);
      const info = digest && store.blobs.stat(repo, digest);
      if (!digest || !info || info.size > max) return undefined;
      return quiet(store.blobs.read(repo, digest));
    },
    referrers: async (repo, digest) => (await quiet(reader.referrers(repo, digest))) ?? [],
    parents: (repo, digest) => meta.parentsOf(repo, digest),
  }, (repo, reference, digest, reason) => audit.unsigned(repo, reference, digest, reason), log);
}

/**
 * Starts vulnerability scanning (loaded on demand): its results tables in meta.db, layers
 * read through the registry's blob API, scans on the scheduler.
 */
async function startCve(
  config: Config,
  deps: { db: SqlDatabase; registry: Registry; meta: Meta; store: Storage; scheduler: Scheduler; log: Logger; onRead: (bytes: number) => void },
): Promise<CveService> {
  const { CveService } = await import("./cve/service");
  const { registry, meta, store } = deps;
  return new CveService(
    { root: config.storage.root, maxDbBytes: config.cve.max_db_bytes, scanOnPush: config.cve.scan_on_push, maxPending: config.cve.max_queue, maxManifestBytes: config.storage.max_manifest_bytes, dbRepository: config.cve.db_repository },
    {
      db: deps.db,
      blob: (repo, digest) => registry.blob(repo, digest),
      manifests: () => meta.allManifests(),
      resolve: async (repo, reference) => {
        if (reference.includes(":")) return meta.hasManifest(repo, reference) ? reference : undefined;
        return (await store.indexes.index(repo).catch(() => undefined))?.tags.get(reference)?.digest;
      },
      scheduler: deps.scheduler,
      log: deps.log,
      onRead: deps.onRead,
    },
  );
}

/** Starts the mDNS advertisement (loaded on demand), saying whether credentials are needed. */
async function advertiseOnLan(config: Config, port: number, log: Logger, access: { policy: { anonymousPullsAny: boolean } } | undefined) {
  const { advertisedAuth, startAdvertising } = await import("./discovery/appliance");
  const modes: ("basic" | "token")[] = config.auth.token.enabled ? ["basic", "token"] : ["basic"];
  return startAdvertising(config, port, log, advertisedAuth(access, modes));
}

/**
 * Builds the token service and the API key store (`[auth.token]`, `[auth.apikeys]`) and plugs
 * them into the core: API keys first in the password chain (a `berth_…` password is theirs
 * whatever the user name; anything else passes through with one regular-expression test),
 * the key routes in the front, and with the token service on, its verifier (Bearer
 * challenges on every 401) and endpoint. An unusable key file is a configuration error.
 */
async function plugTokenAuth(config: Config, auth: AuthSetup, lock: { release(): void }): Promise<TokenAuth> {
  // loaded only with [auth] on: a registry without authentication pays nothing for them
  const [{ setupTokenAuth }, { createKeysApi }] = await Promise.all([import("./auth/tokensetup"), import("./http/keys")]);
  let built: TokenAuth;
  try {
    built = await setupTokenAuth({
      root: config.storage.root,
      token: config.auth.token,
      apikeys: config.auth.apikeys,
      passwords: (user, password, signal) => auth.chain.verify(user, password, signal),
      authorize: (principal, repo, action) => auth.access.may(principal, repo, action),
    });
  } catch (err) {
    lock.release();
    throw new ConfigError(config.auth.token.enabled ? "auth.token" : "auth.apikeys", [(err as Error).message]);
  }
  if (built.apiKeys) {
    auth.chain.register(built.apiKeys, true);
    // a key dies with its owner's htpasswd entry and follows the owner's groups
    const htpasswd = auth.htpasswd;
    if (htpasswd) built.apiKeys.setOwners((owner) => htpasswd.member(owner));
    auth.front.keysApi = createKeysApi(built.apiKeys);
  }
  const token = built.token;
  if (token) {
    // the OAuth2 form's credentials go through the front's authenticator, as Basic ones do:
    // the same lockout, audit events and credential cache
    const login = (user: string, password: string, address: string | undefined) => {
      const basic = new Request("http://berth/auth/token", { headers: { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` } });
      return Promise.resolve(auth.front.authenticator.identify(basic, () => address)).then(loginResult);
    };
    auth.plug({ tokens: token.verifier, tokenEndpoint: (req, principal, _grant, ctx) => token.handle(req, { principal, login: (u, p) => login(u, p, ctx?.address) }) });
  }
  return built;
}

/** The front's answer about a form login, as the token service takes it. */
function loginResult(who: Identified): LoginResult {
  if (who.kind === "principal") return { kind: "ok", principal: who.principal };
  if (who.kind === "anonymous") return { kind: "unknown" };
  if (who.status === 429) return { kind: "throttled", retryAfter: who.retryAfter ?? 1 };
  if (who.status === 503) return { kind: "unavailable", reason: who.reason };
  return { kind: "denied", reason: who.reason };
}

/** {@link serve}, releasing the root lock when the port cannot be had (an in-process caller may retry). */
async function serveOrRelease(lock: { release(): void }, ...args: Parameters<typeof serve>): ReturnType<typeof serve> {
  try {
    return await serve(...args);
  } catch (err) {
    lock.release();
    throw err;
  }
}

/** Reads `--config FILE` (or `--config=FILE`) and, where `flags` allows, boolean flags; undefined on a bad argument (reported). */
function parseArgs(rest: string[], usage: string, flags: readonly string[] = []): { configPath?: string; flags: Set<string> } | undefined {
  const out: { configPath?: string; flags: Set<string> } = { flags: new Set() };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (arg === "--config" && rest[i + 1] !== undefined) out.configPath = rest[++i];
    else if (arg.startsWith("--config=")) out.configPath = arg.slice(9);
    else if (flags.includes(arg)) out.flags.add(arg);
    else return void usageError(`unknown argument "${arg}"`, usage);
  }
  return out;
}

/** Runs the command line `argv` (without the program name); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  // help: `berth`, `berth -h|--help`, `berth help [COMMAND]`, `berth COMMAND -h|--help`; on stdout, exit 0
  if (command === undefined || isHelpFlag(command)) return (console.log(USAGE), 0);
  if (command === "help") {
    const text = helpFor(rest[0]);
    if (text === undefined) return usageError(`no help for unknown command "${rest[0]}"`, USAGE);
    return (console.log(text), 0);
  }
  if (command === "--version") return (console.log(`berth ${VERSION}`), 0);
  const usage = COMMAND_HELP[command];
  if (usage === undefined) return usageError(`unknown command "${command}"`, USAGE);
  if (rest.some(isHelpFlag)) return (console.log(usage), 0);
  if (command === "version") {
    console.log(`berth ${VERSION}`);
    return 0;
  }
  // Loaded on demand: systeminformation and bonjour-service cost resident memory the daemon should not pay.
  if (command === "board") return await withConfigErrors(async () => (await import("./cli/board")).boardCommand(rest));
  if (command === "discover") return await (await import("./cli/discover")).discoverCommand(rest);
  if (command === "keys") return await (await import("./cli/keys")).keysCommand(rest);
  if (command === "trust") return await (await import("./cli/trust")).trustCommand(rest);
  if (command === "cve") return await (await import("./cli/cve")).cveCommand(rest);
  if (command === "verify") {
    if (rest.length !== 1) return usageError(rest.length === 0 ? "verify needs a FILE" : `verify takes one FILE, got ${rest.length} arguments`, usage);
    return withConfigErrors(async () => {
      const config = loadAndCheck(rest[0]);
      for (const w of configWarnings(config)) console.error(`${rest[0]}: warning: ${w}`);
      console.log(`${rest[0]}: valid`);
      return 0;
    });
  }
  // the client (cli/client.ts), loaded on demand; gc/scrub go to a running daemon with --registry, offline with --config
  const online = (command === "gc" || command === "scrub") && rest.some((a) => a === "--registry" || a === "-r" || a.startsWith("--registry="));
  if (CLIENT_COMMANDS.includes(command) || online) return await (await import("./cli/client")).clientCommand(command, rest);
  if (command === "gc" || command === "scrub") {
    const args = parseArgs(rest, usage, command === "gc" ? ["--dry-run"] : []);
    if (!args) return 2;
    if (args.configPath === undefined) return usageError(`${command} needs --config FILE`, usage);
    const configPath = args.configPath;
    return withConfigErrors(async () => {
      const config = loadConfig(configPath);
      const log = createLogger(config.log.level === "info" ? "warn" : config.log.level, config.log.format);
      return runOffline(config, command, args.flags.has("--dry-run"), log, (line) => console.log(line));
    });
  }
  if (command === "serve") {
    const args = parseArgs(rest, usage);
    if (!args) return 2;
    return withConfigErrors(async () => {
      const config = loadAndCheck(args.configPath);
      const log = createLogger(config.log.level, config.log.format);
      // first, before any file, socket or thread is opened: returns only when not re-executed
      const untuned = await reexecTuned(tuningEnv(config.memory.jit as JitTiers));
      if (untuned) log.warn(`[memory] jit = "${config.memory.jit}" not applied (${untuned}); running with the runtime's default JIT tiers`);
      const unserviceable = serviceProblem(process.env);
      if (unserviceable) {
        log.error(unserviceable);
        return 1;
      }
      for (const w of configWarnings(config)) log.warn(w);
      // the audit trail is written at info level whatever [log] level says; it follows [log] format
      const auditLog = createLogger("info", config.log.format);
      const daemon = await startDaemon(config, log, auditLog).catch((err) => {
        throw listenProblem(err, config) ?? err;
      });
      await runService({
        config,
        configPath: args.configPath,
        log,
        close: () => daemon.close(),
        reload: (next) => {
          auditLog.reconfigure("info", next.log.format);
          daemon.reload(next);
        },
        watchConfig: daemon.auth !== undefined,
      });
      log.info("stopped");
      return 0;
    });
  }
  return usageError(`unknown command "${command}"`, USAGE);
}

/**
 * A ConfigError for an address that is not one of this host's, else undefined (a port in use
 * is reported by serve() itself as an AddressInUseError).
 */
function listenProblem(err: unknown, config: Config): ConfigError | undefined {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code !== "EADDRNOTAVAIL") return undefined;
  return new ConfigError("http.address", [`cannot listen on ${config.http.address}:${config.http.port}: the address is not one of this host's (${code})`]);
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}

/** The admin token: the file's first line, trimmed; a missing, unreadable or empty file stops the start. */
function readAdminToken(path: string): string {
  const problems: string[] = [];
  const token = readTokenFile(path, problems);
  if (token === undefined) throw new ConfigError(path, problems);
  return token;
}

/** zot's severity names (trivy's) for the scanner's (Grype's); "negligible" reads as LOW. */
const ZOT_SEVERITY: Record<string, Severity> = { critical: "CRITICAL", high: "HIGH", medium: "MEDIUM", low: "LOW", negligible: "LOW", unknown: "UNKNOWN" };

/** The scanner's results as search's vulnerability provider: undefined for an image not scanned yet. */
function vulnerabilitiesForSearch(cve: CveService): VulnerabilityProvider {
  return {
    vulnSummaryOf(repo, digest) {
      const s = cve.vulnSummaryOf(repo, digest);
      if (!s) return undefined;
      const bySeverity: Partial<Record<Severity, number>> = {};
      for (const [level, n] of Object.entries(s.counts)) {
        const name = ZOT_SEVERITY[level] ?? "UNKNOWN";
        if (n > 0) bySeverity[name] = (bySeverity[name] ?? 0) + n;
      }
      return { maxSeverity: s.maxSeverity === "none" ? "NONE" : (ZOT_SEVERITY[s.maxSeverity] ?? "UNKNOWN"), count: s.count, bySeverity };
    },
    cvesOf(repo, digest) {
      if (!cve.vulnSummaryOf(repo, digest)) return undefined;
      const byId = new Map<string, CveRecord>();
      for (const f of cve.cvesOf(repo, digest)) {
        let record = byId.get(f.id);
        if (!record) byId.set(f.id, (record = { id: f.id, title: f.id, description: f.cves.filter((c) => c !== f.id).join(", "), severity: ZOT_SEVERITY[f.severity] ?? "UNKNOWN", packages: [] }));
        record.packages.push({ name: f.package, installedVersion: f.version, fixedVersion: f.fixedIn ?? "Not Specified" });
      }
      return [...byId.values()];
    },
  };
}
