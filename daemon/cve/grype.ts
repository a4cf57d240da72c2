/**
 * Reading Grype's published vulnerability database (SQLite), schema v6 and v5, read-only.
 * Only what matching needs is read: for v6 the `db_metadata` row (model, revision,
 * addition, build time), `operating_systems`, `packages` (ecosystem + name),
 * `affected_package_handles` joined to `vulnerability_handles`, and the JSON documents in
 * `blobs` (affected ranges with their fixes; the vulnerability's severities). For v5, the
 * `id` row, and `vulnerability` / `vulnerability_metadata` by namespace
 * ("debian:distro:debian:12"). The schema facts follow Grype's published models; the code
 * here is berth's own.
 */
import { openReadOnly, type SqlDatabase } from "../platform/sqlite";

/** Tables a database of each schema must have. */
export const REQUIRED_TABLES: Record<5 | 6, string[]> = {
  6: ["db_metadata", "blobs", "providers", "vulnerability_handles", "affected_package_handles", "packages", "operating_systems"],
  5: ["id", "vulnerability", "vulnerability_metadata"],
};

/** What a database says about itself. */
export interface DbInfo {
  schema: 5 | 6;
  /** "6.0.2" (model.revision.addition) or "5". */
  schemaVersion: string;
  /** The build timestamp, ISO 8601. */
  built: string;
}

/** One affected-package record for a package of an OS release. */
export interface Advisory {
  /** The vulnerability's name in the database (CVE-…, or a vendor id such as ALAS-…). */
  id: string;
  /** CVE ids the record names (may include `id`). */
  cves: string[];
  /** Version constraint ("< 1.2-3", ">= 1, < 2 || = 3"); empty: every version is affected. */
  constraint: string;
  /** Version format of the constraint ("dpkg", "apk", "rpm"). */
  format: string;
  /** The fixed-in version, when one is known. */
  fixedIn?: string;
  /** "fixed", "not-fixed", "wont-fix", "unknown". */
  fixState: string;
  /** Qualitative severity: critical, high, medium, low, negligible or unknown. */
  severity: Severity;
}

/** Severity levels, worst first. */
export const SEVERITIES = ["critical", "high", "medium", "low", "negligible", "unknown"] as const;
/** One severity level. */
export type Severity = (typeof SEVERITIES)[number];

/** The operating system as the database names it. */
export interface OsKey {
  /** Grype's distro name: debian, ubuntu, alpine, redhat, amazonlinux, oraclelinux, … */
  name: string;
  major: string;
  minor: string;
  /** A label such as "edge" (alpine edge) when the release has no number. */
  label?: string;
}

/** Raised when a file is not a usable Grype database. */
export class GrypeDbError extends Error {}

function tablesOf(db: SqlDatabase): Set<string> {
  return new Set(db.prepare<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((r) => r.name));
}

/** Reads the schema and build date; throws {@link GrypeDbError} when the file is not one. */
export function describe(db: SqlDatabase): DbInfo {
  const tables = tablesOf(db);
  if (tables.has("db_metadata")) {
    const missing = REQUIRED_TABLES[6].filter((t) => !tables.has(t));
    if (missing.length) throw new GrypeDbError(`the database lacks the schema v6 tables ${missing.map((t) => `"${t}"`).join(", ")}`);
    const row = db.prepare<{ build_timestamp: string; model: number; revision: number; addition: number }>("SELECT build_timestamp, model, revision, addition FROM db_metadata LIMIT 1").get();
    if (!row) throw new GrypeDbError("the database's db_metadata table is empty");
    if (row.model !== 6) throw new GrypeDbError(`the database is schema model ${row.model}; berth reads models 6 and 5`);
    return { schema: 6, schemaVersion: `${row.model}.${row.revision}.${row.addition}`, built: isoDate(row.build_timestamp) };
  }
  if (tables.has("id")) {
    const missing = REQUIRED_TABLES[5].filter((t) => !tables.has(t));
    if (missing.length) throw new GrypeDbError(`the database lacks the schema v5 tables ${missing.map((t) => `"${t}"`).join(", ")}`);
    const row = db.prepare<{ build_timestamp: string; schema_version: number }>("SELECT build_timestamp, schema_version FROM id LIMIT 1").get();
    if (!row) throw new GrypeDbError("the database's id table is empty");
    if (row.schema_version !== 5) throw new GrypeDbError(`the database is schema version ${row.schema_version}; berth reads versions 6 and 5`);
    return { schema: 5, schemaVersion: "5", built: isoDate(row.build_timestamp) };
  }
  throw new GrypeDbError("the file is a SQLite database but not a Grype vulnerability database (no db_metadata or id table)");
}

