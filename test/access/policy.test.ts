/**
 * Table tests of the pure policy evaluation (access/policy.ts): which rule decides (the most
 * specific glob), what each kind of identity gets from it, admins, credential limits, and
 * the anonymous flags that decide `GET /v2/` and the catalog's answer.
 */
import { describe, expect, test } from "bun:test";
import type { Principal } from "../../daemon/auth/identity";
import { type AccessRuleConfig, type RolesConfig, allowedActions, allows, compilePolicy, decidingRule, isAdmin, mayReadMetrics } from "../../daemon/access/policy";

const NO_ROLES: RolesConfig = { admins: [], adminGroups: [], metricsUsers: [], metricsGroups: [], metricsAnonymous: false };

function rule(repos: string[], grants: Partial<Omit<AccessRuleConfig, "repos">> = {}): AccessRuleConfig {
  return { repos, anonymous: [], authenticated: [], users: {}, groups: {}, ...grants };
}

const user = (name: string, groups: string[] = [], extra: Partial<Principal> = {}): Principal => ({ name, groups, source: "htpasswd", ...extra });

describe("the most specific glob decides", () => {
  const rules = [
    rule(["**"]), // 0
    rule(["factory/**"]), // 1
    rule(["factory/*"]), // 2
    rule(["factory/app"]), // 3
    rule(["factory/app*"]), // 4
    rule(["fa*"]), // 5
    rule(["factory/?pp"]), // 6
    rule(["dup/*"]), // 7
    rule(["dup/*"]), // 8: same glob, written later: loses
    rule(["a/**/z", "zz/**"]), // 9
  ];
  const policy = compilePolicy(rules, NO_ROLES);
  test.each([
    ["factory/app", 3], // a literal beats every glob with the same prefix
    ["factory/apple", 4], // longer literal prefix "factory/app" beats "factory/" and "factory/?"
    ["factory/bpp", 6], // "factory/" prefix: one ? (single wildcard) beats one * by length (factory/?pp longer than factory/*)
    ["factory/x", 2], // "factory/" prefix: * (single) beats ** (double)
    ["factory/x/y", 1], // only ** crosses components
    ["fab", 5], // literal prefix "fa" beats ""
    ["other", 0],
    ["dup/x", 7], // a tie goes to the rule written first
    ["a/b/c/z", 9],
    ["zz/q", 9],
  ])("%s is decided by rule %d", (repo, index) => {
    expect(decidingRule(policy, repo)).toBe(index);
  });
  test("no matching rule: nothing is granted", () => {
    const p = compilePolicy([rule(["factory/*"], { anonymous: ["pull"], authenticated: ["*"] })], NO_ROLES);
    expect(decidingRule(p, "other/x")).toBe(-1);
    expect(allowedActions(p, undefined, "other/x")).toBe(0);
    expect(allowedActions(p, user("ci"), "other/x")).toBe(0);
  });
});

describe("what an identity gets from the deciding rule", () => {
  const policy = compilePolicy(
    [
      rule(["public/**"], { anonymous: ["pull"], users: { ci: ["push"] } }),
      rule(["**"], { authenticated: ["pull"], users: { ci: ["pull", "push", "delete"], viewer: ["pull"] }, groups: { ops: ["delete"] } }),
      rule(["secret/**"], { users: { ci: ["pull"] } }),
    ],
    { ...NO_ROLES, admins: ["root"], adminGroups: ["wheel"] },
  );
  const anon = undefined;
  const ci = user("ci");
  const viewer = user("viewer");
  const bob = user("bob", ["ops"]);
  const root = user("root");
  const wheel = user("w", ["wheel"]);
  const cases: [string, Principal | undefined, string, "pull" | "push" | "delete", boolean][] = [
    ["anonymous pulls public", anon, "public/base", "pull", true],
    ["anonymous may not push public", anon, "public/base", "push", false],
    ["anonymous may not pull elsewhere", anon, "factory/app", "pull", false],
    ["identities get the anonymous grant too", viewer, "public/base", "pull", true],
    ["ci pushes public (its own entry there)", ci, "public/base", "push", true],
    ["ci may not delete public (the ** rule does not add to a more specific one)", ci, "public/base", "delete", false],
    ["ci deletes under **", ci, "factory/app", "delete", true],
    ["viewer pulls under **", viewer, "factory/app", "pull", true],
    ["viewer may not push", viewer, "factory/app", "push", false],
    ["any identity pulls under ** (authenticated)", bob, "factory/app", "pull", true],
    ["group grant", bob, "factory/app", "delete", true],
    ["group grant does not give push", bob, "factory/app", "push", false],
    ["secret: viewer may not pull (authenticated is not granted there)", viewer, "secret/keys", "pull", false],
    ["secret: ci pulls", ci, "secret/keys", "pull", true],
    ["secret: ci may not push", ci, "secret/keys", "push", false],
    ["admins may do everything", root, "secret/keys", "delete", true],
    ["admin group", wheel, "secret/keys", "push", true],
    ["anonymous is never an admin", anon, "secret/keys", "pull", false],
  ];
  test.each(cases)("%s", (_, who, repo, action, expected) => {
    expect(allows(policy, who, repo, action)).toBe(expected);
  });
  test("admins", () => {
    expect(isAdmin(policy, root)).toBe(true);
    expect(isAdmin(policy, wheel)).toBe(true);
    expect(isAdmin(policy, ci)).toBe(false);
    expect(isAdmin(policy, { name: "admin-token", groups: [], source: "admin-token" })).toBe(true);
    expect(isAdmin(policy, { name: "root", groups: [], source: "ldap" })).toBe(true);
  });
});

