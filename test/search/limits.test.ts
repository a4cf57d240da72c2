/**
 * Hostile GraphQL requests get a GraphQL error, never a stall: too many tokens, too deep,
 * too many fields once fragments are expanded (computed without expanding them), too many
 * aliased top-level queries, and more work than the bound while resolving. The standard
 * introspection query that GraphQL tools send stays within the bounds.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { getIntrospectionQuery } from "graphql";
import { type TestRegistry, createTestRegistry } from "../helpers/registry";
import { fill, gql } from "./fixture";
import { DEFAULT_LIMITS, workBudget } from "../../daemon/search/limits";

let r: TestRegistry;
let small: TestRegistry;

beforeAll(async () => {
  r = await createTestRegistry({ search: {} });
  await fill(r);
  small = await createTestRegistry({ search: { limits: { maxWork: 5 } } });
  await fill(small);
});
afterAll(async () => {
  await r[Symbol.asyncDispose]();
  await small[Symbol.asyncDispose]();
});

/** A fragment chain on __Type doubling the fields at each level: 2^levels leaf fields, levels+1 deep. */
function fragmentBomb(levels: number): string {
  let text = "fragment T0 on __Type { name }\n";
  for (let i = 1; i <= levels; i++) text += `fragment T${i} on __Type { a: ofType { ...T${i - 1} } b: ofType { ...T${i - 1} } }\n`;
  return `{ __type(name: "ImageSummary") { ...T${levels} } }\n${text}`;
}

test.each([
  ["too many tokens", `{ ${"a ".repeat(DEFAULT_LIMITS.maxTokens + 10)}}`, "4000 tokens"],
  ["too deep", `{ __type(name: "ImageSummary") { ${"ofType { ".repeat(16)}name${" }".repeat(16)} } }`, "levels deep"],
  ["recursive introspection (graphql-js's own rule)", `{ __schema { types { ${"fields { type { ".repeat(4)}name${" } }".repeat(4)} } } }`, "Maximum introspection depth exceeded"],
  ["a fragment bomb", fragmentBomb(12), "more than 2000 fields"],
  ["an alias bomb", `{ ${Array.from({ length: 40 }, (_, i) => `q${i}: GlobalSearch(query: "") { Page { TotalCount } }`).join(" ")} }`, "top-level fields"],
  ["a mutation", `mutation { x }`, "only queries are supported"],
  ["too many selections (validation is quadratic in them)", `{ __type(name: "ImageSummary") { ${Array.from({ length: 600 }, (_, i) => `a${i}: name`).join(" ")} } }`, "601 selections"],
  ["too many fragments", `{ __type(name: "X") { ...F0 } }\n${Array.from({ length: 60 }, (_, i) => `fragment F${i} on __Type { name }`).join("\n")}`, "60 fragments"],
  ["a fragment cycle (refused by validation)", `{ __type(name: "X") { ...A } } fragment A on __Type { ofType { ...B } } fragment B on __Type { ofType { ...A } }`, "Cannot spread fragment"],
])("%s: 422 with a GraphQL error and no data", async (_label, query, message) => {
  const { status, body } = await gql(r, query);
  expect(status).toBe(422);
  expect(body.data).toBeNull();
  expect(body.errors![0]!.message).toContain(message);
});

test("the standard introspection query of GraphQL tools is answered", async () => {
  const { status, body } = await gql(r, getIntrospectionQuery());
  expect(status).toBe(200);
  const types = (body.data!.__schema.types as { name: string }[]).map((t) => t.name);
  expect(types).toContain("ImageSummary");
  expect(types).toContain("PageInput");
});

test("a fragment chain just inside the bounds is answered", async () => {
  const { status, body } = await gql(r, fragmentBomb(9));
  expect(status).toBe(200);
  expect(body.errors).toBeUndefined();
});

test("more work than the bound ends the query with an error beside partial data", async () => {
  const { status, body } = await gql(small, `{ ImageList(repo: "") { Page { TotalCount } Results { Tag } } }`);
  expect(status).toBe(200);
  expect(body.errors![0]!.message).toContain("units of work");
  expect(body.data).toBeNull();
});

test("the deadline ends the work counter once time is up", () => {
  let t = 0;
  const spend = workBudget({ ...DEFAULT_LIMITS, timeoutMs: 100 }, () => t);
  spend(1);
  t = 101;
  expect(() => spend(1)).toThrow("ran past its 100 ms limit");
});
