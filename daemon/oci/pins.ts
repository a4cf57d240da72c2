/**
 * Pins as written in the configuration, parsed in one place. Two keys use them:
 * `[[sync.registries]] pinned` names exact upstream `repository:tag` pairs that sync keeps
 * mirrored, and `[quota] pinned` holds `repo-glob[:tag-glob]` patterns eviction never
 * touches. Both split at the last `:` (a repository name cannot hold one; a registry host
 * with a port is not part of a repository name here).
 */

/** One pin: a repository (name or glob) and, unless the pin covers every tag, a tag. */
export interface Pin {
  repo: string;
  /** Absent when the pin names only a repository (every tag). */
  tag?: string;
}

/** Splits `text` at its last `:` into repository and tag; without `:` the pin has no tag. */
export function parsePin(text: string): Pin {
  const at = text.lastIndexOf(":");
  return at < 0 ? { repo: text } : { repo: text.slice(0, at), tag: text.slice(at + 1) };
}

const SYNC_PIN = /^[a-z0-9][a-z0-9._/-]*:[\w][\w.-]{0,127}$/;

/** The problem with `text` as a sync pin (an exact `repository:tag`), or undefined when it is one. */
export function syncPinProblem(text: string): string | undefined {
  return SYNC_PIN.test(text) ? undefined : `"${text}" is not "repository:tag"`;
}

/** Parses a valid sync pin (checked by {@link syncPinProblem}) into its repository and tag. */
export function parseSyncPin(text: string): { repo: string; tag: string } {
  const p = parsePin(text);
  return { repo: p.repo, tag: p.tag ?? "" };
}
