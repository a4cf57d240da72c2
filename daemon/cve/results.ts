/**
 * Scan results in meta.db, in tables of this module's own (derived: a rescan rebuilds
 * them, and dropping them loses nothing): one row per scanned manifest with its severity
 * counts, and one row per finding. An index's row is the union of its children's.
 *
 * Schema (cve_* tables, version 1; recreated when the version differs):
 *   cve_scans    (repo, digest) -> os, packages, scanned_at, db_built, error, counts by severity
 *   cve_findings (repo, digest, id, package) -> version, fixed_in, fix_state, severity, cves (JSON)
 */
import type { SqlDatabase, Statement } from "../platform/sqlite";
import { type Severity, SEVERITIES, severityRank } from "./grype";
import type { Finding } from "./match";

const VERSION = "1";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS cve_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cve_scans (
  repo TEXT NOT NULL, digest TEXT NOT NULL, os TEXT, packages INTEGER NOT NULL, scanned_at TEXT NOT NULL,
  db_built TEXT, error TEXT,
  critical INTEGER NOT NULL, high INTEGER NOT NULL, medium INTEGER NOT NULL, low INTEGER NOT NULL,
  negligible INTEGER NOT NULL, unknown INTEGER NOT NULL,
  PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cve_findings (
  repo TEXT NOT NULL, digest TEXT NOT NULL, id TEXT NOT NULL, package TEXT NOT NULL,
  version TEXT NOT NULL, fixed_in TEXT, fix_state TEXT NOT NULL, severity TEXT NOT NULL, cves TEXT NOT NULL,
  PRIMARY KEY (repo, digest, id, package)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cve_findings_by_id ON cve_findings (id);
`;

/** Counts of findings per severity. */
export type SeverityCounts = Record<Severity, number>;

/** The summary zot's search shows as `Vulnerabilities { MaxSeverity Count }`. */
export interface VulnSummary {
  /** The worst severity found ("none" when nothing was found). */
  maxSeverity: Severity | "none";
  count: number;
  counts: SeverityCounts;
  scannedAt: string;
  /** The build date of the database the scan used. */
  dbBuilt: string | null;
  os: string | null;
  packages: number;
  /** Why the image could not be (fully) scanned, if so. */
  error: string | null;
}

/** What one scan recorded. */
export interface ScanRecord {
  os: string | undefined;
  packages: number;
  dbBuilt: string | undefined;
  error?: string;
  findings: Finding[];
}

interface ScanRow extends Record<Severity, number> {
  repo: string;
  digest: string;
  os: string | null;
  packages: number;
  scanned_at: string;
  db_built: string | null;
  error: string | null;
}

interface FindingRow {
  repo: string;
  digest: string;
  id: string;
  package: string;
  version: string;
  fixed_in: string | null;
  fix_state: string;
  severity: Severity;
  cves: string;
}

function emptyCounts(): SeverityCounts {
  return { critical: 0, high: 0, medium: 0, low: 0, negligible: 0, unknown: 0 };
}

/** The results tables. */
export class CveResults {
  private readonly q: {
    scan: Statement<ScanRow>;
    scans: Statement<ScanRow>;
    scansOfRepo: Statement<ScanRow>;
    findings: Statement<FindingRow>;
    withId: Statement<FindingRow>;
    putScan: Statement<never>;
    dropScan: Statement<never>;
    dropFindings: Statement<never>;
    putFinding: Statement<never>;
  };

  constructor(private readonly db: SqlDatabase) {
    const version = (() => {
      try {
        return db.prepare<{ value: string }>("SELECT value FROM cve_info WHERE key = 'schema_version'").get()?.value;
      } catch {
        return undefined;
      }
    })();
    if (version !== VERSION) {
      db.transaction(() => {
        db.exec("DROP TABLE IF EXISTS cve_findings; DROP TABLE IF EXISTS cve_scans; DROP TABLE IF EXISTS cve_info;");
        db.exec(SCHEMA);
        db.prepare("INSERT INTO cve_info (key, value) VALUES ('schema_version', ?)").run(VERSION);
      });
    }
    this.q = {
      scan: db.prepare("SELECT * FROM cve_scans WHERE repo = ? AND digest = ?"),
      scans: db.prepare("SELECT * FROM cve_scans ORDER BY repo, digest"),
      scansOfRepo: db.prepare("SELECT * FROM cve_scans WHERE repo = ? ORDER BY digest"),
      findings: db.prepare("SELECT * FROM cve_findings WHERE repo = ? AND digest = ?"),
      withId: db.prepare("SELECT * FROM cve_findings WHERE id = ? COLLATE NOCASE ORDER BY repo, digest"),
      putScan: db.prepare("INSERT OR REPLACE INTO cve_scans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
      dropScan: db.prepare("DELETE FROM cve_scans WHERE repo = ? AND digest = ?"),
      dropFindings: db.prepare("DELETE FROM cve_findings WHERE repo = ? AND digest = ?"),
      putFinding: db.prepare("INSERT OR REPLACE INTO cve_findings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
    };
  }

  /** Replaces the results of `repo@digest` with `scan`. */
  record(repo: string, digest: string, scan: ScanRecord): void {
    const counts = emptyCounts();
    for (const f of scan.findings) counts[f.severity]++;
    this.db.transaction(() => {
      this.q.dropFindings.run(repo, digest);
      this.q.putScan.run(repo, digest, scan.os ?? null, scan.packages, new Date().toISOString(), scan.dbBuilt ?? null, scan.error ?? null, ...SEVERITIES.map((s) => counts[s]));
      for (const f of scan.findings) this.q.putFinding.run(repo, digest, f.id, f.package, f.version, f.fixedIn ?? null, f.fixState, f.severity, JSON.stringify(f.cves));
    });
  }

  /** Forgets `repo@digest` (a deleted manifest). */
  drop(repo: string, digest: string): void {
    this.db.transaction(() => {
      this.q.dropFindings.run(repo, digest);
      this.q.dropScan.run(repo, digest);
    });
  }

  /** The summary of `repo@digest`, or undefined when it was never scanned. */
  summary(repo: string, digest: string): VulnSummary | undefined {
    const row = this.q.scan.get(repo, digest);
    return row ? toSummary(row) : undefined;
  }

  /** The findings of `repo@digest`, worst first. */
  findings(repo: string, digest: string): Finding[] {
    return this.q.findings.all(repo, digest).map(toFinding).sort((a, b) => severityRank(a.severity) - severityRank(b.severity) || a.id.localeCompare(b.id) || a.package.localeCompare(b.package));
  }

  /** Every scanned manifest (optionally of one repository) with its summary. */
  scanned(repo?: string): ({ repo: string; digest: string } & VulnSummary)[] {
    return (repo === undefined ? this.q.scans.all() : this.q.scansOfRepo.all(repo)).map((r) => ({ repo: r.repo, digest: r.digest, ...toSummary(r) }));
  }

  /** Manifests carrying vulnerability `id` (a CVE or vendor id), with the affected packages. */
  imagesWith(id: string): { repo: string; digest: string; findings: Finding[] }[] {
    const out = new Map<string, { repo: string; digest: string; findings: Finding[] }>();
    for (const row of this.q.withId.all(id)) {
      const key = `${row.repo}@${row.digest}`;
      let entry = out.get(key);
      if (!entry) out.set(key, (entry = { repo: row.repo, digest: row.digest, findings: [] }));
      entry.findings.push(toFinding(row));
    }
    return [...out.values()];
  }

  /** Findings per severity over every scanned manifest (for metrics); `visible` filters repositories. */
  totals(visible: (repo: string) => boolean = () => true): { images: number; counts: SeverityCounts } {
    const counts = emptyCounts();
    let images = 0;
    for (const r of this.q.scans.all()) {
      if (!visible(r.repo)) continue;
      images++;
      for (const s of SEVERITIES) counts[s] += r[s];
    }
    return { images, counts };
  }
}

function toSummary(row: ScanRow): VulnSummary {
  const counts = emptyCounts();
  let count = 0;
  for (const s of SEVERITIES) {
    counts[s] = row[s];
    count += row[s];
  }
  const worst = SEVERITIES.find((s) => counts[s] > 0);
  return { maxSeverity: worst ?? "none", count, counts, scannedAt: row.scanned_at, dbBuilt: row.db_built, os: row.os, packages: row.packages, error: row.error };
}

function toFinding(row: FindingRow): Finding {
  const f: Finding = { id: row.id, cves: JSON.parse(row.cves) as string[], package: row.package, version: row.version, fixState: row.fix_state, severity: row.severity };
  if (row.fixed_in) f.fixedIn = row.fixed_in;
  return f;
}
