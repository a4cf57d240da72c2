/**
 * Version orderings from each format's own rules: every row is "a < b" and is checked in
 * both directions, plus equalities. Rows come from the cases each spec spells out.
 */
import { describe, expect, test } from "bun:test";
import { compareApk, compareDpkg, compareRpm } from "../../daemon/cve/versions";

function ordered(name: string, cmp: (a: string, b: string) => number, less: [string, string][], equal: [string, string][]) {
  describe(name, () => {
    test.each(less)("%s < %s", (a, b) => {
      expect(cmp(a, b)).toBe(-1);
      expect(cmp(b, a)).toBe(1);
    });
    test.each(equal)("%s == %s", (a, b) => {
      expect(cmp(a, b)).toBe(0);
      expect(cmp(b, a)).toBe(0);
    });
  });
}

ordered("dpkg (Debian Policy 5.6.12)", compareDpkg, [
  ["1.0", "1.1"],
  ["1.9", "1.10"], // digit runs are numbers
  ["1.0~rc1", "1.0"], // ~ before the end
  ["1.0~~", "1.0~"], // ~~ before ~
  ["1.0~", "1.0"],
  ["1.0", "1.0a"], // end before a letter
  ["1.0a", "1.0+"], // letters before non-letters
  ["1.0+", "1.0.1"],
  ["1.0-1", "1.0-2"],
  ["1.0-9", "1.0-10"],
  ["2:1.0", "10:0.1"], // epoch is numeric
  ["9.9-9", "1:0.1"], // any epoch beats none
  ["1.2.3-1", "1.2.3-1+deb12u1"],
  ["1.2.3-1+deb12u1", "1.2.3-1+deb12u2"],
  ["7.88.1-10+deb12u5", "7.88.1-10+deb12u12"],
  ["2.36-9+deb12u4", "2.36-9+deb12u10"],
  ["1.0-1~bpo1", "1.0-1"],
  ["0.9-1", "1.0-1-1"], // hyphens in upstream: the last one splits
], [
  ["1.0", "1.0-0"], // absent revision is 0
  ["0:1.0", "1.0"], // absent epoch is 0
  ["1.01", "1.1"], // leading zeros do not count
  ["1.0-1", "1.0-01"],
]);

ordered("apk (apk-tools version rules)", compareApk, [
  ["1.0", "1.1"],
  ["1.9", "1.10"],
  ["1.0_alpha", "1.0_beta"],
  ["1.0_beta", "1.0_pre"],
  ["1.0_pre", "1.0_rc"],
  ["1.0_rc", "1.0"],
  ["1.0_rc1", "1.0_rc2"],
  ["1.0_rc", "1.0_rc1"],
  ["1.0", "1.0_cvs"],
  ["1.0_git", "1.0_hg"],
  ["1.0_hg", "1.0_p"],
  ["1.0_p1", "1.0_p2"],
  ["1.0", "1.0a"], // a letter is newer
  ["1.0a", "1.0b"],
  ["1.0z", "1.0.1"], // more numbers beat a letter
  ["1.2", "1.2.1"],
  ["1.2.1_alpha", "1.2.1"],
  ["1.0-r0", "1.0-r1"],
  ["1.0-r9", "1.0-r10"],
  ["1.0", "1.0-r0"], // no release before any release
  ["1.0_rc1-r5", "1.0-r0"],
  ["3.0.13-r0", "3.0.15-r0"],
  ["1.01", "1.1"], // leading zero: a fraction
  ["1.001", "1.01"],
  ["2.6.1-r1", "2.6.1_p1-r0"],
], [
  ["1.0-r1", "1.0-r1"],
  ["1.0~abc123-r1", "1.0~def456-r1"], // the hash does not order
]);

ordered("rpm (rpmvercmp)", compareRpm, [
  ["1.0", "1.1"],
  ["1.9", "1.10"],
  ["1.0", "1.0.1"],
  ["1.0~rc1", "1.0"], // ~ before the end
  ["1.0~rc1", "1.0~rc2"],
  ["1.0~~", "1.0~"],
  ["1.0", "1.0^git1"], // ^ after the end
  ["1.0^git1", "1.0.1"], // but before another segment
  ["1.0^git1", "1.0^git2"],
  ["1.0a", "1.0.1"], // numeric beats alpha
  ["a", "1"],
  ["1.0-1.el9", "1.0-2.el9"],
  ["1.0-1.el9", "1.0-1.el9_1"],
  ["2.28-225.el9", "2.28-225.el9_3.1"],
  ["9.9-9", "1:0.1-1"], // epoch first
  ["1:1.0-1", "2:0.1-1"],
  ["1.0-1", "1.0-1.1"],
], [
  ["1.0", "1_0"], // separators only separate
  ["1.01", "1.1"],
  ["0:1.0-1", "1.0-1"],
  ["1.0", "1.0-5"], // a side without release matches any
]);
