/**
 * `GET|POST /v2/_zot/ext/search`: zot's GraphQL search API over search's index. Loaded on
 * the first search request (search/lazy.ts), so a registry nobody searches never loads
 * graphql-js or builds the schema.
 *
 * The request: POST with a JSON body `{query, variables?, operationName?}` (or the bare
 * query as `application/graphql`), or GET with `?query=` (and `variables`, `operationName`).
 * Transport faults (a body too large, not JSON, no query, another method) are OCI errors;
 * a query that does not parse, validate or stay within the bounds of search/limits.ts is
 * answered 422 with GraphQL `errors` and no data, as zot (gqlgen) does; faults while
 * resolving (an unknown image, a page bound exceeded) are 200 with `errors` beside `data`.
 */
import { type DocumentNode, GraphQLError, type GraphQLSchema, Kind, type OperationDefinitionNode, buildSchema, execute, parse, specifiedRules, validate } from "graphql";
import { RegistryError } from "../oci/errors";
import { HttpError } from "../http/headers";
import type { Access } from "../access/access";
import type { Principal } from "../auth/identity";
import type { Logger } from "../log";
import { BodyTooLarge, readCapped } from "../platform/capped";
import type { SqlDatabase } from "../platform/sqlite";
import type { Descriptor } from "../oci/manifest";
import { Catalog, type CatalogSource } from "./catalog";
import { DEFAULT_LIMITS, type QueryLimits, checkCost, checkSize, workBudget } from "./limits";
import { NOT_SCANNED, type TrustProvider, UNSIGNED, type VulnerabilityProvider } from "./providers";
import { QUERIES } from "./resolvers";
import { SCHEMA_SDL } from "./schema";
import type { SearchContext, UsageReader } from "./summary";

/** What the search handler is built from. */
export interface SearchDeps {
  /** meta.db: search keeps its tables beside the derived index. */
  db: SqlDatabase;
  source: CatalogSource;
  /** Referrers of a manifest (the derived index's). */
  referrers(repo: string, digest: string): Descriptor[];
  usage: UsageReader;
  trust?: TrustProvider;
  vulns?: VulnerabilityProvider;
  /** The access policy; absent: berth runs without `[auth]` and every repository is visible. */
  access?: Access;
  maxManifestBytes: number;
  /** `[search] max_results`. */
  maxResults: number;
  /** `[search] max_query_bytes`. */
  maxQueryBytes: number;
  /** `[search] model_bytes`: the in-memory models' bound (search/catalog.ts). */
  modelBytes?: number;
  limits?: Partial<QueryLimits>;
  /**
   * Waits at most `ms` for the derived index to be complete (the start-up reconcile, which
   * runs after listening); false when it is not. Absent: always complete.
   */
  ready?: (ms: number) => Promise<boolean>;
  log: Logger;
}

/** Handles one search request for `principal` (undefined: anonymous). */
export type SearchHandler = (req: Request, principal: Principal | undefined) => Promise<Response>;

const JSON_HEADERS = { "Content-Type": "application/json" };
/** Largest config blob indexed (configs with very long histories exist; larger ones lose their config facts). */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** Builds the search handler: the schema once, the catalog opened on `deps.db`. */
export function createSearchHandler(deps: SearchDeps): SearchHandler & { catalog: Catalog } {
  const schema = buildSchema(SCHEMA_SDL);
  const limits: QueryLimits = { ...DEFAULT_LIMITS, ...deps.limits };
  const catalog = new Catalog(deps.db, deps.source, { maxManifestBytes: deps.maxManifestBytes, maxConfigBytes: MAX_CONFIG_BYTES, ...(deps.modelBytes !== undefined ? { modelBytes: deps.modelBytes } : {}) });
  const rootValue: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(QUERIES)) rootValue[name] = (args: Record<string, unknown>, ctx: SearchContext) => fn(args, ctx);
  const trust = deps.trust ?? UNSIGNED;
  const vulns = deps.vulns ?? NOT_SCANNED;

  const handler = async (req: Request, principal: Principal | undefined): Promise<Response> => {
    const params = await requestParams(req, deps.maxQueryBytes);
    const prepared = prepare(schema, params, limits);
    if ("errors" in prepared) return graphqlErrors(prepared.errors, 422);
    // the query's deadline covers bringing the index up to date: the start-up reconcile,
    // then search's own tables (a first search on a large store builds them for minutes);
    // past it the answer is a retryable 503 while the work goes on, and a retry finds more done
    const deadline = performance.now() + limits.timeoutMs;
    if (deps.ready && !(await deps.ready(limits.timeoutMs))) throw notReady("berth is still reconciling its index with the storage after starting", limits.timeoutMs);
    if (!(await catalog.refreshWithin(Math.max(0, deadline - performance.now())))) throw notReady("search is still indexing the images", limits.timeoutMs);
    const access = deps.access;
    const ctx: SearchContext = {
      catalog,
      referrers: deps.referrers,
      usage: deps.usage,
      trust,
      vulns,
      visible: access ? (repo) => access.may(principal, repo, "pull") : () => true,
      deletable: access ? (repo) => access.may(principal, repo, "delete") : () => true,
      work: workBudget(limits),
      maxResults: deps.maxResults,
    };
    const result = await execute({
      schema,
      document: prepared.document,
      rootValue,
      contextValue: ctx,
      variableValues: params.variables,
      operationName: params.operationName,
    });
    for (const e of result.errors ?? []) {
      if (!(e.originalError === undefined || e.originalError instanceof GraphQLError)) deps.log.error("search query failed", { error: e.originalError });
    }
    const errors = result.errors?.map((e) => (e.originalError === undefined || e.originalError instanceof GraphQLError ? e : new GraphQLError("internal error", { path: e.path ?? [] })));
    return new Response(JSON.stringify(errors ? { errors, data: result.data ?? null } : { data: result.data }), { headers: JSON_HEADERS });
  };
  return Object.assign(handler, { catalog });
}

