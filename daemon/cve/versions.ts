/**
 * Version orderings of the three package formats the scanner understands, each written from
 * its format's own rules: dpkg (Debian Policy §5.6.12 "Version"), apk (apk-tools' version
 * rules) and rpm (rpm's `rpmvercmp`, with epoch and release). Pure functions, no I/O; every
 * comparison returns a negative number, zero or a positive number like a sort comparator.
 * Anything a format cannot parse still compares (as a string, last resort), so a malformed
 * version in an image never stops a scan.
 */

/** A package version format, named as Grype's database names them. */
export type VersionFormat = "dpkg" | "apk" | "rpm";

/** Compares two versions of `format`. */
export function compareVersions(format: VersionFormat, a: string, b: string): number {
  if (format === "dpkg") return compareDpkg(a, b);
  if (format === "apk") return compareApk(a, b);
  return compareRpm(a, b);
}

// ---------------------------------------------------------------------------------------
// dpkg. Policy §5.6.12: a version is [epoch:]upstream[-revision]. The epoch is a number
// (absent = 0) and wins outright. The upstream part and the revision (absent is the same as
// "0") are each compared the same way: alternately a run of
// non-digits, compared character by character where `~` sorts before everything (even the
// end of the string), then letters, then all other characters; and a run of digits,
// compared as a number (an empty run is 0).

function dpkgOrder(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === "~") return -1;
  const code = c.charCodeAt(0);
  if (code >= 48 && code <= 57) return 0;
  if ((code >= 65 && code <= 90) || (code >= 97 && code <= 122)) return code;
  return code + 256;
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

/** The §5.6.12 comparison of one part (upstream or revision). */
function dpkgPart(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    // the non-digit run: character by character with the order above
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const ac = i < a.length && !isDigit(a[i]) ? a[i] : undefined;
      const bc = j < b.length && !isDigit(b[j]) ? b[j] : undefined;
      const d = dpkgOrder(ac) - dpkgOrder(bc);
      if (d !== 0) return d;
      if (ac !== undefined) i++;
      if (bc !== undefined) j++;
    }
    // the digit run: numerically (leading zeros do not matter; empty is 0)
    let an = "";
    let bn = "";
    while (i < a.length && isDigit(a[i])) an += a[i++];
    while (j < b.length && isDigit(b[j])) bn += b[j++];
    const d = compareDigits(an, bn);
    if (d !== 0) return d;
  }
  return 0;
}

/** Compares two decimal digit strings as numbers of any length. */
function compareDigits(a: string, b: string): number {
  a = a.replace(/^0+/, "");
  b = b.replace(/^0+/, "");
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

function splitDpkg(v: string): { epoch: string; upstream: string; revision: string } {
  const m = /^(\d+):(.*)$/.exec(v.trim());
  const epoch = m ? m[1]! : "0";
  const rest = m ? m[2]! : v.trim();
  // the revision is after the last hyphen; without one it is empty, which compares as "0"
  const dash = rest.lastIndexOf("-");
  return dash >= 0 ? { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) } : { epoch, upstream: rest, revision: "" };
}

/** dpkg ordering (Debian Policy §5.6.12). */
export function compareDpkg(a: string, b: string): number {
  const x = splitDpkg(a);
  const y = splitDpkg(b);
  return sign(compareDigits(x.epoch, y.epoch) || dpkgPart(x.upstream, y.upstream) || dpkgPart(x.revision, y.revision));
}

// ---------------------------------------------------------------------------------------
// apk. apk-tools reads a version as: numbers separated by dots, an optional single letter,
// any number of suffixes `_name[number]`, an optional `~hash` (ignored for ordering), and an
// optional `-rN` package release. Numbers compare numerically, except that a later number
// written with a leading zero compares as a decimal fraction (so 1.01 < 1.1). When one
// version has more numbers than the other, it is newer (1.2.1 > 1.2 and > 1.2a). A letter
// makes it newer than no letter. Suffixes rank _alpha < _beta < _pre < _rc < (none) <
// _cvs < _svn < _git < _hg < _p; a suffix's own number compares next (a missing number
// sorts before 0). An extra suffix is older when it is one of the first four (a
// pre-release), newer otherwise. Finally `-rN` compares numerically, absent before any -r.

const APK_SUFFIX: Record<string, number> = { alpha: -4, beta: -3, pre: -2, rc: -1, cvs: 1, svn: 2, git: 3, hg: 4, p: 5 };

interface ApkVersion {
  nums: string[];
  letter: string;
  suffixes: { rank: number; num: number }[];
  release: number;
  valid: boolean;
}

function parseApk(v: string): ApkVersion {
  const m = /^(\d+(?:\.\d+)*)([a-z]?)((?:_[a-z]+\d*)*)(~[0-9a-f]+)?(?:-r(\d+))?$/.exec(v.trim());
  if (!m) return { nums: [], letter: "", suffixes: [], release: -1, valid: false };
  const suffixes: ApkVersion["suffixes"] = [];
  for (const s of m[3]!.split("_").slice(1)) {
    const sm = /^([a-z]+)(\d*)$/.exec(s)!;
    const rank = APK_SUFFIX[sm[1]!];
    if (rank === undefined) return { nums: [], letter: "", suffixes: [], release: -1, valid: false };
    suffixes.push({ rank, num: sm[2] === "" ? -1 : Number(sm[2]) });
  }
  return { nums: m[1]!.split("."), letter: m[2]!, suffixes, release: m[5] === undefined ? -1 : Number(m[5]), valid: true };
}