function isoDate(text: string): string {
  const d = new Date(text.replace(" ", "T"));
  return Number.isNaN(d.getTime()) ? text : d.toISOString();
}

/** Worst-first rank of a severity (0 = critical). */
export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

/** A qualitative severity from a CVSS base score. */
function fromScore(score: number): Severity {
  return score >= 9 ? "critical" : score >= 7 ? "high" : score >= 4 ? "medium" : score > 0 ? "low" : "unknown";
}

function normalizeSeverity(text: unknown): Severity {
  const s = String(text ?? "").toLowerCase();
  return (SEVERITIES as readonly string[]).includes(s) ? (s as Severity) : s === "moderate" || s === "important" ? (s === "important" ? "high" : "medium") : "unknown";
}

interface V6Severity {
  scheme?: string;
  value?: unknown;
  rank?: number;
}

/** The severity a v6 vulnerability blob gives: the best-ranked qualitative one, else CVSS. */
export function severityOfBlob(blob: { severities?: V6Severity[] } | undefined): Severity {
  const list = [...(blob?.severities ?? [])].sort((a, b) => (a.rank ?? 99) - (b.rank ?? 99));
  for (const s of list) if (typeof s.value === "string" && normalizeSeverity(s.value) !== "unknown") return normalizeSeverity(s.value);
  for (const s of list) {
    const v = s.value as { score?: number } | undefined;
    if (v && typeof v === "object" && typeof v.score === "number") return fromScore(v.score);
  }
  return "unknown";
}

/** A read-only Grype database open for matching. */
export class GrypeDb {
  readonly info: DbInfo;
  private readonly db: SqlDatabase;
  private readonly blobCache = new Map<number, unknown>();
  private readonly ecosystemColumn: string;

  /** Opens `path` read-only and reads its schema ({@link GrypeDbError} if it is not one). */
  constructor(path: string) {
    try {
      this.db = openReadOnly(path);
    } catch (err) {
      throw new GrypeDbError(`the file cannot be opened as a SQLite database: ${(err as Error).message}`);
    }
    try {
      // a small page cache: matching reads a few pages per package
      this.db.exec("PRAGMA cache_size = -4096; PRAGMA mmap_size = 0;");
      this.info = describe(this.db);
      const cols = this.info.schema === 6 ? this.db.prepare<{ name: string }>("PRAGMA table_info(packages)").all().map((c) => c.name) : [];
      // early v6 databases call the column "type", later ones "ecosystem"
      this.ecosystemColumn = cols.includes("ecosystem") ? "ecosystem" : "type";
    } catch (err) {
      this.db.close();
      throw err instanceof GrypeDbError ? err : new GrypeDbError(`the database cannot be read: ${(err as Error).message}`);
    }
  }

  /** Runs SQLite's quick_check; returns the problems (empty when sound). */
  check(): string[] {
    const rows = this.db.prepare<{ quick_check: string }>("PRAGMA quick_check(20)").all();
    return rows.map((r) => r.quick_check).filter((t) => t !== "ok");
  }

  close(): void {
    this.db.close();
  }

  private blob(id: number): unknown {
    if (this.blobCache.has(id)) return this.blobCache.get(id);
    const row = this.db.prepare<{ value: string }>("SELECT value FROM blobs WHERE id = ?").get(id);
    let value: unknown;
    try {
      value = row ? JSON.parse(row.value) : undefined;
    } catch {
      value = undefined;
    }
    if (this.blobCache.size > 4096) this.blobCache.clear();
    this.blobCache.set(id, value);
    return value;
  }

  /** Ids of the OS rows for `os` (v6): the exact minor release first, then the major alone. */
  osIds(os: OsKey): number[] {
    if (this.info.schema !== 6) return [];
    const rows = os.label
      ? this.db.prepare<{ id: number }>("SELECT id FROM operating_systems WHERE (name = ?1 COLLATE NOCASE OR release_id = ?2 COLLATE NOCASE) AND label_version = ?3 COLLATE NOCASE").all(os.name, os.name, os.label)
      : this.db
          .prepare<{ id: number; minor_version: string; channel: string | null }>(
            `SELECT id, minor_version${this.hasColumn("operating_systems", "channel") ? ", channel" : ", NULL AS channel"} FROM operating_systems WHERE (name = ?1 COLLATE NOCASE${this.hasColumn("operating_systems", "release_id") ? " OR release_id = ?1 COLLATE NOCASE" : ""}) AND major_version = ?2 AND (minor_version = ?3 OR minor_version = '')`,
          )
          .all(os.name, os.major, os.minor)
          // the mainline channel only (not e.g. RHEL EUS), the exact minor release if there is one
          .filter((r) => !r.channel);
    return rows.map((r) => r.id);
  }

