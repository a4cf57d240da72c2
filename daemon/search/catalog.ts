/**
 * Search's own index: one row per manifest with what a search answer needs of its config
 * (platform, created time, labels, history) and of its layers, plus each repository's tags,
 * in tables of meta.db beside the derived index. It is derived from the derived index (which
 * repositories and manifests exist, at which index.json stamp) and from the manifest and
 * config bytes, read through the registry's blob reader once per new manifest; a repository
 * whose stamp moved is brought up to date before a query is answered, so no query walks the
 * disk. Everything here can be dropped and rebuilt (the tables carry a version).
 *
 * A light model of each repository's manifests (platform, sizes, times, children) and tags
 * serves listing, filtering and sorting; the heavy fields (history, labels, annotations,
 * layer lists) stay in SQLite and are read only for the results a page returns. The light
 * models are read from the tables when a query needs them and kept in a least-recently-used
 * cache bounded by bytes (`[search] model_bytes`): a store larger than the bound costs table
 * reads per query instead of memory (~1.5 KiB per image once held them all). Nothing else
 * per repository stays in memory: which repositories are indexed, and at which stamp, is
 * read from search_repos when the index is brought up to date.
 *
 * Table version 2 (2: search_layers, digest indexes).
 */
import type { SqlDatabase, Statement } from "../platform/sqlite";
import type { IndexedManifest } from "../meta/meta";
import { extractConfig, extractManifest, type ManifestFacts } from "./extract";

const VERSION = "2";

const TABLES = `
CREATE TABLE IF NOT EXISTS search_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS search_repos (repo TEXT PRIMARY KEY, stamp TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS search_tags (repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (repo, tag)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS search_manifests (
  repo TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL, kind TEXT NOT NULL, size INTEGER NOT NULL,
  config_digest TEXT, config_media_type TEXT, config_size INTEGER, artifact_type TEXT, subject TEXT,
  os TEXT, arch TEXT, variant TEXT, created INTEGER, first_layer TEXT, layers TEXT, children TEXT,
  labels TEXT, annotations TEXT, history TEXT,
  PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS search_manifests_by_first_layer ON search_manifests (first_layer) WHERE first_layer IS NOT NULL;
CREATE INDEX IF NOT EXISTS search_manifests_by_digest ON search_manifests (digest);
CREATE INDEX IF NOT EXISTS search_manifests_by_config ON search_manifests (config_digest) WHERE config_digest IS NOT NULL;
CREATE TABLE IF NOT EXISTS search_layers (layer TEXT NOT NULL, repo TEXT NOT NULL, manifest TEXT NOT NULL, PRIMARY KEY (layer, repo, manifest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS search_layers_by_manifest ON search_layers (repo, manifest);
`;

/** What search needs from the rest of the daemon to build its index. */
export interface CatalogSource {
  /** Every indexed repository and the index.json stamp its derived rows were built from. */
  repoStamps(): { name: string; stamp: string }[];
  /** The manifests the derived index knows in `repo`. */
  manifestsOf(repo: string): IndexedManifest[];
  /** The tags of `repo` (tag -> manifest digest); undefined when the repository is gone. */
  tags(repo: string): Promise<Map<string, string> | undefined>;
  /** The bytes of blob `digest` of `repo` when it exists and has at most `maxBytes`; else undefined. */
  read(repo: string, digest: string, maxBytes: number): Promise<Uint8Array | undefined>;
}

/** A manifest as kept in memory: enough to list, filter and sort without reading SQLite. */
export interface ManifestLite {
  digest: string;
  mediaType: string;
  kind: "image" | "index";
  /** Bytes of the manifest, its config and layers (an index: the index alone). */
  ownSize: number;
  /** {@link ownSize}, and for an index the total sizes of its children. */
  totalSize: number;
  configDigest?: string;
  artifactType?: string;
  os?: string;
  arch?: string;
  variant?: string;
  /** Creation time from the config (an index: the newest of its children), ms since the epoch. */
  created?: number;
  firstLayer?: string;
  /** An index's children, in its order. */
  children?: string[];
  vendor?: string;
}

