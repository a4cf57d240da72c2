/**
 * Semver range matching for the Node.js build, through the `semver` package (the reference
 * implementation of the node-semver syntax that Bun.semver follows). Same exports as
 * platform/semver.ts.
 */
import semver from "semver";

/** True when `version` (e.g. "1.2.3") satisfies `range`; false for anything unparsable. */
export function satisfies(version: string, range: string): boolean {
  try {
    return semver.satisfies(version, range);
  } catch {
    return false;
  }
}
