/**
 * The `[auth]` groups table and the `[[access]]` rules: checked here and reported under
 * keys such as `access[0].users.ci`. Pure; the htpasswd file itself is checked by
 * config/verify.ts and read by auth/htpasswd.ts. See access/policy.ts for what a rule means
 * and which rule decides for a repository.
 */
import type { AccessRuleConfig } from "../access/policy";

const ACTION_WORDS = ["pull", "push", "delete", "*"];

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function actionsOf(value: unknown, key: string, problems: string[]): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    problems.push(`${key}: expected a list of actions, e.g. ["pull", "push"]`);
    return [];
  }
  for (const v of value as string[]) {
    if (!ACTION_WORDS.includes(v)) problems.push(`${key}: "${v}" is not an action; use "pull", "push", "delete" or "*"`);
  }
  return [...(value as string[])];
}

function namesTable(value: unknown, key: string, problems: string[]): Record<string, string[]> {
  if (value === undefined) return {};
  if (!isTable(value)) {
    problems.push(`${key}: expected a table of name = [actions], e.g. { ci = ["pull", "push"] }`);
    return {};
  }
  const out: Record<string, string[]> = Object.create(null);
  for (const [name, actions] of Object.entries(value)) out[name] = actionsOf(actions, `${key}.${name}`, problems);
  return out;
}

function globProblem(glob: string): string | undefined {
  if (glob.length === 0) return "an empty pattern matches nothing";
  if (/[^a-z0-9._\-/*?]/i.test(glob)) return `"${glob}" has characters a repository pattern cannot have`;
  return undefined;
}

const RULE_KEYS = ["repos", "anonymous", "authenticated", "users", "groups"];

/** Checks the `[[access]]` array of tables. */
export function checkAccessRules(value: unknown, key: string, problems: string[]): AccessRuleConfig[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every(isTable)) {
    problems.push(`${key}: expected an array of tables ([[${key}]])`);
    return [];
  }
  return value.map((entry, i) => {
    const at = `${key}[${i}]`;
    for (const k of Object.keys(entry)) if (!RULE_KEYS.includes(k)) problems.push(`${at}.${k}: unknown key`);
    let repos: string[] = [];
    if (!Array.isArray(entry.repos) || entry.repos.length === 0 || entry.repos.some((g) => typeof g !== "string")) {
      problems.push(`${at}.repos: required, a non-empty list of repository globs (e.g. ["**"], ["factory/*"])`);
    } else {
      repos = entry.repos as string[];
      repos.forEach((g, j) => {
        const p = globProblem(g);
        if (p) problems.push(`${at}.repos[${j}]: ${p}`);
      });
    }
    return {
      repos,
      anonymous: entry.anonymous === undefined ? [] : actionsOf(entry.anonymous, `${at}.anonymous`, problems),
      authenticated: entry.authenticated === undefined ? [] : actionsOf(entry.authenticated, `${at}.authenticated`, problems),
      users: namesTable(entry.users, `${at}.users`, problems),
      groups: namesTable(entry.groups, `${at}.groups`, problems),
    };
  });
}

/** Checks `[auth] groups`: group name -> list of user names. */
export function checkAuthGroups(value: unknown, key: string, problems: string[]): Record<string, string[]> {
  if (!isTable(value)) {
    problems.push(`${key}: expected a table of group = [users], e.g. { ops = ["alice", "bob"] }`);
    return {};
  }
  const out: Record<string, string[]> = Object.create(null);
  for (const [group, users] of Object.entries(value)) {
    if (!Array.isArray(users) || users.some((u) => typeof u !== "string" || u.length === 0)) {
      problems.push(`${key}.${group}: expected a list of user names`);
    } else out[group] = [...users];
  }
  return out;
}
