/**
 * The advisories of the matching and daemon tests: each placed just above or just below an
 * installed version (this machine's dpkg, the apk and rpm fixtures), so that only the
 * format's own ordering decides whether it applies.
 */
import { readFileSync } from "node:fs";
import type { FixtureAdvisory } from "./grypedb";

const status = readFileSync("/var/lib/dpkg/status", "utf8");
// a real package of this machine, with its real version
export const dpkgVersion = /^Package: dpkg\n(?:.+\n)*?Version: (.+)$/m.exec(status)![1]!;
// every installed binary package built from the dpkg source (dpkg, dpkg-dev, libdpkg-perl, …)
export const fromDpkg = status
  .split("\n\n")
  .filter((p) => /^Status: install ok installed$/m.test(p) && (/^Package: dpkg$/m.test(p) || /^Source: dpkg( |$)/m.test(p)))
  .map((p) => /^Package: (.+)$/m.exec(p)![1]!)
  .sort();
const DEB = { name: "debian", releaseId: "debian", major: "12" };
const ALPINE = { name: "alpine", releaseId: "alpine", major: "3", minor: "19" };
const RHEL = { name: "redhat", releaseId: "rhel", major: "9" };

export const ADVISORIES: FixtureAdvisory[] = [
  // dpkg: fixed just above the installed version (V+b1 > V) → affected; just below (V~ < V) → not
  { vuln: "CVE-2026-1001", provider: "debian", severity: "critical", os: DEB, ecosystem: "deb", pkg: "dpkg", format: "dpkg", constraint: `< ${dpkgVersion}+b1`, fix: `${dpkgVersion}+b1` },
  { vuln: "CVE-2026-1002", provider: "debian", severity: "high", os: DEB, ecosystem: "deb", pkg: "dpkg", format: "dpkg", constraint: `< ${dpkgVersion}~`, fix: `${dpkgVersion}~` },
  // no fix yet: every version affected
  { vuln: "CVE-2026-1003", provider: "debian", severity: "negligible", os: DEB, ecosystem: "deb", pkg: "dpkg", format: "dpkg", constraint: "", state: "wont-fix" },
  // the same package for another release: not this image's
  { vuln: "CVE-2026-1004", provider: "debian", severity: "high", os: { ...DEB, major: "11" }, ecosystem: "deb", pkg: "dpkg", format: "dpkg", constraint: "< 99", fix: "99" },
  // apk: by source (origin) name; -r5 < -r10 numerically
  { vuln: "CVE-2026-2001", provider: "alpine", severity: "high", os: ALPINE, ecosystem: "apk", pkg: "openssl", format: "apk", constraint: "< 3.1.4-r1", fix: "3.1.4-r1" },
  { vuln: "CVE-2026-2002", provider: "alpine", severity: "medium", os: ALPINE, ecosystem: "apk", pkg: "busybox", format: "apk", constraint: "< 1.36.1-r10", fix: "1.36.1-r10" },
  { vuln: "CVE-2026-2003", provider: "alpine", severity: "medium", os: ALPINE, ecosystem: "apk", pkg: "musl", format: "apk", constraint: "< 1.2.4_rc1-r0", fix: "1.2.4_rc1-r0" },
  // rpm: epoch, el9 vs el9_1 release ordering; rocky reads redhat's data
  { vuln: "CVE-2026-3001", provider: "rhel", severity: "high", os: RHEL, ecosystem: "rpm", pkg: "openssl", format: "rpm", constraint: "< 1:3.0.7-25.el9", fix: "1:3.0.7-25.el9" },
  { vuln: "CVE-2026-3002", provider: "rhel", severity: "low", os: RHEL, ecosystem: "rpm", pkg: "bash", format: "rpm", constraint: "< 0:5.1.8-6.el9", fix: "0:5.1.8-6.el9" },
  { vuln: "CVE-2026-3003", provider: "rhel", severity: "medium", os: RHEL, ecosystem: "rpm", pkg: "bash", format: "rpm", constraint: "< 5.1.8-6.el9_2", fix: "5.1.8-6.el9_2" },
];

