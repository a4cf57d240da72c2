/**
 * Matching an image's inventory against the vulnerability database: the OS release names
 * the database's distro (RHEL rebuilds read Red Hat's data, as Grype does), each package is
 * looked up by its own name and by its source package's, and an advisory applies when the
 * installed version satisfies its constraint under the format's own ordering
 * (versions.ts). The result lists each finding once per package and vulnerability.
 */
import type { Inventory } from "./inventory";
import type { InstalledPackage, OsRelease } from "./packages";
import { type Advisory, type GrypeDb, type OsKey, type Severity, severityRank } from "./grype";
import { compareVersions, type VersionFormat } from "./versions";

/** One vulnerability found in one installed package. */
export interface Finding {
  id: string;
  cves: string[];
  package: string;
  version: string;
  /** The fixed-in version, when the database knows one. */
  fixedIn?: string;
  fixState: string;
  severity: Severity;
}

/** Grype's distro name for an os-release ID (rebuilds map to the distro whose data they use). */
const DISTRO: Record<string, string> = {
  debian: "debian",
  ubuntu: "ubuntu",
  alpine: "alpine",
  rhel: "redhat",
  redhat: "redhat",
  centos: "redhat",
  rocky: "redhat",
  almalinux: "redhat",
  ol: "oraclelinux",
  amzn: "amazonlinux",
  wolfi: "wolfi",
  chainguard: "chainguard",
};

/** The database's OS key for an os-release, or undefined for an OS berth cannot match. */
export function osKeyOf(os: OsRelease | undefined): OsKey | undefined {
  if (!os) return undefined;
  const name = DISTRO[os.id] ?? os.idLike.map((id) => DISTRO[id]).find(Boolean);
  if (!name) return undefined;
  if (name === "wolfi" || name === "chainguard") return { name, major: "", minor: "", label: "rolling" };
  if (name === "alpine" && /_alpha|edge/.test(os.versionId)) return { name, major: "", minor: "", label: "edge" };
  const [major = "", minor = ""] = os.versionId.split(".");
  if (!major) return undefined; // testing/sid without a number: no release data to match
  // Debian and RHEL-like releases are keyed by major version; Ubuntu and Alpine by major.minor
  return { name, major, minor: name === "ubuntu" || name === "alpine" ? minor : "" };
}

const ECOSYSTEM: Record<VersionFormat, string> = { dpkg: "deb", apk: "apk", rpm: "rpm" };

/**
 * True when `version` satisfies `constraint` under `format`: terms joined by "," (all
 * must hold) and alternatives by "||"; an empty constraint matches every version.
 */
export function satisfies(format: VersionFormat, version: string, constraint: string): boolean {
  const text = constraint.trim();
  if (text === "" || text === "*") return true;
  return text.split("||").some((alt) =>
    alt.split(",").every((term) => {
      const m = /^\s*(<=|>=|==|!=|<|>|=)?\s*(\S+)\s*$/.exec(term);
      if (!m) return false;
      const c = compareVersions(format, version, m[2]!);
      switch (m[1] ?? "=") {
        case "<":
          return c < 0;
        case "<=":
          return c <= 0;
        case ">":
          return c > 0;
        case ">=":
          return c >= 0;
        case "!=":
          return c !== 0;
        default:
          return c === 0;
      }
    }),
  );
}

function formatOf(advisory: Advisory, pkg: InstalledPackage): VersionFormat {
  const f = advisory.format.toLowerCase();
  return f === "dpkg" || f === "deb" ? "dpkg" : f === "apk" ? "apk" : f === "rpm" ? "rpm" : pkg.format;
}

/** The findings of `inventory` in `db`; `tick` is called after each package (a chance to collect garbage). */
export function match(db: GrypeDb, inventory: Inventory, tick?: () => void): Finding[] {
  const os = osKeyOf(inventory.os);
  if (!os) return [];
  const osIds = db.osIds(os);
  const found = new Map<string, Finding>();
  for (const pkg of inventory.packages) {
    const lookups: [string, string][] = [[pkg.name, pkg.version]];
    if (pkg.source) lookups.push([pkg.source, pkg.sourceVersion ?? pkg.version]);
    for (const [name, version] of lookups) {
      for (const adv of db.advisories(os, osIds, ECOSYSTEM[pkg.format], name)) {
        if (adv.fixState === "unaffected") continue;
        const format = formatOf(adv, pkg);
        // rpm advisories name versions with an epoch when the package has one; compare alike
        if (!satisfies(format, version, adv.constraint)) continue;
        const key = `${pkg.name}\0${adv.id}`;
        const prev = found.get(key);
        if (prev && severityRank(prev.severity) <= severityRank(adv.severity)) continue;
        const f: Finding = { id: adv.id, cves: adv.cves, package: pkg.name, version: pkg.version, fixState: adv.fixState, severity: adv.severity };
        if (adv.fixedIn) f.fixedIn = adv.fixedIn;
        found.set(key, f);
      }
    }
    tick?.();
  }
  return [...found.values()].sort((a, b) => severityRank(a.severity) - severityRank(b.severity) || a.id.localeCompare(b.id) || a.package.localeCompare(b.package));
}
