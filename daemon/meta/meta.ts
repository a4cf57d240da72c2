/**
 * The derived index in bun:sqlite: which repositories exist, which manifests each holds,
 * what every index lists, and which manifests refer to a subject (the referrers API). It
 * is derived from the layouts on disk and can always be rebuilt from them: each repository
 * row records the stamp of the index.json it was built from, and a repository whose stamp
 * differs is re-indexed. It is written only when content changes, never on reads.
 *
 * Schema version 1.
 */
import type { SqlDatabase, Statement } from "../platform/sqlite";
import type { Descriptor, ParsedManifest } from "../oci/manifest";

/** Version of the schema below; a database of another version is rebuilt. */
export const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS repos (name TEXT PRIMARY KEY, stamp TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS manifests (
  repo TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL, size INTEGER NOT NULL,
  artifact_type TEXT, subject TEXT, annotations TEXT,
  PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifests_by_subject ON manifests (repo, subject) WHERE subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS children (
  repo TEXT NOT NULL, parent TEXT NOT NULL, child TEXT NOT NULL,
  PRIMARY KEY (repo, parent, child)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS children_by_child ON children (repo, child);
`;

/** A manifest as the derived index knows it. */
export interface ManifestRecord {
  digest: string;
  mediaType: string;
  size: number;
  parsed: ParsedManifest;
}

/** A manifest row of the index, as {@link Meta.manifestsOf} lists it. */
export interface IndexedManifest {
  digest: string;
  mediaType: string;
  size: number;
  artifactType?: string;
  subject?: string;
  annotations?: Record<string, string>;
}

interface ReferrerRow {
  digest: string;
  media_type: string;
  size: number;
  artifact_type: string | null;
  annotations: string | null;
}

/** Queries and updates of the derived index. */
export class Meta {
  private readonly q: {
    repoStamp: Statement<{ stamp: string }>;
    setRepo: Statement<never>;
    dropRepo: Statement<never>;
    dropRepoManifests: Statement<never>;
    dropRepoChildren: Statement<never>;
    repos: Statement<{ name: string }>;
    putManifest: Statement<never>;
    dropManifest: Statement<never>;
    putChild: Statement<never>;
    dropChildren: Statement<never>;
    parents: Statement<{ parent: string }>;
    manifest: Statement<{ one: number }>;
    referrers: Statement<ReferrerRow>;
  };

  /** Opens the index on `db`; returns whether it had to be (re)created empty. */
  constructor(private readonly db: SqlDatabase) {
    // A current schema is only read: opening must write nothing (a full disk still starts).
    if (this.readVersion() !== String(SCHEMA_VERSION)) {
      db.transaction(() => {
        db.exec("DROP TABLE IF EXISTS repos; DROP TABLE IF EXISTS manifests; DROP TABLE IF EXISTS children; DROP TABLE IF EXISTS info;");
        db.exec(SCHEMA);
        db.prepare("INSERT OR REPLACE INTO info (key, value) VALUES ('schema_version', ?)").run(String(SCHEMA_VERSION));
      });
    }
    this.q = {
      repoStamp: db.prepare("SELECT stamp FROM repos WHERE name = ?"),
      setRepo: db.prepare("INSERT OR REPLACE INTO repos (name, stamp) VALUES (?, ?)"),
      dropRepo: db.prepare("DELETE FROM repos WHERE name = ?"),
      dropRepoManifests: db.prepare("DELETE FROM manifests WHERE repo = ?"),
      dropRepoChildren: db.prepare("DELETE FROM children WHERE repo = ?"),
      repos: db.prepare("SELECT name FROM repos ORDER BY name"),
      putManifest: db.prepare(
        "INSERT OR REPLACE INTO manifests (repo, digest, media_type, size, artifact_type, subject, annotations) VALUES (?, ?, ?, ?, ?, ?, ?)",
      ),
      dropManifest: db.prepare("DELETE FROM manifests WHERE repo = ? AND digest = ?"),
      putChild: db.prepare("INSERT OR IGNORE INTO children (repo, parent, child) VALUES (?, ?, ?)"),
      dropChildren: db.prepare("DELETE FROM children WHERE repo = ? AND parent = ?"),
      parents: db.prepare("SELECT parent FROM children WHERE repo = ? AND child = ?"),
      manifest: db.prepare("SELECT 1 AS one FROM manifests WHERE repo = ? AND digest = ?"),
      referrers: db.prepare("SELECT digest, media_type, size, artifact_type, annotations FROM manifests WHERE repo = ? AND subject = ? ORDER BY digest"),
    };
  }

  private readVersion(): string | undefined {
    try {
      return this.db.prepare<{ value: string }>("SELECT value FROM info WHERE key = 'schema_version'").get()?.value;
    } catch {
      return undefined;
    }
  }

  /** The index.json stamp the repository was indexed from, if it is indexed. */
  stampOf(repo: string): string | undefined {
    return this.q.repoStamp.get(repo)?.stamp;
  }

  /** Every indexed repository, in lexical order. */
  repositories(): string[] {
    return this.q.repos.all().map((r) => r.name);
  }

  /** Every manifest of every repository (for a full vulnerability rescan). */
  allManifests(): { repo: string; digest: string }[] {
    return this.db.prepare<{ repo: string; digest: string }>("SELECT repo, digest FROM manifests ORDER BY repo, digest").all();
  }

  /** Replaces everything known about `repo` with `manifests`, recorded as built from `stamp`. */
  replaceRepo(repo: string, stamp: string, manifests: ManifestRecord[]): void {
    this.db.transaction(() => {
      this.q.dropRepoManifests.run(repo);
      this.q.dropRepoChildren.run(repo);
      for (const m of manifests) this.insert(repo, m);
      this.q.setRepo.run(repo, stamp);
    });
  }

  /** Forgets a repository. */
  dropRepo(repo: string): void {
    this.db.transaction(() => {
      this.q.dropRepoManifests.run(repo);
      this.q.dropRepoChildren.run(repo);
      this.q.dropRepo.run(repo);
    });
  }

  /** Records a pushed manifest, and the index.json stamp that now describes the repository. */
  addManifest(repo: string, stamp: string, manifest: ManifestRecord): void {
    this.db.transaction(() => {
      this.insert(repo, manifest);
      this.q.setRepo.run(repo, stamp);
    });
  }

  /** Forgets a deleted manifest. */
  removeManifest(repo: string, stamp: string, digest: string): void {
    this.db.transaction(() => {
      this.q.dropManifest.run(repo, digest);
      this.q.dropChildren.run(repo, digest);
      this.q.setRepo.run(repo, stamp);
    });
  }

  /** Forgets several deleted manifests in one transaction (garbage collection's batches). */
  removeManifests(repo: string, stamp: string, digests: readonly string[]): void {
    this.db.transaction(() => {
      for (const digest of digests) {
        this.q.dropManifest.run(repo, digest);
        this.q.dropChildren.run(repo, digest);
      }
      this.q.setRepo.run(repo, stamp);
    });
  }

  /** Records that the repository is described by index.json version `stamp`. */
  touchRepo(repo: string, stamp: string): void {
    this.q.setRepo.run(repo, stamp);
  }

  /** True when the derived index knows `digest` as a manifest of `repo` (listed, or a child of one). */
  hasManifest(repo: string, digest: string): boolean {
    return this.q.manifest.get(repo, digest) != null;
  }

  /** Indexes in `repo` that list manifest `digest`. */
  parentsOf(repo: string, digest: string): string[] {
    return this.q.parents.all(repo, digest).map((r) => r.parent);
  }

  /** Descriptors of the manifests in `repo` whose subject is `digest` (distribution spec, "Listing Referrers"). */
  referrers(repo: string, digest: string): Descriptor[] {
    return this.q.referrers.all(repo, digest).map((r) => {
      const d: Descriptor = { mediaType: r.media_type, digest: r.digest, size: r.size };
      if (r.artifact_type) d.artifactType = r.artifact_type;
      if (r.annotations) d.annotations = JSON.parse(r.annotations) as Record<string, string>;
      return d;
    });
  }

  /** Every indexed repository with the index.json stamp its rows were built from (search compares them). */
  repoStamps(): { name: string; stamp: string }[] {
    return (this.stampsQuery ??= this.db.prepare<{ name: string; stamp: string }>("SELECT name, stamp FROM repos")).all();
  }

  /** The manifests of `repo` the index knows (listed ones and the children of indexes). */
  manifestsOf(repo: string): IndexedManifest[] {
    this.manifestsQuery ??= this.db.prepare<{ digest: string; media_type: string; size: number; artifact_type: string | null; subject: string | null; annotations: string | null }>(
      "SELECT digest, media_type, size, artifact_type, subject, annotations FROM manifests WHERE repo = ?",
    );
    return this.manifestsQuery.all(repo).map((r) => {
      const m: IndexedManifest = { digest: r.digest, mediaType: r.media_type, size: r.size };
      if (r.artifact_type) m.artifactType = r.artifact_type;
      if (r.subject) m.subject = r.subject;
      if (r.annotations) m.annotations = JSON.parse(r.annotations) as Record<string, string>;
      return m;
    });
  }

  private stampsQuery: Statement<{ name: string; stamp: string }> | undefined;
  private manifestsQuery: Statement<{ digest: string; media_type: string; size: number; artifact_type: string | null; subject: string | null; annotations: string | null }> | undefined;

  private insert(repo: string, m: ManifestRecord): void {
    const p = m.parsed;
    this.q.putManifest.run(
      repo,
      m.digest,
      m.mediaType,
      m.size,
      p.artifactType ?? null,
      p.subject?.digest ?? null,
      p.annotations ? JSON.stringify(p.annotations) : null,
    );
    this.q.dropChildren.run(repo, m.digest);
    for (const child of p.manifests) this.q.putChild.run(repo, m.digest, child.digest);
  }
}
