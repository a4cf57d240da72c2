/**
 * Scope parsing on hostile input (security review of issue 10): the token endpoint parses
 * scopes before any credential is checked, so a scope must cost time linear in its length.
 */
import { describe, expect, test } from "bun:test";
import { parseScope } from "../../daemon/auth/scope";

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
