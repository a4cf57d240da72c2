/**
 * Semver range matching (node-semver syntax: `>=1.2 <2`, `^1.4`, `~2.0.1`, `1.x`, `a || b`).
 * Bun ships a native implementation; this seam is where a Node.js build would plug in the
 * `semver` package.
 */

/** True when `version` (e.g. "1.2.3") satisfies `range`; false for anything unparsable. */
export function satisfies(version: string, range: string): boolean {
  try {
    return Bun.semver.satisfies(version, range);
  } catch {
    return false;
  }
}
