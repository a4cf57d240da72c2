/**
 * Scope parsing on hostile input (security review of issue 10): the token endpoint parses
 * scopes before any credential is checked, so a scope must cost time linear in its length.
 */
import { describe, expect, test } from "bun:test";
import { parseScope } from "../../daemon/auth/scope";
import { globMatcher, globToRegExp } from "../../daemon/oci/glob";

describe("parseScope on hostile input", () => {
  test("a resource class is still dropped; a type of 150 000 '(' is refused without backtracking", () => {
    expect(parseScope("repository(plugin):a/b:pull")).toEqual({ kind: "repository", name: "a/b", actions: ["pull"] });
    expect(parseScope("repository(x)(y):a:pull")).toEqual({ kind: "repository", name: "a", actions: ["pull"] });
    expect(parseScope("(repository):a:pull")).toBeUndefined();
    // quadratic backtracking made this take about ten seconds (the test's default 5 s bound fails it);
    // no duration is asserted, only that the call returns with the right answer
    expect(parseScope(`${"(".repeat(150_000)}:a:pull`)).toBeUndefined();
    expect(parseScope(`repository${"(".repeat(150_000)}):a:pull`)).toEqual({ kind: "repository", name: "a", actions: ["pull"] });
  });
});

describe("globMatcher (API key scopes)", () => {
  test("matches exactly what globToRegExp matches", () => {
    const globs = ["**", "*", "a/*", "a/**", "a/**/b", "a*b", "a?c", "*/*", "**/x", "a.b", "?", "a/*/c*", "**a**", "*a*a*b"];
    const names = ["", "a", "b", "ab", "acb", "abc", "a/b", "a/x/b", "a/x/y/b", "axb", "a.b", "a/c", "x", "y/x", "a/bb/cd", "aab", "a/a/b", "a\nb"];
    for (const g of globs) for (const n of names) expect([g, n, globMatcher(g).test(n)]).toEqual([g, n, globToRegExp(g).test(n)]);
  });

  test("a scope of many stars is decided without backtracking", () => {
    // the regular expression of this glob took minutes on this name; no duration is asserted
    const glob = `${"*a".repeat(24)}b`;
    expect(globMatcher(glob).test("a".repeat(250))).toBe(false);
    expect(globMatcher(glob).test(`${"a".repeat(250)}b`)).toBe(true);
  });
});