  private readonly columns = new Map<string, Set<string>>();
  private hasColumn(table: string, column: string): boolean {
    let cols = this.columns.get(table);
    if (!cols) {
      cols = new Set(this.db.prepare<{ name: string }>(`PRAGMA table_info(${table})`).all().map((c) => c.name));
      this.columns.set(table, cols);
    }
    return cols.has(column);
  }

  /** The advisories for package `name` of `ecosystem` (deb, apk, rpm) on `os`. */
  advisories(os: OsKey, osIds: number[], ecosystem: string, name: string): Advisory[] {
    return this.info.schema === 6 ? this.v6(osIds, ecosystem, name) : this.v5(os, name);
  }

  private v6(osIds: number[], ecosystem: string, name: string): Advisory[] {
    if (osIds.length === 0) return [];
    const rows = this.db
      .prepare<{ blob_id: number; vname: string; vblob: number; status: string }>(
        `SELECT a.blob_id AS blob_id, v.name AS vname, v.blob_id AS vblob, v.status AS status FROM affected_package_handles a
         JOIN packages p ON p.id = a.package_id JOIN vulnerability_handles v ON v.id = a.vulnerability_id
         WHERE p.name = ?1 COLLATE NOCASE AND p.${this.ecosystemColumn} = ?2 COLLATE NOCASE AND a.operating_system_id IN (${osIds.map(Number).join(",")})`,
      )
      .all(name, ecosystem);
    const out: Advisory[] = [];
    for (const r of rows) {
      if (r.status === "rejected" || r.status === "withdrawn") continue;
      const pkg = this.blob(r.blob_id) as { cves?: string[]; ranges?: { version?: { type?: string; constraint?: string }; fix?: { version?: string; state?: string } }[] } | undefined;
      const vuln = this.blob(r.vblob) as { severities?: V6Severity[] } | undefined;
      const severity = severityOfBlob(vuln);
      const cves = [...new Set([...(r.vname.toUpperCase().startsWith("CVE-") ? [r.vname] : []), ...(pkg?.cves ?? [])])];
      for (const range of pkg?.ranges ?? [{}]) {
        const a: Advisory = { id: r.vname, cves, constraint: range.version?.constraint ?? "", format: range.version?.type ?? "", fixState: range.fix?.state ?? "unknown", severity };
        if (range.fix?.version) a.fixedIn = range.fix.version;
        out.push(a);
      }
    }
    return out;
  }

  private v5(os: OsKey, name: string): Advisory[] {
    const ns = `${os.name}:distro:${os.name}:${os.label ?? (os.minor ? `${os.major}.${os.minor}` : os.major)}`;
    const rows = this.db
      .prepare<{ id: string; namespace: string; version_constraint: string; version_format: string; fixed_in_versions: string | null; fix_state: string; related: string | null; severity: string | null }>(
        `SELECT v.id, v.namespace, v.version_constraint, v.version_format, v.fixed_in_versions, v.fix_state, v.related_vulnerabilities AS related, m.severity
         FROM vulnerability v LEFT JOIN vulnerability_metadata m ON m.id = v.id AND m.namespace = v.namespace
         WHERE v.package_name = ?1 AND (v.namespace = ?2 OR v.namespace = ?3)`,
      )
      .all(name, ns, `${os.name}:distro:${os.name}:${os.major}`);
    return rows.map((r) => {
      const fixed = safeJson<string[]>(r.fixed_in_versions) ?? [];
      const related = (safeJson<{ id: string }[]>(r.related) ?? []).map((x) => x.id).filter((id) => id.toUpperCase().startsWith("CVE-"));
      const a: Advisory = {
        id: r.id,
        cves: [...new Set([...(r.id.toUpperCase().startsWith("CVE-") ? [r.id] : []), ...related])],
        constraint: r.version_constraint ?? "",
        format: r.version_format,
        fixState: r.fix_state || "unknown",
        severity: normalizeSeverity(r.severity),
      };
      if (fixed[0]) a.fixedIn = fixed[0];
      return a;
    });
  }
}

function safeJson<T>(text: string | null): T | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}
