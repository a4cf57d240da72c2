/**
 * Glob patterns for repositories and `repo:tag` pins, as written in the configuration:
 * `*` matches within one path component (no `/`), `**` matches across components, `?`
 * one character. A pin without `:` covers every tag of the repositories it matches.
 */
import { globToRegExp } from "../oci/glob";
import { parsePin } from "../oci/pins";

/** A set of repository globs; empty matches nothing. */
export class RepoPatterns {
  private readonly res: RegExp[];
  constructor(readonly globs: readonly string[]) {
    this.res = globs.map(globToRegExp);
  }
  /** True when any glob matches `repo`. */
  matches(repo: string): boolean {
    return this.res.some((re) => re.test(repo));
  }
}

/** Pins: `repo-glob` (every tag) or `repo-glob:tag-glob`. */
export class PinPatterns {
  private readonly pins: { repo: RegExp; tag?: RegExp }[];
  constructor(globs: readonly string[]) {
    this.pins = globs.map((g) => {
      const pin = parsePin(g);
      return pin.tag === undefined ? { repo: globToRegExp(pin.repo) } : { repo: globToRegExp(pin.repo), tag: globToRegExp(pin.tag) };
    });
  }
  /** True when `tag` of `repo` is pinned (an untagged manifest is pinned only by a bare repo pin). */
  pinned(repo: string, tag: string | undefined): boolean {
    return this.pins.some((p) => p.repo.test(repo) && (p.tag === undefined || (tag !== undefined && p.tag.test(tag))));
  }
}