/** One repository in memory. */
export interface RepoLite {
  name: string;
  tags: Map<string, string>;
  manifests: Map<string, ManifestLite>;
}

/** The heavy fields of one manifest, read on demand. */
export interface ManifestDetail {
  layers: { digest: string; size: number }[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  history: { created?: string; createdBy?: string; author?: string; comment?: string; emptyLayer?: boolean }[];
  configSize?: number;
  configMediaType?: string;
  /** Characters of stored text these fields were parsed from (what reading them cost). */
  textSize: number;
}

/** Options for {@link Catalog}. */
export interface CatalogOptions {
  /** Largest manifest read (the registry's `max_manifest_bytes`). */
  maxManifestBytes: number;
  /** Largest config blob read; a larger one is indexed without its config facts. */
  maxConfigBytes: number;
  /** Bytes of light models kept in memory (estimated); default 16 MiB. */
  modelBytes?: number;
}

/** Default of {@link CatalogOptions.modelBytes}. */
export const DEFAULT_MODEL_BYTES = 16 * 1024 * 1024;

/** Search's index: tables in meta.db and the light model in memory. */
export class Catalog {
  /** Light models recently used, least recent first, with their estimated bytes. */
  private readonly cache = new Map<string, { repo: RepoLite; bytes: number }>();
  private cachedBytes = 0;
  private readonly budget: number;
  private refreshing: Promise<void> | undefined;
  private readonly q: {
    put: Statement<never>;
    drop: Statement<never>;
    dropRepo: Statement<never>;
    dropTags: Statement<never>;
    putTag: Statement<never>;
    setStamp: Statement<never>;
    dropStamp: Statement<never>;
    detail: Statement<{ layers: string | null; labels: string | null; annotations: string | null; history: string | null; config_size: number | null; config_media_type: string | null }>;
    byFirstLayer: Statement<{ repo: string; digest: string; layers: string }>;
    containing: Statement<{ repo: string; digest: string }>;
    exact: Statement<{ repo: string; digest: string }>;
    putLayer: Statement<never>;
    dropLayers: Statement<never>;
    dropRepoLayers: Statement<never>;
    names: Statement<{ repo: string }>;
    stamps: Statement<{ repo: string; stamp: string }>;
    stampOf: Statement<{ stamp: string }>;
    tagsOf: Statement<{ tag: string; digest: string }>;
    rowsOf: Statement<LiteRow>;
  };

