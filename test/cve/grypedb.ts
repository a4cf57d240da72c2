/**
 * A small vulnerability database in Grype's published SQLite schema v6 (table and column
 * names as Grype's v6 models define them: db_metadata, providers, blobs,
 * vulnerability_handles, affected_package_handles, packages, operating_systems, …; blob
 * values are the JSON documents of Grype's v6 blob types), and one in schema v5 (id,
 * vulnerability, vulnerability_metadata). Written by the tests, from the schema, with
 * berth's own code.
 */
import { Database } from "bun:sqlite";

const V6_SCHEMA = `
CREATE TABLE blobs (id integer PRIMARY KEY, value text NOT NULL);
CREATE TABLE db_metadata (build_timestamp datetime NOT NULL, model integer NOT NULL, revision integer NOT NULL, addition integer NOT NULL);
CREATE TABLE providers (id text PRIMARY KEY, version text, processor text, date_captured datetime, input_digest text);
CREATE TABLE vulnerability_handles (id integer PRIMARY KEY, name text NOT NULL, status text NOT NULL, published_date datetime, modified_date datetime, withdrawn_date datetime, provider_id text NOT NULL, blob_id integer, FOREIGN KEY (provider_id) REFERENCES providers(id));
CREATE INDEX idx_vulnerability_handles_name ON vulnerability_handles(name COLLATE NOCASE);
CREATE TABLE vulnerability_aliases (name text, alias text NOT NULL, PRIMARY KEY (name, alias));
CREATE TABLE operating_systems (id integer PRIMARY KEY, name text, release_id text, major_version text, minor_version text, label_version text, codename text, channel text, eol_date datetime, eoas_date datetime);
CREATE UNIQUE INDEX os_idx ON operating_systems(name, release_id, major_version, minor_version, label_version, channel);
CREATE TABLE operating_system_specifier_overrides (alias text, version text, version_pattern text, codename text, channel text, replacement text, replacement_major_version text, replacement_minor_version text, replacement_label_version text, replacement_channel text, rolling numeric, applicable_client_db_schemas text, PRIMARY KEY (alias, version, version_pattern, replacement, replacement_major_version, replacement_minor_version, replacement_label_version, replacement_channel, rolling));
CREATE TABLE packages (id integer PRIMARY KEY, ecosystem text, name text);
CREATE UNIQUE INDEX idx_package ON packages(ecosystem COLLATE NOCASE, name COLLATE NOCASE);
CREATE INDEX idx_package_name ON packages(name COLLATE NOCASE);
CREATE TABLE package_specifier_overrides (ecosystem text, replacement_ecosystem text, PRIMARY KEY (ecosystem, replacement_ecosystem));
CREATE TABLE affected_package_handles (id integer PRIMARY KEY, vulnerability_id integer NOT NULL, operating_system_id integer, package_id integer, blob_id integer, FOREIGN KEY (vulnerability_id) REFERENCES vulnerability_handles(id), FOREIGN KEY (operating_system_id) REFERENCES operating_systems(id), FOREIGN KEY (package_id) REFERENCES packages(id));
CREATE INDEX idx_affected_package_handles_package_id ON affected_package_handles(package_id);
CREATE INDEX idx_affected_package_handles_operating_system_id ON affected_package_handles(operating_system_id);
CREATE TABLE unaffected_package_handles (id integer PRIMARY KEY, vulnerability_id integer NOT NULL, operating_system_id integer, package_id integer, blob_id integer);
CREATE TABLE cpes (id integer PRIMARY KEY, part text NOT NULL, vendor text, product text NOT NULL, edition text, language text, software_edition text, target_hardware text, target_software text, other text);
CREATE TABLE package_cpes (package_id integer, cpe_id integer, PRIMARY KEY (package_id, cpe_id));
CREATE TABLE affected_cpe_handles (id integer PRIMARY KEY, vulnerability_id integer NOT NULL, cpe_id integer, blob_id integer);
CREATE TABLE unaffected_cpe_handles (id integer PRIMARY KEY, vulnerability_id integer NOT NULL, cpe_id integer, blob_id integer);
CREATE TABLE known_exploited_vulnerability_handles (id integer PRIMARY KEY, cve text NOT NULL, blob_id integer);
CREATE TABLE epss_handles (id integer PRIMARY KEY, cve text NOT NULL, epss real NOT NULL, percentile real NOT NULL);
CREATE TABLE epss_metadata (date datetime NOT NULL);
CREATE TABLE cwe_handles (id integer PRIMARY KEY, cve text NOT NULL, cwe text NOT NULL, source text, type text);
`;

/** One advisory of the fixture: a vulnerability, the package and OS it affects, and its range. */
export interface FixtureAdvisory {
  vuln: string;
  provider: string;
  severity: string;
  os: { name: string; releaseId: string; major: string; minor?: string; channel?: string };
  ecosystem: "deb" | "apk" | "rpm";
  pkg: string;
  format: "dpkg" | "apk" | "rpm";
  constraint: string;
  fix?: string;
  state?: string;
  cves?: string[];
}