function apkNumber(a: string, b: string, first: boolean): number {
  if (!first && (a.startsWith("0") || b.startsWith("0"))) {
    // a leading zero: compare as the digits of a fraction
    return a < b ? -1 : a > b ? 1 : 0;
  }
  return compareDigits(a, b);
}

/** apk ordering (apk-tools version rules). */
export function compareApk(a: string, b: string): number {
  const x = parseApk(a);
  const y = parseApk(b);
  if (!x.valid || !y.valid) return sign(a < b ? -1 : a > b ? 1 : 0);
  const n = Math.min(x.nums.length, y.nums.length);
  for (let i = 0; i < n; i++) {
    const d = apkNumber(x.nums[i]!, y.nums[i]!, i === 0);
    if (d !== 0) return sign(d);
  }
  if (x.nums.length !== y.nums.length) return x.nums.length > y.nums.length ? 1 : -1;
  if (x.letter !== y.letter) {
    if (x.letter === "") return -1;
    if (y.letter === "") return 1;
    return x.letter < y.letter ? -1 : 1;
  }
  const m = Math.min(x.suffixes.length, y.suffixes.length);
  for (let i = 0; i < m; i++) {
    const d = x.suffixes[i]!.rank - y.suffixes[i]!.rank || x.suffixes[i]!.num - y.suffixes[i]!.num;
    if (d !== 0) return sign(d);
  }
  if (x.suffixes.length > m) return x.suffixes[m]!.rank < 0 ? -1 : 1;
  if (y.suffixes.length > m) return y.suffixes[m]!.rank < 0 ? 1 : -1;
  return sign(x.release - y.release);
}

// ---------------------------------------------------------------------------------------
// rpm. A full version is [epoch:]version[-release]; the epoch (absent = 0) compares as a
// number, then version and release each with rpmvercmp: both strings are cut into
// segments of digits or of letters, everything else only separates. `~` sorts before
// anything, even the end of the string (pre-releases: 1.0~rc1 < 1.0); `^` sorts after the
// end but before any further segment (snapshots: 1.0 < 1.0^git1 < 1.0.1). A numeric
// segment is newer than an alphabetic one; numbers compare numerically, letters as
// strings. When one string runs out first, the one with segments left is newer.

function isAlnum(c: string): boolean {
  return /[0-9A-Za-z]/.test(c);
}

/** rpm's segment comparison of one version or release string. */
export function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while (i < a.length && !isAlnum(a[i]!) && a[i] !== "~" && a[i] !== "^") i++;
    while (j < b.length && !isAlnum(b[j]!) && b[j] !== "~" && b[j] !== "^") j++;
    if (a[i] === "~" || b[j] === "~") {
      if (a[i] !== "~") return 1;
      if (b[j] !== "~") return -1;
      i++;
      j++;
      continue;
    }
    if (a[i] === "^" || b[j] === "^") {
      if (i >= a.length) return -1;
      if (j >= b.length) return 1;
      if (a[i] !== "^") return 1;
      if (b[j] !== "^") return -1;
      i++;
      j++;
      continue;
    }
    if (i >= a.length || j >= b.length) break;
    const numeric = isDigit(a[i]);
    const re = numeric ? /[0-9]/ : /[A-Za-z]/;
    let ei = i;
    let ej = j;
    while (ei < a.length && re.test(a[ei]!)) ei++;
    while (ej < b.length && re.test(b[ej]!)) ej++;
    const sa = a.slice(i, ei);
    const sb = b.slice(j, ej);
    if (sb === "") return numeric ? 1 : -1;
    const d = numeric ? compareDigits(sa, sb) : sa < sb ? -1 : sa > sb ? 1 : 0;
    if (d !== 0) return sign(d);
    i = ei;
    j = ej;
  }
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}

function splitRpm(v: string): { epoch: string; version: string; release: string | undefined } {
  v = v.trim();
  const colon = v.indexOf(":");
  const epoch = colon > 0 && /^\d+$/.test(v.slice(0, colon)) ? v.slice(0, colon) : "0";
  const rest = colon > 0 && /^\d+$/.test(v.slice(0, colon)) ? v.slice(colon + 1) : v;
  const dash = rest.lastIndexOf("-");
  return dash >= 0 ? { epoch, version: rest.slice(0, dash), release: rest.slice(dash + 1) } : { epoch, version: rest, release: undefined };
}

/**
 * rpm ordering: epoch, version, release. A side without a release matches any release of
 * the other (as rpm does when a dependency names only a version).
 */
export function compareRpm(a: string, b: string): number {
  const x = splitRpm(a);
  const y = splitRpm(b);
  const d = compareDigits(x.epoch, y.epoch) || rpmvercmp(x.version, y.version);
  if (d !== 0 || x.release === undefined || y.release === undefined) return sign(d);
  return sign(rpmvercmp(x.release, y.release));
}

function sign(n: number): number {
  return n < 0 ? -1 : n > 0 ? 1 : 0;
}