describe("a credential's limits intersect the grant", () => {
  const policy = compilePolicy([rule(["**"], { users: { ci: ["*"] } })], { ...NO_ROLES, admins: ["root"] });
  const cases: [string, Principal, string, "pull" | "push" | "delete", boolean][] = [
    ["within the scope", user("ci", [], { limits: [{ repos: ["factory/*"], actions: ["pull", "push"] }] }), "factory/app", "push", true],
    ["action outside the scope", user("ci", [], { limits: [{ repos: ["factory/*"], actions: ["pull", "push"] }] }), "factory/app", "delete", false],
    ["repository outside the scope", user("ci", [], { limits: [{ repos: ["factory/*"], actions: ["pull"] }] }), "other/app", "pull", false],
    ["empty limits grant nothing", user("ci", [], { limits: [] }), "factory/app", "pull", false],
    ["limits never widen the policy", user("viewer", [], { limits: [{ repos: ["**"], actions: ["pull"] }] }), "factory/app", "pull", false],
    ["an admin's scoped key is limited too", user("root", [], { limits: [{ repos: ["a/**"], actions: ["pull"] }] }), "b/x", "pull", false],
    ["several limits add up", user("ci", [], { limits: [{ repos: ["a/*"], actions: ["pull"] }, { repos: ["a/*"], actions: ["push"] }] }), "a/x", "push", true],
  ];
  test.each(cases)("%s", (_, who, repo, action, expected) => {
    expect(allows(policy, who, repo, action)).toBe(expected);
  });
});

describe("anonymous flags and metrics readers", () => {
  test.each([
    ["anonymous pulls everything", [rule(["**"], { anonymous: ["pull"] })], true, true],
    ["one rule closes a corner", [rule(["**"], { anonymous: ["pull"] }), rule(["private/*"], { users: { a: ["pull"] } })], false, true],
    ["no rule for every name", [rule(["public/**"], { anonymous: ["pull"] })], false, true],
    ["push alone is not pull", [rule(["**"], { anonymous: ["push"] })], false, false],
    ["no rules", [], false, false],
  ] as [string, AccessRuleConfig[], boolean, boolean][])("%s", (_, rules, all, any) => {
    const p = compilePolicy(rules, NO_ROLES);
    expect(p.anonymousPullsAll).toBe(all);
    expect(p.anonymousPullsAny).toBe(any);
  });
  test("metrics readers", () => {
    const p = compilePolicy([], { ...NO_ROLES, admins: ["root"], metricsUsers: ["prom"], metricsGroups: ["mon"] });
    expect(mayReadMetrics(p, user("prom"))).toBe(true);
    expect(mayReadMetrics(p, user("x", ["mon"]))).toBe(true);
    expect(mayReadMetrics(p, user("root"))).toBe(true);
    expect(mayReadMetrics(p, user("ci"))).toBe(false);
    expect(mayReadMetrics(p, undefined)).toBe(false);
    expect(mayReadMetrics(compilePolicy([], { ...NO_ROLES, metricsAnonymous: true }), undefined)).toBe(true);
  });
});