  constructor(
    private readonly db: SqlDatabase,
    private readonly source: CatalogSource,
    private readonly options: CatalogOptions,
  ) {
    const version = (() => {
      try {
        return db.prepare<{ value: string }>("SELECT value FROM search_info WHERE key = 'version'").get()?.value;
      } catch {
        return undefined;
      }
    })();
    if (version !== VERSION) {
      db.transaction(() => {
        db.exec("DROP TABLE IF EXISTS search_layers; DROP TABLE IF EXISTS search_manifests; DROP TABLE IF EXISTS search_tags; DROP TABLE IF EXISTS search_repos; DROP TABLE IF EXISTS search_info;");
        db.exec(TABLES);
        db.prepare("INSERT INTO search_info (key, value) VALUES ('version', ?)").run(VERSION);
      });
    }
    this.q = {
      put: db.prepare(
        `INSERT OR REPLACE INTO search_manifests (repo, digest, media_type, kind, size, config_digest, config_media_type, config_size, artifact_type, subject,
          os, arch, variant, created, first_layer, layers, children, labels, annotations, history) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      drop: db.prepare("DELETE FROM search_manifests WHERE repo = ? AND digest = ?"),
      dropRepo: db.prepare("DELETE FROM search_manifests WHERE repo = ?"),
      dropTags: db.prepare("DELETE FROM search_tags WHERE repo = ?"),
      putTag: db.prepare("INSERT OR REPLACE INTO search_tags (repo, tag, digest) VALUES (?, ?, ?)"),
      setStamp: db.prepare("INSERT OR REPLACE INTO search_repos (repo, stamp) VALUES (?, ?)"),
      dropStamp: db.prepare("DELETE FROM search_repos WHERE repo = ?"),
      detail: db.prepare("SELECT layers, labels, annotations, history, config_size, config_media_type FROM search_manifests WHERE repo = ? AND digest = ?"),
      byFirstLayer: db.prepare("SELECT repo, digest, layers FROM search_manifests WHERE first_layer = ?"),
      containing: db.prepare("SELECT repo, digest FROM search_manifests WHERE digest LIKE ?1 ESCAPE '\\' OR config_digest LIKE ?1 ESCAPE '\\' OR layers LIKE ?1 ESCAPE '\\'"),
      exact: db.prepare(
        "SELECT repo, digest FROM search_manifests WHERE digest = ?1 UNION SELECT repo, digest FROM search_manifests WHERE config_digest = ?1 UNION SELECT repo, manifest AS digest FROM search_layers WHERE layer = ?1",
      ),
      putLayer: db.prepare("INSERT OR IGNORE INTO search_layers (layer, repo, manifest) VALUES (?, ?, ?)"),
      dropLayers: db.prepare("DELETE FROM search_layers WHERE repo = ? AND manifest = ?"),
      dropRepoLayers: db.prepare("DELETE FROM search_layers WHERE repo = ?"),
      names: db.prepare("SELECT repo FROM search_repos ORDER BY repo"),
      stamps: db.prepare("SELECT repo, stamp FROM search_repos"),
      stampOf: db.prepare("SELECT stamp FROM search_repos WHERE repo = ?"),
      tagsOf: db.prepare("SELECT tag, digest FROM search_tags WHERE repo = ?"),
      // the light fields only, sizes summed and the vendor picked in SQLite: reading a model
      // back parses no layer list, annotations or labels (a full scan over a store larger
      // than the bound reads every repository's rows, per query)
      rowsOf: db.prepare(
        `SELECT digest, media_type, kind, config_digest, artifact_type, os, arch, variant, created, first_layer, children,
          size + coalesce(config_size, 0) + coalesce((SELECT sum(json_extract(l.value, '$[1]')) FROM json_each(m.layers) l), 0) AS own_size,
          coalesce(json_extract(m.annotations, '$."org.opencontainers.image.vendor"'), json_extract(m.labels, '$."org.opencontainers.image.vendor"')) AS vendor
        FROM search_manifests m WHERE repo = ?`,
      ),
    };
    this.budget = options.modelBytes ?? DEFAULT_MODEL_BYTES;
  }

  /**
   * Every indexed repository (call {@link refresh} first), in name order, each model read
   * from the tables unless cached: iterate once per query and keep no more than needed.
   */
  *repositories(): Iterable<RepoLite> {
    for (const { repo: name } of this.q.names.all()) {
      const hit = this.cache.get(name);
      if (hit) {
        yield hit.repo;
        continue;
      }
      // a scan keeps what is cached: a model read now is kept only while there is room (an
      // LRU evicting on every miss of an in-order scan would hold nothing the next scan wants)
      const repo = this.loadRepo(name);
      this.remember(repo, false);
      yield repo;
    }
  }

  /** One repository, if indexed. */
  repo(name: string): RepoLite | undefined {
    const hit = this.cache.get(name);
    if (hit) {
      this.cache.delete(name); // most recent last
      this.cache.set(name, hit);
      return hit.repo;
    }
    if (!this.q.stampOf.get(name)) return undefined;
    const repo = this.loadRepo(name);
    this.remember(repo);
    return repo;
  }

  /** Number of manifests and estimated bytes of the light models in memory (figures, tests). */
  memory(): { repositories: number; manifests: number; bytes: number; budget: number } {
    let manifests = 0;
    for (const { repo } of this.cache.values()) manifests += repo.manifests.size;
    return { repositories: this.cache.size, manifests, bytes: this.cachedBytes, budget: this.budget };
  }

  /** The heavy fields of a manifest (one SQLite read). */
  detail(repo: string, digest: string): ManifestDetail {
    const r = this.q.detail.get(repo, digest);
    const out: ManifestDetail = {
      layers: r?.layers ? (JSON.parse(r.layers) as [string, number][]).map(([d, s]) => ({ digest: d, size: s })) : [],
      labels: r?.labels ? (JSON.parse(r.labels) as Record<string, string>) : {},
      annotations: r?.annotations ? (JSON.parse(r.annotations) as Record<string, string>) : {},
      history: r?.history ? (JSON.parse(r.history) as ManifestDetail["history"]) : [],
      textSize: (r?.layers?.length ?? 0) + (r?.labels?.length ?? 0) + (r?.annotations?.length ?? 0) + (r?.history?.length ?? 0),
    };
    if (r?.config_size != null) out.configSize = r.config_size;
    if (r?.config_media_type) out.configMediaType = r.config_media_type;
    return out;
  }

  /** Image manifests whose first layer is `digest`, with their layer digests (base/derived images). */
  byFirstLayer(digest: string): { repo: string; digest: string; layers: string[] }[] {
    return this.q.byFirstLayer.all(digest).map((r) => ({ repo: r.repo, digest: r.digest, layers: (JSON.parse(r.layers) as [string, number][]).map(([d]) => d) }));
  }

  /**
   * Manifests whose own, config or layer digest contains `text` (zot's ImageListForDigest
   * match): a whole sha256 digest is looked up in the indexes, anything shorter scans.
   */
  containing(text: string): { repo: string; digest: string }[] {
    if (/^sha256:[0-9a-f]{64}$/.test(text)) return this.q.exact.all(text);
    return this.q.containing.all(`%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
  }

  /**
   * Brings the index up to date with the derived index: repositories whose index.json stamp
   * moved are re-read (only manifests not yet indexed are parsed); gone ones are dropped.
   * Concurrent callers share one refresh.
   */
  refresh(): Promise<void> {
    return (this.refreshing ??= this.doRefresh().finally(() => (this.refreshing = undefined)));
  }

  /**
   * {@link refresh}, waited for at most `ms`: true when the index is up to date, false when
   * the refresh goes on after `ms` (it is not stopped: each repository is committed as it is
   * done, so the next call finds that much done). A refresh that fails rejects.
   */
  async refreshWithin(ms: number): Promise<boolean> {
    const work = this.refresh();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    try {
      return await Promise.race([work.then(() => true), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async doRefresh(): Promise<void> {
    // both lists live only for this refresh: no per-repository state between queries
    const indexed = new Map<string, string>();
    for (const r of this.q.stamps.all()) indexed.set(r.repo, r.stamp);
    for (const { name, stamp } of this.source.repoStamps()) {
      const had = indexed.get(name);
      indexed.delete(name);
      if (had !== stamp) await this.reindex(name, stamp);
    }
    for (const name of indexed.keys()) {
      this.db.transaction(() => {
        this.q.dropRepo.run(name);
        this.q.dropRepoLayers.run(name);
        this.q.dropTags.run(name);
        this.q.dropStamp.run(name);
      });
      this.forget(name);
    }
  }

  private async reindex(name: string, stamp: string): Promise<void> {
    const tags = await this.source.tags(name);
    // what is indexed already is not parsed again (from the cache, else the tables)
    const known = this.cache.get(name)?.repo.manifests ?? (this.q.stampOf.get(name) ? this.loadRepo(name).manifests : new Map<string, ManifestLite>());
    const indexed = tags ? this.source.manifestsOf(name) : [];
    const fresh: { lite: ManifestLite; facts: ManifestFacts; subject?: string; size: number }[] = [];
    for (const m of indexed) {
      if (known.has(m.digest)) continue;
      const facts = await this.read(name, m);
      if (facts) fresh.push({ lite: liteOf(m, facts), facts, size: m.size, ...(m.subject ? { subject: m.subject } : {}) });
    }
    const keep = new Set(indexed.map((m) => m.digest));
    const manifests = new Map<string, ManifestLite>();
    for (const [d, lite] of known) if (keep.has(d)) manifests.set(d, lite);
    for (const f of fresh) manifests.set(f.lite.digest, f.lite);
    rollUpIndexes(manifests);
    this.db.transaction(() => {
      for (const d of known.keys()) {
        if (keep.has(d)) continue;
        this.q.drop.run(name, d);
        this.q.dropLayers.run(name, d);
      }
      for (const f of fresh) this.write(name, f.lite, f.facts, f.size, f.subject);
      this.q.dropTags.run(name);
      for (const [tag, digest] of tags ?? []) this.q.putTag.run(name, tag, digest);
      if (tags) this.q.setStamp.run(name, stamp);
      else this.q.dropStamp.run(name);
    });
    this.forget(name);
    if (tags) this.remember({ name, tags, manifests }); // the query that asked for the refresh will want it
  }

  /** Caches `repo`'s model, evicting the least recently used past the budget (one larger than the budget is not kept). */
  private remember(repo: RepoLite, evict = true): void {
    this.forget(repo.name);
    const bytes = modelBytes(repo);
    if (bytes > this.budget || (!evict && this.cachedBytes + bytes > this.budget)) return;
    this.cache.set(repo.name, { repo, bytes });
    this.cachedBytes += bytes;
    for (const [name, entry] of this.cache) {
      if (this.cachedBytes <= this.budget) break;
      this.cache.delete(name);
      this.cachedBytes -= entry.bytes;
    }
  }

  private forget(name: string): void {
    const entry = this.cache.get(name);
    if (!entry) return;
    this.cache.delete(name);
    this.cachedBytes -= entry.bytes;
  }

  /** The facts of one manifest from its bytes and its config's; undefined when unreadable. */
  private async read(repo: string, m: IndexedManifest): Promise<ManifestFacts | undefined> {
    const bytes = await this.source.read(repo, m.digest, this.options.maxManifestBytes);
    if (!bytes) return undefined;
    const facts = extractManifest(bytes, m.mediaType);
    if (!facts) return undefined;
    if (facts.kind === "image" && facts.config) {
      const config = await this.source.read(repo, facts.config.digest, this.options.maxConfigBytes);
      if (config) Object.assign(facts, extractConfig(config));
    }
    return facts;
  }

  private write(repo: string, lite: ManifestLite, f: ManifestFacts, size: number, subject: string | undefined): void {
    const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v));
    this.q.put.run(
      repo, lite.digest, lite.mediaType, lite.kind, size,
      f.config?.digest ?? null, f.config?.mediaType ?? null, f.config?.size ?? null, lite.artifactType ?? null, subject ?? null,
      lite.os ?? null, lite.arch ?? null, lite.variant ?? null, lite.created ?? null, lite.firstLayer ?? null,
      json(f.layers.map((l) => [l.digest, l.size])), json(f.children?.map((c) => c.digest)),
      json(f.labels), json(f.annotations), json(f.history),
    );
    for (const l of f.layers) this.q.putLayer.run(l.digest, repo, lite.digest);
  }

  /** One repository's light model from the tables. */
  private loadRepo(name: string): RepoLite {
    const repo: RepoLite = { name, tags: new Map(), manifests: new Map() };
    for (const t of this.q.tagsOf.all(name)) repo.tags.set(t.tag, t.digest);
    for (const r of this.q.rowsOf.all(name)) repo.manifests.set(r.digest, liteOfRow(r));
    rollUpIndexes(repo.manifests);
    return repo;
  }
}

/** The light columns of a search_manifests row, as {@link Catalog} reads a model back. */
interface LiteRow {
  digest: string;
  media_type: string;
  kind: string;
  config_digest: string | null;
  artifact_type: string | null;
  os: string | null;
  arch: string | null;
  variant: string | null;
  created: number | null;
  first_layer: string | null;
  children: string | null;
  own_size: number;
  vendor: string | null;
}

/** A light model from its table row. */
function liteOfRow(r: LiteRow): ManifestLite {
  const lite: ManifestLite = {
    digest: r.digest,
    mediaType: r.media_type,
    kind: r.kind === "index" ? "index" : "image",
    ownSize: r.own_size,
    totalSize: r.own_size,
  };
  if (r.config_digest) lite.configDigest = r.config_digest;
  if (r.artifact_type) lite.artifactType = r.artifact_type;
  if (r.os) lite.os = r.os;
  if (r.arch) lite.arch = r.arch;
  if (r.variant) lite.variant = r.variant;
  if (r.created !== null) lite.created = r.created;
  if (r.first_layer) lite.firstLayer = r.first_layer;
  if (r.children) lite.children = JSON.parse(r.children) as string[];
  if (typeof r.vendor === "string" && r.vendor) lite.vendor = r.vendor;
  return lite;
}

/** Estimated bytes a light model holds (object headers, map entries, strings). */
export function modelBytes(repo: RepoLite): number {
  const str = (s: string | undefined) => (s === undefined ? 0 : 24 + s.length);
  let bytes = 200 + str(repo.name);
  for (const [tag, digest] of repo.tags) bytes += 64 + str(tag) + str(digest);
  for (const m of repo.manifests.values()) {
    bytes += 280 + str(m.digest) + str(m.mediaType) + str(m.configDigest) + str(m.artifactType) + str(m.os) + str(m.arch) + str(m.variant) + str(m.firstLayer) + str(m.vendor);
    for (const c of m.children ?? []) bytes += 16 + str(c);
  }
  return bytes;
}

function liteOf(m: IndexedManifest, f: ManifestFacts): ManifestLite {
  const lite: ManifestLite = {
    digest: m.digest,
    mediaType: m.mediaType,
    kind: f.kind,
    ownSize: m.size + (f.config?.size ?? 0) + f.layers.reduce((a, l) => a + l.size, 0),
    totalSize: 0,
  };
  lite.totalSize = lite.ownSize;
  if (f.config) lite.configDigest = f.config.digest;
  const artifactType = f.artifactType ?? (f.kind === "image" ? f.config?.mediaType : undefined);
  if (artifactType) lite.artifactType = artifactType;
  if (f.os) lite.os = f.os;
  if (f.arch) lite.arch = f.arch;
  if (f.variant) lite.variant = f.variant;
  if (f.created !== undefined) lite.created = f.created;
  if (f.layers[0]) lite.firstLayer = f.layers[0].digest;
  if (f.children) lite.children = f.children.map((c) => c.digest);
  const vendor = f.annotations?.["org.opencontainers.image.vendor"] ?? f.labels?.["org.opencontainers.image.vendor"];
  if (vendor) lite.vendor = vendor;
  return lite;
}

/** An index's total size and created time come from its children (known in the same repository). */
function rollUpIndexes(manifests: Map<string, ManifestLite>): void {
  for (const m of manifests.values()) {
    if (m.kind !== "index" || !m.children) continue;
    let size = 0;
    let created: number | undefined;
    for (const d of m.children) {
      const c = manifests.get(d);
      if (!c || c.kind !== "image") continue;
      size += c.totalSize;
      if (c.created !== undefined && (created === undefined || c.created > created)) created = c.created;
    }
    m.totalSize = m.ownSize + size;
    if (created !== undefined) m.created = created;
  }
}