/** Writes a schema v6 database with `advisories` to `path`. */
export function writeGrypeV6(path: string, advisories: FixtureAdvisory[], built = "2026-11-30T04:12:01Z"): void {
  const db = new Database(path, { create: true });
  db.exec("PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY;");
  db.exec("BEGIN");
  db.exec(V6_SCHEMA);
  db.prepare("INSERT INTO db_metadata VALUES (?, 6, 0, 2)").run(built);
  let blob = 0;
  const putBlob = (value: unknown) => {
    db.prepare("INSERT INTO blobs (id, value) VALUES (?, ?)").run(++blob, JSON.stringify(value));
    return blob;
  };
  const ids = new Map<string, number>();
  const once = (key: string, make: () => number) => {
    let id = ids.get(key);
    if (id === undefined) ids.set(key, (id = make()));
    return id;
  };
  for (const a of advisories) {
    once(`p:${a.provider}`, () => (db.prepare("INSERT INTO providers VALUES (?, '1', 'vunnel@0.30.0', ?, 'xxh64:0123456789abcdef')").run(a.provider, built), 0));
    const vulnId = once(`v:${a.provider}:${a.vuln}`, () => {
      const b = putBlob({ id: a.vuln, description: `${a.vuln} in the fixture`, severities: [{ scheme: "CHMLN", value: a.severity, rank: 1 }, { scheme: "CVSS", value: { vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", version: "3.1" }, rank: 2 }] });
      return Number(db.prepare("INSERT INTO vulnerability_handles (name, status, provider_id, blob_id) VALUES (?, 'active', ?, ?)").run(a.vuln, a.provider, b).lastInsertRowid);
    });
    const osId = once(`o:${a.os.name}:${a.os.major}:${a.os.minor ?? ""}:${a.os.channel ?? ""}`, () =>
      Number(db.prepare("INSERT INTO operating_systems (name, release_id, major_version, minor_version, label_version, codename, channel) VALUES (?, ?, ?, ?, '', '', ?)").run(a.os.name, a.os.releaseId, a.os.major, a.os.minor ?? "", a.os.channel ?? "").lastInsertRowid));
    const pkgId = once(`k:${a.ecosystem}:${a.pkg}`, () => Number(db.prepare("INSERT INTO packages (ecosystem, name) VALUES (?, ?)").run(a.ecosystem, a.pkg).lastInsertRowid));
    const range: Record<string, unknown> = { version: { type: a.format, constraint: a.constraint } };
    range.fix = { version: a.fix ?? "", state: a.state ?? (a.fix ? "fixed" : "not-fixed") };
    const b = putBlob({ cves: a.cves ?? [a.vuln], ranges: [range] });
    db.prepare("INSERT INTO affected_package_handles (vulnerability_id, operating_system_id, package_id, blob_id) VALUES (?, ?, ?, ?)").run(vulnId, osId, pkgId, b);
  }
  db.exec("COMMIT");
  db.close();
}

/** Writes a schema v5 database with `advisories` (namespace "<distro>:distro:<distro>:<version>"). */
export function writeGrypeV5(path: string, advisories: FixtureAdvisory[], built = "2026-11-29T04:00:00Z"): void {
  const db = new Database(path, { create: true });
  db.exec("PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY;");
  db.exec(`
CREATE TABLE id (build_timestamp datetime, schema_version integer);
CREATE TABLE vulnerability (pk integer PRIMARY KEY, id text, package_name text, namespace text, package_qualifiers text, version_constraint text, version_format text, cpes text, related_vulnerabilities text, fixed_in_versions text, fix_state text, advisories text);
CREATE INDEX get_vulnerability_index ON vulnerability(namespace, package_name);
CREATE TABLE vulnerability_metadata (id text, namespace text, data_source text, record_source text, severity text, urls text, description text, cvss text, PRIMARY KEY (id, namespace));
CREATE TABLE vulnerability_match_exclusion (pk integer PRIMARY KEY, id text, constraints text, justification text);`);
  db.prepare("INSERT INTO id VALUES (?, 5)").run(built);
  for (const a of advisories) {
    const ns = `${a.os.name}:distro:${a.os.name}:${a.os.minor ? `${a.os.major}.${a.os.minor}` : a.os.major}`;
    db.prepare("INSERT INTO vulnerability (id, package_name, namespace, version_constraint, version_format, fixed_in_versions, fix_state) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run(a.vuln, a.pkg, ns, a.constraint, a.format, JSON.stringify(a.fix ? [a.fix] : []), a.fix ? "fixed" : "not-fixed");
    db.prepare("INSERT OR IGNORE INTO vulnerability_metadata (id, namespace, severity) VALUES (?, ?, ?)").run(a.vuln, ns, a.severity[0]!.toUpperCase() + a.severity.slice(1));
  }
  db.close();
}
