/**
 * Repository-name globs as written in the configuration (sync filters, retention policies,
 * quota pins): `*` matches within one path component (no `/`), `**` matches across
 * components, `?` one character; everything else is literal.
 */

/** Compiles a glob into an anchored regular expression. */
export function globToRegExp(glob: string): RegExp {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      out += ".*";
      i++;
    } else if (c === "*") out += "[^/]*";
    else if (c === "?") out += "[^/]";
    else out += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}

/** Something that tells whether a name matches (a RegExp is one). */
export interface NameMatcher {
  test(name: string): boolean;
}

/** Characters the `.` of {@link globToRegExp}'s `**` does not match (`[^/]` of `*` and `?` does). */
const LINE_BREAKS = new Set(["\n", "\r", "\u2028", "\u2029"]);

/**
 * The same language as {@link globToRegExp}, matched by a set-of-states automaton in at most
 * (glob length × name length) steps. For globs written by users rather than the operator
 * (API key scopes): a regular expression of many `*` backtracks exponentially, so one key
 * scope such as `*a*a*a*a*a*a*a*a*a*a*a*a*b` could hold the event loop for minutes.
 */
export function globMatcher(glob: string): NameMatcher {
  // per position: a literal character, or "?" (one non-"/"), "*" (any non-"/"), "**" (anything)
  const tokens: string[] = [];
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      tokens.push("**");
      i++;
    } else tokens.push(c);
  }
  const n = tokens.length;
  const star = tokens.map((t) => t === "*" || t === "**");
  return {
    test(name: string): boolean {
      let cur = new Uint8Array(n + 1);
      let next = new Uint8Array(n + 1);
      // a star may match nothing: a state on a star also stands on the next token
      const close = (set: Uint8Array) => {
        for (let k = 0; k < n; k++) if (set[k] && star[k]) set[k + 1] = 1;
      };
      cur[0] = 1;
      close(cur);
      for (let i = 0; i < name.length; i++) {
        const ch = name[i]!;
        next.fill(0);
        let any = false;
        for (let k = 0; k < n; k++) {
          if (!cur[k]) continue;
          const t = tokens[k]!;
          if (t === "**") {
            if (!LINE_BREAKS.has(ch)) next[k] = 1;
          } else if (t === "*") {
            if (ch !== "/") next[k] = 1;
          } else if (t === "?") {
            if (ch !== "/") next[k + 1] = 1;
          } else if (t === ch) next[k + 1] = 1;
        }
        close(next);
        for (let k = 0; k <= n && !any; k++) any = next[k] === 1;
        if (!any) return false;
        [cur, next] = [next, cur];
      }
      return cur[n] === 1;
    },
  };
}

/**
 * How specific a glob is, as a sort key (greater is more specific): the longer literal
 * prefix first, then fewer `**`, fewer `*`/`?`, the longer glob, and the earlier entry
 * (`index`). Access rules and signature policies use it so that one rule decides for a
 * repository and an operator reads the same precedence everywhere.
 */
export function globSpecificity(glob: string, index: number): [number, number, number, number, number] {
  const firstWild = glob.search(/[*?]/);
  const literal = firstWild < 0 ? glob.length : firstWild;
  const doubles = (glob.match(/\*\*/g) ?? []).length;
  const singles = (glob.replace(/\*\*/g, "").match(/[*?]/g) ?? []).length;
  return [literal, -doubles, -singles, glob.length, -index];
}

/** Orders {@link globSpecificity} keys most specific first (for Array.sort). */
export function moreSpecificFirst(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return b[i]! - a[i]!;
  return 0;
}
