/**
 * Matching inventories of umoci-built images (this machine's dpkg status, an apk db, an
 * rpm sqlite db) against a database in Grype's v6 schema (and the same advisories in v5):
 * each advisory is placed just above or just below the installed version, so only the
 * format's own ordering decides; source-package lookups, fixed-in versions, severities and
 * the OS release (a RHEL rebuild reads Red Hat's data) are checked.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { GrypeDb } from "../../daemon/cve/grype";
import { type Inventory, inventoryOf } from "../../daemon/cve/inventory";
import { match, osKeyOf, satisfies } from "../../daemon/cve/match";
import { makeTemp } from "../helpers/clients";
import { writeGrypeV5, writeGrypeV6 } from "./grypedb";
import { ADVISORIES, dpkgVersion, fromDpkg } from "./advisories";
import { APK_INSTALLED, buildImage, layerStreams, rpmSqlite } from "./images";

setDefaultTimeout(60_000);

let work: string;
const status = readFileSync("/var/lib/dpkg/status", "utf8");
const inventories: Record<string, Inventory> = {};

beforeAll(async () => {
  work = makeTemp("berth-cve-match-");
  const deb = join(work, "deb");
  await buildImage(join(work, "deb-src"), deb, [{ files: { "etc/os-release": "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n", "var/lib/dpkg/status": status } }]);
  const apk = join(work, "apk");
  await buildImage(join(work, "apk-src"), apk, [{ files: { "etc/os-release": "ID=alpine\nVERSION_ID=3.19.1\n", "lib/apk/db/installed": APK_INSTALLED } }]);
  const rpm = join(work, "rpm");
  await buildImage(join(work, "rpm-src"), rpm, [{ files: {
    "etc/os-release": 'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n',
    "var/lib/rpm/rpmdb.sqlite": rpmSqlite([
      { name: "openssl-libs", version: "3.0.7", release: "24.el9", epoch: 1, srpm: "openssl-3.0.7-24.el9.src.rpm" },
      { name: "bash", version: "5.1.8", release: "6.el9_1", srpm: "bash-5.1.8-6.el9_1.src.rpm" },
    ]),
  } }]);
  for (const [k, layout] of Object.entries({ deb, apk, rpm })) inventories[k] = await inventoryOf(layerStreams(layout));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const brief = (db: GrypeDb, inv: Inventory) => match(db, inv).map((f) => `${f.id} ${f.package} ${f.severity} ${f.fixedIn ?? "-"}`);

for (const schema of [6, 5] as const) {
  describe(`matching against a schema v${schema} database`, () => {
    let db: GrypeDb;
    beforeAll(() => {
      const path = join(work, `v${schema}.db`);
      (schema === 6 ? writeGrypeV6 : writeGrypeV5)(path, ADVISORIES);
      db = new GrypeDb(path);
    });
    afterAll(() => db.close());

    test("dpkg: this machine's dpkg and the packages built from its source; above/below/unfixed; only its release", () => {
      expect(fromDpkg).toContain("dpkg");
      expect(brief(db, inventories.deb!)).toEqual([
        ...fromDpkg.map((name) => `CVE-2026-1001 ${name} critical ${dpkgVersion}+b1`),
        ...fromDpkg.map((name) => `CVE-2026-1003 ${name} negligible -`),
      ]);
    });

    test("apk: by origin, and -r5 < -r10", () => {
      expect(brief(db, inventories.apk!)).toEqual(["CVE-2026-2001 libssl3 high 3.1.4-r1", "CVE-2026-2002 busybox medium 1.36.1-r10"]);
    });

    test("rpm: epoch and release ordering, a rebuild matched as RHEL", () => {
      expect(brief(db, inventories.rpm!)).toEqual(["CVE-2026-3001 openssl-libs high 1:3.0.7-25.el9", "CVE-2026-3003 bash medium 5.1.8-6.el9_2"]);
    });
  });
}

describe("OS releases and constraints", () => {
  test.each([
    [{ id: "debian", versionId: "12", codename: "bookworm", idLike: [], prettyName: "" }, { name: "debian", major: "12", minor: "" }],
    [{ id: "ubuntu", versionId: "22.04", codename: "jammy", idLike: ["debian"], prettyName: "" }, { name: "ubuntu", major: "22", minor: "04" }],
    [{ id: "alpine", versionId: "3.19.1", codename: "", idLike: [], prettyName: "" }, { name: "alpine", major: "3", minor: "19" }],
    [{ id: "almalinux", versionId: "8.9", codename: "", idLike: ["rhel"], prettyName: "" }, { name: "redhat", major: "8", minor: "" }],
    [{ id: "myrhel", versionId: "9.1", codename: "", idLike: ["rhel", "fedora"], prettyName: "" }, { name: "redhat", major: "9", minor: "" }],
  ])("%o -> %o", (os, key) => expect(osKeyOf(os)).toEqual(key));

  test("an unknown OS is not matched", () => expect(osKeyOf({ id: "plan9", versionId: "4", codename: "", idLike: [], prettyName: "" })).toBeUndefined());

  test.each([
    ["dpkg", "1.0-1", "< 1.0-2", true],
    ["dpkg", "1.0-1", ">= 1.0, < 1.0-1", false],
    ["apk", "1.2-r3", "< 1.0 || >= 1.2-r3", true],
    ["rpm", "1.0-1", "= 1.0-1", true],
    ["rpm", "1.0-1", "!= 1.0-1", false],
    ["apk", "1.0", "", true],
  ] as const)("%s %s satisfies %s: %s", (format, version, constraint, expected) => expect(satisfies(format, version, constraint)).toBe(expected));
});
