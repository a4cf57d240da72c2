/**
 * The mutation operators of scripts/mutate.ts: each finds the places in one source line
 * where a single small change makes the code wrong in the way a slip of a programmer would
 * (a condition flipped or negated, a boundary moved, a call or a throw removed, a constant
 * returned instead of another, arithmetic inverted). Line-based on purpose: comments,
 * imports and type-only lines are skipped; a mutant that no longer parses is dropped by the
 * harness before any test runs, so an operator may be a little greedy.
 */

/** One mutant of a file: the line changed and its new text. */
export interface Mutant {
  /** 1-based line number. */
  line: number;
  operator: string;
  before: string;
  after: string;
}

type LineOperator = (text: string) => { operator: string; after: string }[];

/** Every match of `re` in `text` replaced one at a time by `by`. */
function eachMatch(text: string, re: RegExp, by: string | ((m: string) => string), operator: string) {
  const out: { operator: string; after: string }[] = [];
  for (const m of text.matchAll(new RegExp(re.source, re.flags.includes("g") ? re.flags : `${re.flags}g`))) {
    const rep = typeof by === "string" ? by : by(m[0]);
    out.push({ operator, after: text.slice(0, m.index) + rep + text.slice(m.index! + m[0].length) });
  }
  return out;
}

/** The index of the parenthesis closing the one at `open`, or -1. */
function closing(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === "(") depth++;
    else if (text[i] === ")" && --depth === 0) return i;
  }
  return -1;
}

const operators: LineOperator[] = [
  // conditionals flipped
  (t) => [...eachMatch(t, / === /, " !== ", "=== to !=="), ...eachMatch(t, / !== /, " === ", "!== to ===")],
  (t) => [...eachMatch(t, / && /, " || ", "&& to ||"), ...eachMatch(t, / \|\| /, " && ", "|| to &&")],
  // boundaries
  (t) => [
    ...eachMatch(t, / < /, " <= ", "< to <="),
    ...eachMatch(t, / <= /, " < ", "<= to <"),
    ...eachMatch(t, / > /, " >= ", "> to >="),
    ...eachMatch(t, / >= /, " > ", ">= to >"),
  ],
  // a whole condition negated
  (t) => {
    const out: { operator: string; after: string }[] = [];
    for (const m of t.matchAll(/\b(if|while) \(/g)) {
      const open = m.index! + m[0].length - 1;
      const close = closing(t, open);
      if (close < 0) continue;
      out.push({ operator: "condition negated", after: `${t.slice(0, open + 1)}!(${t.slice(open + 1, close)})${t.slice(close)}` });
    }
    return out;
  },
  // a call statement or a throw removed (single-line statements only)
  (t) => {
    const s = t.trim();
    if (/^(await )?(this\.)?[\w$.?!\[\]]+\(.*\);$/.test(s) && closing(s, s.indexOf("(")) === s.length - 2) {
      return [{ operator: "call removed", after: t.replace(s, ";") }];
    }
    if (/^throw .*;$/.test(s)) return [{ operator: "throw removed", after: t.replace(s, ";") }];
    return [];
  },
  // returned constants
  (t) => [...eachMatch(t, /\btrue\b/, "false", "true to false"), ...eachMatch(t, /\bfalse\b/, "true", "false to true")],
  (t) => eachMatch(t, /\breturn (?!undefined;)[^;]+;/, "return undefined;", "return undefined"),
  // arithmetic (not next to a string)
  (t) => [...eachMatch(t, /(?<=[\w)\]]) \+ (?=[\w(])/, " - ", "+ to -"), ...eachMatch(t, /(?<=[\w)\]]) - (?=[\w(])/, " + ", "- to +")],
];

/** True for lines no operator should touch: comments, imports, exports of types, declarations of types. */
function skipped(text: string): boolean {
  const s = text.trim();
  return s === "" || s.startsWith("//") || s.startsWith("*") || s.startsWith("/*") || s.startsWith("import ") ||
    s.startsWith("export type") || s.startsWith("export interface") || s.startsWith("type ") || s.startsWith("interface ") ||
    /^(readonly )?[\w$]+\??: [^=]*;$/.test(s) || // a field of an interface or class without initialiser
    s.includes("this.log.") || s.includes("log.debug(") || s.includes("log.info(") || s.includes("log.warn(") || s.includes("log.once(");
}

/** Every mutant of `source` (one change per mutant), in line order. */
export function mutantsOf(source: string): Mutant[] {
  const out: Mutant[] = [];
  const lines = source.split("\n");
  let inBlockComment = false;
  lines.forEach((text, i) => {
    const s = text.trim();
    if (inBlockComment) {
      if (s.includes("*/")) inBlockComment = false;
      return;
    }
    if (s.startsWith("/*") && !s.includes("*/")) {
      inBlockComment = true;
      return;
    }
    if (skipped(text)) return;
    const code = text.replace(/\s\/\/ .*$/, ""); // trailing comment off
    const tail = text.slice(code.length);
    for (const op of operators) {
      for (const m of op(code)) if (m.after !== code) out.push({ line: i + 1, operator: m.operator, before: text, after: m.after + tail });
    }
  });
  return out;
}

/** `source` with mutant `m` applied. */
export function applyMutant(source: string, m: Mutant): string {
  const lines = source.split("\n");
  lines[m.line - 1] = m.after;
  return lines.join("\n");
}

/** A small seeded generator (mulberry32), so a sample can be drawn again. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` of `items` drawn without replacement with `random`, kept in their original order. */
export function sample<T>(items: readonly T[], n: number, random: () => number): T[] {
  const idx = items.map((_, i) => i);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, n).sort((a, b) => a - b).map((i) => items[i]!);
}