interface Params {
  query: string;
  variables?: Record<string, unknown>;
  operationName?: string;
}

/** Parses, validates and bounds the query; errors as GraphQL errors. */
function prepare(schema: GraphQLSchema, p: Params, limits: QueryLimits): { document: DocumentNode } | { errors: readonly GraphQLError[] } {
  let document: DocumentNode;
  try {
    document = parse(p.query, { maxTokens: limits.maxTokens, noLocation: false });
  } catch (err) {
    return { errors: [err instanceof GraphQLError ? err : new GraphQLError(String(err))] };
  }
  const costly = (message: string | undefined) => (message ? { errors: [new GraphQLError(message, { extensions: { code: "QUERY_TOO_COSTLY" } })] } : undefined);
  // bounds first: validation itself costs time quadratic in the selections
  const large = costly(checkSize(document, limits));
  if (large) return large;
  const ops = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  const op = p.operationName ? ops.find((o) => o.name?.value === p.operationName) : ops.length === 1 ? ops[0] : undefined;
  if (!op) {
    const why = p.operationName ? `no operation named "${p.operationName.slice(0, 100)}" in the query` : ops.length === 0 ? "the query has no operation" : "the query has several operations; name one in operationName";
    return { errors: [new GraphQLError(why)] };
  }
  const expensive = costly(checkCost(document, op, limits));
  if (expensive) return expensive;
  const errors = validate(schema, document, specifiedRules, { maxErrors: 20 });
  if (errors.length > 0) return { errors };
  if (op.operation !== "query") return { errors: [new GraphQLError(`only queries are supported, not ${op.operation}s`)] };
  return { document };
}

/** The query, variables and operation name of a GET or POST request; OCI errors for transport faults. */
async function requestParams(req: Request, maxBytes: number): Promise<Params> {
  if (req.method === "GET" || req.method === "HEAD") {
    const url = new URL(req.url, "http://localhost");
    const query = url.searchParams.get("query");
    if (query === null || query === "") throw badRequest("a search request needs a GraphQL query: ?query=… on GET, or a JSON body {\"query\": …} on POST");
    if (query.length > maxBytes) throw tooLarge(query.length, maxBytes);
    const vars = url.searchParams.get("variables");
    const op = url.searchParams.get("operationName");
    return { query, ...(vars ? { variables: objectOf(vars, "variables") } : {}), ...(op ? { operationName: op } : {}) };
  }
  if (req.method !== "POST") throw new HttpError("UNSUPPORTED", `${req.method} is not supported here; use GET or POST`, { status: 405, headers: { Allow: "GET, POST" } });
  const text = await boundedText(req, maxBytes);
  const type = (req.headers.get("content-type") ?? "").toLowerCase();
  if (type.startsWith("application/graphql")) return { query: text };
  const body = objectOf(text, "the request body");
  if (typeof body.query !== "string" || body.query === "") throw badRequest('the JSON body needs a "query" string');
  if (body.variables != null && (typeof body.variables !== "object" || Array.isArray(body.variables))) throw badRequest('"variables" must be a JSON object');
  if (body.operationName != null && typeof body.operationName !== "string") throw badRequest('"operationName" must be a string');
  return {
    query: body.query,
    ...(body.variables ? { variables: body.variables as Record<string, unknown> } : {}),
    ...(typeof body.operationName === "string" ? { operationName: body.operationName } : {}),
  };
}

function objectOf(text: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw badRequest(`${what} is not JSON`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw badRequest(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

async function boundedText(req: Request, maxBytes: number): Promise<string> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw tooLarge(declared, maxBytes);
  try {
    return new TextDecoder().decode(await readCapped(req.body, { maxBytes }));
  } catch (err) {
    throw err instanceof BodyTooLarge ? tooLarge(err.total, maxBytes) : err;
  }
}

/** 503 UNAVAILABLE with Retry-After: the index is being built; the query may be sent again. */
function notReady(why: string, ms: number): RegistryError {
  return new RegistryError("UNAVAILABLE", `${why}; the query was not answered within its ${ms} ms limit, try again in a few seconds`, { retryAfter: Math.max(1, Math.ceil(ms / 1000)) });
}

function badRequest(detail: string): RegistryError {
  return new RegistryError("UNSUPPORTED", detail, { status: 400 });
}

function tooLarge(bytes: number, max: number): RegistryError {
  return new RegistryError("SIZE_INVALID", `the search request has ${bytes} bytes or more; at most ${max} are accepted ([search] max_query_bytes)`, { status: 413 });
}

function graphqlErrors(errors: readonly GraphQLError[], status: number): Response {
  return new Response(JSON.stringify({ errors, data: null }), { status, headers: JSON_HEADERS });
}
