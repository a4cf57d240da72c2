/**
 * Which storage root serves a repository: the root whose prefix is the longest one the name
 * starts with, or the main root (prefix "") when none does. Prefixes are whole name
 * components ending in "/" (config/subpaths.ts), so "factory/" claims "factory/cam" but not
 * "factory" itself or "factoryx/cam".
 */

/** Routes repository names to root indexes; index 0 is the main root. */
export class RootRouter {
  /** [prefix, index], longest prefix first. */
  private readonly order: [string, number][];

  /** `prefixes[0]` is the main root's ("") and claims what no other prefix does. */
  constructor(readonly prefixes: readonly string[]) {
    if (prefixes[0] !== "") throw new Error(`the main root's prefix must be "", got "${prefixes[0]}"`);
    this.order = prefixes.map((p, i): [string, number] => [p, i]).slice(1).sort((a, b) => b[0].length - a[0].length);
  }

  /** The index of the root serving `repo`. */
  route(repo: string): number {
    for (const [prefix, i] of this.order) if (repo.startsWith(prefix)) return i;
    return 0;
  }
}
