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
