/**
 * The `/v2/*` surface of the distribution spec as a plain `(Request) => Promise<Response>`.
 * Repository names contain slashes, so routes are matched on the tail of the raw path;
 * the raw (undecoded) path is used, so `%2f` and friends can never smuggle a slash or a
 * dot-segment into a name: they simply fail the name grammar. A target whose dot segments
 * the runtime's URL parser resolved never gets here (platform/rawtarget.ts, http/app.ts).
 * Manifest bodies are bounded in size, in bytes in flight and in time (body.ts).
 *
 * Every response carries `Docker-Distribution-API-Version: registry/2.0`. Running out of
 * descriptors or memory is answered 503 with `Retry-After`, a full disk 507 (see
 * registry/translate.ts), never 500 and never a crash.
 */
import type { Logger } from "../log";
import { RegistryError, errorBody } from "../oci/errors";
import { OCI_INDEX, bareMediaType } from "../oci/mediatypes";
import type { V2Registry } from "../registry/api";
import type { BlobFile } from "../registry/registry";
import type { BlobBody } from "../storage/api";
import type { RequestPeer } from "../platform/serve";
import { resourceError } from "../registry/translate";
import { HttpError, errorHeaders, uploadHeaders } from "./headers";
import { ByteBudget, contentLength, readManifestBody } from "./body";
import type { Actor, AuditTrail } from "../audit/audit";
import type { Access } from "../access/access";
import type { AuthEvents } from "../auth/hooks";
import type { Action, Principal } from "../auth/identity";
import { type SearchExtension, discoverBody } from "../search/lazy";

/** Options for {@link createV2Handler}. */
export interface V2Options {
  maxManifestBytes: number;
  /** Bytes of manifest bodies held at once, all requests together (`[http] manifest_body_budget`); 0 = no budget. */
  manifestBudgetBytes?: number;
  /** Milliseconds a manifest body may take to arrive (`[http] body_timeout`); 0 = no deadline. */
  bodyTimeoutMs?: number;
  log: Logger;
  /** Told the size of every blob body served (the scheduler counts foreground IO with it). */
  onServe?: (bytes: number) => void;
  /** The audit trail: pushes, tag moves and deletes (and pulls, batched, when it counts them). */
  audit?: AuditTrail;
  /** Authorization (`[auth]`): every route asks the policy before the registry; absent = open as before. */
  auth?: V2Auth;
  /** zot's search API at /v2/_zot/ext/search (`[search]`, loaded lazily: search/lazy.ts); absent = switched off. */
  search?: SearchExtension;
}

/** What the handler needs to authorize requests (see {@link createV2Handler}). */
export interface V2Auth {
  access: Access;
  /** The `WWW-Authenticate` value of a 401 for `scope` ("repository:<name>:<actions>"). */
  challenge(req: Request, scope: string | undefined): string;
  events?: AuthEvents;
  /** Upload sessions whose owner is remembered (default 65536); the oldest is forgotten first. */
  maxOwners?: number;
}

const API_VERSION = "registry/2.0";
const JSON_TYPE = "application/json";

type Route =
  | { op: "base" }
  | { op: "catalog" }
  | { op: "search" }
  | { op: "discover" }
  | { op: "tags"; name: string }
  | { op: "manifest"; name: string; reference: string }
  | { op: "uploads"; name: string }
  | { op: "upload"; name: string; id: string }
  | { op: "blob"; name: string; digest: string }
  | { op: "referrers"; name: string; digest: string };

const TAIL_ROUTES: [RegExp, (m: RegExpExecArray) => Route][] = [
  [/^(.+)\/tags\/list$/, (m) => ({ op: "tags", name: m[1]! })],
  [/^(.+)\/manifests\/([^/]+)$/, (m) => ({ op: "manifest", name: m[1]!, reference: decodeColon(m[2]!) })],
  [/^(.+)\/blobs\/uploads\/?$/, (m) => ({ op: "uploads", name: m[1]! })],
  [/^(.+)\/blobs\/uploads\/([^/]+)$/, (m) => ({ op: "upload", name: m[1]!, id: m[2]! })],
  [/^(.+)\/blobs\/([^/]+)$/, (m) => ({ op: "blob", name: m[1]!, digest: decodeColon(m[2]!) })],
  [/^(.+)\/referrers\/([^/]+)$/, (m) => ({ op: "referrers", name: m[1]!, digest: decodeColon(m[2]!) })],
];

/** Clients may percent-encode the colon of a digest; nothing else is decoded. */
function decodeColon(s: string): string {
  return s.includes("%") ? s.replace(/%3a/gi, ":") : s;
}

/**
 * Splits a request URL into its raw path and its query (without decoding the path). Bun
 * hands over a bare path ("/v2/…") when the request had no usable Host header.
 */
export function splitUrl(url: string): { path: string; query: string } {
  const scheme = url.startsWith("/") ? -1 : url.indexOf("://");
  const start = scheme < 0 ? 0 : url.indexOf("/", scheme + 3);
  if (start < 0) return { path: "/", query: "" };
  const q = url.indexOf("?", start);
  return q < 0 ? { path: url.slice(start), query: "" } : { path: url.slice(start, q), query: url.slice(q + 1) };
}

/** Matches a raw path under /v2 to a route; undefined when nothing matches. */
export function route(path: string): Route | undefined {
  if (path === "/v2/" || path === "/v2") return { op: "base" };
  if (!path.startsWith("/v2/")) return undefined;
  const tail = path.slice(4);
  if (tail === "_catalog") return { op: "catalog" };
  if (tail === "_zot/ext/search") return { op: "search" };
  if (tail === "_oci/ext/discover") return { op: "discover" };
  for (const [re, make] of TAIL_ROUTES) {
    const m = re.exec(tail);
    if (m) return make(m);
  }
  return undefined;
}

function headers(extra?: Record<string, string>): Headers {
  const h = new Headers(extra);
  h.set("Docker-Distribution-API-Version", API_VERSION);
  return h;
}

function errorResponse(err: RegistryError, method: string): Response {
  const h = headers(errorHeaders(err));
  h.set("Content-Type", JSON_TYPE);
  return new Response(method === "HEAD" ? null : errorBody(err.code, err.detail), { status: err.status, headers: h });
}

function json(body: unknown, extra?: Record<string, string>): Response {
  const h = headers(extra);
  h.set("Content-Type", JSON_TYPE);
  return new Response(JSON.stringify(body), { status: 200, headers: h });
}

function empty(status: number, extra: Record<string, string>): Response {
  const h = headers(extra);
  h.set("Content-Length", "0");
  return new Response(null, { status, headers: h });
}

function methodNotAllowed(method: string, allowed: string): never {
  throw new HttpError("UNSUPPORTED", `${method} is not supported here; use ${allowed}`, { status: 405, headers: { Allow: allowed } });
}

/** Parses `n` for list endpoints: a non-negative integer, else 400. */
function parseN(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (!/^\d{1,9}$/.test(value)) throw new RegistryError("UNSUPPORTED", `n must be a non-negative integer, not "${value.slice(0, 40)}"`, { status: 400 });
  return Number(value);
}

/** Parses an upload's Content-Range ("<start>-<end>", also "bytes <start>-<end>/<total>"). */
export function parseContentRange(value: string | null): { start: number; end: number } | undefined {
  if (value === null) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(value.trim());
  if (!m) throw new RegistryError("BLOB_UPLOAD_INVALID", `Content-Range "${value.slice(0, 80)}" is not of the form <start>-<end>`, { status: 416 });
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw new RegistryError("BLOB_UPLOAD_INVALID", `Content-Range "${value}" ends before it starts`, { status: 416 });
  return { start, end };
}

/**
 * Parses a GET Range header against a blob of `size` bytes (RFC 9110 §14). Returns the
 * inclusive byte span, "unsatisfiable", or undefined to serve the whole blob (no header, or
 * one this registry does not honour, such as several ranges).
 */
export function parseRange(value: string | null, size: number): { start: number; end: number } | "unsatisfiable" | undefined {
  if (value === null) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  if (start >= size) return "unsatisfiable";
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (end < start) return undefined;
  return { start, end };
}

/**
 * The answer to an error the server met outside the handler, while sending a response: a
 * file body whose open failed (EMFILE) is 503 with `Retry-After`, anything else 500
 * UNKNOWN, in the OCI error shape and without internal detail.
 */
export function serverError(err: unknown, log: Logger): Response {
  const refused = resourceError(err);
  if (!refused) log.error("internal error while sending a response", { error: err });
  return errorResponse(refused ?? new RegistryError("UNKNOWN"), "GET");
}

/** A warning logged at most once per `intervalMs`, carrying how many were left out since the last. */
function throttledWarn(log: Logger, msg: string, intervalMs = 10_000): (fields: Record<string, unknown>) => void {
  let last = -Infinity;
  let suppressed = 0;
  return (fields) => {
    const now = Date.now();
    if (now - last < intervalMs) {
      suppressed++;
      return;
    }
    last = now;
    log.warn(msg, { ...fields, suppressed });
    suppressed = 0;
  };
}

/** The peer's address; undefined when unknown (a socketless test) or when asking fails. */
function peerAddress(peer: RequestPeer | undefined, req: Request): string | undefined {
  try {
    return peer?.requestIP(req)?.address;
  } catch {
    return undefined;
  }
}

/**
 * Creates the `/v2` handler over a registry. With `options.auth`, the caller's principal
 * (decided by the front; undefined = anonymous) is checked against the policy on every
 * route before the registry is asked; see `authorize` below for the action of each route.
 */
export function createV2Handler(
  registry: V2Registry,
  options: V2Options,
): (req: Request, peer?: RequestPeer, principal?: Principal) => Promise<Response> {
  const { log } = options;
  // a storm of refusals for want of descriptors or space is logged once per interval, not per request
  const shortOf = throttledWarn(log, "requests refused for want of resources (descriptors, memory or disk)");
  const upstreamFault = throttledWarn(log, "requests answered with an upstream's error (pull-through)");
  const manifestBudget = new ByteBudget(options.manifestBudgetBytes ?? 0);
  const bodyLimits = { maxBytes: options.maxManifestBytes, budget: manifestBudget, timeoutMs: options.bodyTimeoutMs ?? 0 };
  const auth = options.auth;
  const audit = options.audit;
  // upload session id -> who opened it ("u:<name>", or "-" for anonymous); bounded, oldest forgotten first
  const owners = new Map<string, string>();
  const maxOwners = auth?.maxOwners ?? 65_536;
  const ownerOf = (p: Principal | undefined) => (p ? `u:${p.name}` : "-");

  /** Refuses: 401 with a challenge for anonymous callers and token holders (who may fetch a wider token), else 403. */
  function refuse(req: Request, principal: Principal | undefined, repo: string | undefined, action: Action, scope: string, client: string | undefined): never {
    try {
      auth!.events?.denied?.(principal, repo, action, { req, address: client });
    } catch {
      // an observer's fault is not the client's
    }
    if (!principal || principal.source === "token") {
      const challenge = auth!.challenge(req, repo === undefined ? undefined : `repository:${repo}:${scope}`);
      throw new HttpError("UNAUTHORIZED", `${action} needs credentials that grant it`, { headers: { "WWW-Authenticate": challenge } });
    }
    throw new RegistryError("DENIED", `${action} is not granted to "${principal.name}" here`);
  }

  /** Refuses unless `principal` may take `action` on `repo` (the anonymous pull path: one cached map lookup). */
  function need(req: Request, principal: Principal | undefined, client: string | undefined, repo: string, action: Action, scope: string): void {
    if (!auth!.access.may(principal, repo, action)) refuse(req, principal, repo, action, scope, client);
  }

  /**
   * Asks the policy before the registry is touched, so a refusal is the same whether or not
   * the repository exists. Adjusts `query`: a mount from a repository the caller may not
   * pull becomes a plain upload session (the answer a missing blob gets).
   */
  function authorize(req: Request, r: Route, query: URLSearchParams, principal: Principal | undefined, client: string | undefined): void {
    const access = auth!.access;
    const method = req.method;
    switch (r.op) {
      case "base":
        if (!access.base(principal)) refuse(req, principal, undefined, "pull", "pull", client);
        return;
      case "catalog":
      case "search": // answers are filtered per repository by the same policy (search/resolvers.ts)
      case "discover":
        if (!principal && !access.policy.anonymousPullsAny) refuse(req, principal, undefined, "pull", "pull", client);
        return;
      case "tags":
      case "referrers":
        return need(req, principal, client, r.name, "pull", "pull");
      case "manifest":
      case "blob":
        if (method === "GET" || method === "HEAD") return need(req, principal, client, r.name, "pull", "pull");
        if (method === "PUT" && r.op === "manifest") return need(req, principal, client, r.name, "push", "pull,push");
        if (method === "DELETE") return need(req, principal, client, r.name, "delete", "delete");
        return;
      case "uploads": {
        need(req, principal, client, r.name, "push", "pull,push");
        const from = query.get("from");
        // a mount answers 201 when the target already holds the blob: that says what a
        // push-only caller may not read, so it needs pull on the target too
        if (query.has("mount") && (from === null || !access.may(principal, from, "pull") || !access.may(principal, r.name, "pull"))) {
          query.delete("mount");
          query.delete("from");
        }
        return;
      }
      case "upload":
        need(req, principal, client, r.name, "push", "pull,push");
        // another identity's session is unknown, exactly as a session that never was
        if (owners.get(r.id) !== ownerOf(principal)) throw new RegistryError("BLOB_UPLOAD_UNKNOWN", `no upload "${r.id}" in this repository`);
        return;
    }
  }

  function changed(req: Request, principal: Principal | undefined, action: "push" | "delete", repo: string, reference: string, client: string | undefined): void {
    try {
      auth?.events?.changed?.(principal, action, repo, reference, { req, address: client });
    } catch {
      // an observer's fault is not the client's
    }
  }

  async function dispatch(req: Request, r: Route, query: URLSearchParams, client: string | undefined, principal: Principal | undefined): Promise<Response> {
    const method = req.method;
    const actor = (): Actor => ({ principal, address: client });
    switch (r.op) {
      case "base":
        if (method !== "GET" && method !== "HEAD") methodNotAllowed(method, "GET, HEAD");
        return json({});

      case "catalog": {
        if (method !== "GET") methodNotAllowed(method, "GET");
        const n = parseN(query.get("n"));
        const page = await registry.catalog(n, query.get("last") ?? undefined, auth?.access.visible(principal));
        const extra: Record<string, string> = {};
        if (page.next !== undefined) extra.Link = `</v2/_catalog?n=${n}&last=${encodeURIComponent(page.next)}>; rel="next"`;
        return json({ repositories: page.items }, extra);
      }

      case "search":
        if (!options.search) throw new RegistryError("UNSUPPORTED", "search is switched off here ([search] enabled = false)", { status: 404 });
        return options.search.handle(req, principal);

      case "discover":
        if (method !== "GET") methodNotAllowed(method, "GET");
        return json(discoverBody(options.search !== undefined));

      case "tags": {
        if (method !== "GET") methodNotAllowed(method, "GET");
        const n = parseN(query.get("n"));
        const page = await registry.tags(r.name, n, query.get("last") ?? undefined);
        const extra: Record<string, string> = {};
        if (page.next !== undefined) extra.Link = `</v2/${r.name}/tags/list?n=${n}&last=${encodeURIComponent(page.next)}>; rel="next"`;
        return json({ name: r.name, tags: page.items }, extra);
      }

      case "manifest": {
        if (method === "GET" || method === "HEAD") {
          const m = await registry.manifest(r.name, r.reference, req.headers.get("accept"));
          const h = headers({
            "Content-Type": m.mediaType,
            "Docker-Content-Digest": m.digest,
            ETag: `"${m.digest}"`,
            "Content-Length": String(m.bytes.byteLength),
          });
          if (method === "GET" && audit?.auditsPulls) audit.pulled(actor(), r.name, m.digest);
          if (req.headers.get("if-none-match") === `"${m.digest}"`) return new Response(null, { status: 304, headers: h });
          return new Response(method === "HEAD" ? null : m.bytes, { status: 200, headers: h });
        }
        if (method === "PUT") {
          const body = await readManifestBody(req, bodyLimits);
          let result: Awaited<ReturnType<V2Registry["putManifest"]>>;
          try {
            result = await registry.putManifest(r.name, r.reference, body.bytes, bareMediaType(req.headers.get("content-type")), query.getAll("tag"));
          } finally {
            body.release();
          }
          audit?.pushed(actor(), r.name, r.reference, result.digest, result.tags, result.moved);
          const h: Record<string, string> = { Location: `/v2/${r.name}/manifests/${result.digest}`, "Docker-Content-Digest": result.digest };
          if (result.subject) h["OCI-Subject"] = result.subject;
          const resp = empty(201, h);
          if (query.has("tag")) for (const tag of result.tags) resp.headers.append("OCI-Tag", tag);
          if (auth) changed(req, principal, "push", r.name, r.reference, client);
          return resp;
        }
        if (method === "DELETE") {
          await registry.deleteManifest(r.name, r.reference);
          audit?.deleted(actor(), r.reference.includes(":") ? "manifest" : "tag", r.name, r.reference);
          if (auth) changed(req, principal, "delete", r.name, r.reference, client);
          return empty(202, {});
        }
        return methodNotAllowed(method, "GET, HEAD, PUT, DELETE");
      }

      case "blob": {
        if (method === "GET" || method === "HEAD") return serveBlob(req, r.name, r.digest);
        if (method === "DELETE") {
          await registry.deleteBlob(r.name, r.digest);
          audit?.deleted(actor(), "blob", r.name, r.digest);
          if (auth) changed(req, principal, "delete", r.name, r.digest, client);
          return empty(202, {});
        }
        return methodNotAllowed(method, "GET, HEAD, DELETE");
      }

      case "uploads": {
        if (method !== "POST") methodNotAllowed(method, "POST");
        const start = await registry.startUpload(r.name, {
          digest: query.get("digest") ?? undefined,
          mount: query.get("mount") ?? undefined,
          from: query.get("from") ?? undefined,
          algorithm: query.get("digest-algorithm") ?? undefined,
          body: req.body,
          length: contentLength(req),
          ...(client !== undefined ? { client } : {}),
        });
        if (start.kind === "created") {
          return empty(201, { Location: `/v2/${r.name}/blobs/${start.digest}`, "Docker-Content-Digest": start.digest });
        }
        if (auth) {
          if (owners.size >= maxOwners) owners.delete(owners.keys().next().value!);
          owners.set(start.session.id, ownerOf(principal));
        }
        return empty(202, uploadHeaders(r.name, start.session));
      }

      case "upload": {
        if (method === "PATCH") {
          const session = await registry.appendUpload(r.name, r.id, req.body, {
            range: parseContentRange(req.headers.get("content-range")),
            length: contentLength(req),
          });
          return empty(202, uploadHeaders(r.name, session));
        }
        if (method === "PUT") {
          const digest = await registry.finishUpload(r.name, r.id, query.get("digest") ?? undefined, req.body, {
            range: parseContentRange(req.headers.get("content-range")),
            length: contentLength(req),
          });
          owners.delete(r.id);
          return empty(201, { Location: `/v2/${r.name}/blobs/${digest}`, "Docker-Content-Digest": digest });
        }
        if (method === "GET") return empty(204, uploadHeaders(r.name, registry.uploadStatus(r.name, r.id)));
        if (method === "DELETE") {
          await registry.cancelUpload(r.name, r.id);
          owners.delete(r.id);
          return empty(204, {});
        }
        return methodNotAllowed(method, "GET, PATCH, PUT, DELETE");
      }

      case "referrers": {
        if (method !== "GET") methodNotAllowed(method, "GET");
        const artifactType = query.get("artifactType") ?? undefined;
        const manifests = await registry.referrers(r.name, r.digest, artifactType);
        const h = headers({ "Content-Type": OCI_INDEX });
        if (artifactType !== undefined) h.set("OCI-Filters-Applied", "artifactType");
        return new Response(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }), { status: 200, headers: h });
      }
    }
  }

  async function serveBlob(req: Request, name: string, digestText: string): Promise<Response> {
    const blob = await registry.blob(name, digestText, req.method === "HEAD");
    if ("open" in blob) {
      const extra: Record<string, string> = { "Content-Type": "application/octet-stream", "Docker-Content-Digest": blob.digest, ETag: `"${blob.digest}"` };
      if (blob.size !== undefined) extra["Content-Length"] = String(blob.size);
      if (req.method !== "HEAD" && blob.size !== undefined) options.onServe?.(blob.size);
      return new Response(req.method === "HEAD" ? null : blob.open(), { status: 200, headers: headers(extra) });
    }
    if (req.method !== "HEAD") options.onServe?.(blob.size);
    const base: Record<string, string> = {
      "Content-Type": "application/octet-stream",
      "Docker-Content-Digest": blob.digest,
      ETag: `"${blob.digest}"`,
      "Accept-Ranges": "bytes",
    };
    const range = parseRange(req.headers.get("range"), blob.size);
    if (range === "unsatisfiable") {
      return new Response(null, { status: 416, headers: headers({ ...base, "Content-Range": `bytes */${blob.size}`, "Content-Length": "0" }) });
    }
    if (range) {
      const length = range.end - range.start + 1;
      const h = headers({ ...base, "Content-Range": `bytes ${range.start}-${range.end}/${blob.size}`, "Content-Length": String(length) });
      return req.method === "HEAD" ? new Response(null, { status: 206, headers: h }) : sendBody(blob.body(range), 206, h);
    }
    const h = headers({ ...base, "Content-Length": String(blob.size) });
    return req.method === "HEAD" ? new Response(null, { status: 200, headers: h }) : sendBody(blob.body(), 200, h);
  }

  /** A response carrying a stored blob: its local file (sendfile), its stream, or a redirect to it. */
  function sendBody(body: BlobBody, status: number, h: Headers): Response {
    if (body.kind === "file") return new Response(body.file, { status, headers: h });
    if (body.kind === "stream") return new Response(body.open(), { status, headers: h });
    h.delete("Content-Length");
    h.delete("Content-Range");
    h.set("Location", body.url);
    return new Response(null, { status: 307, headers: h });
  }

  return async function handleV2(req: Request, peer?: RequestPeer, principal?: Principal): Promise<Response> {
    const { path, query } = splitUrl(req.url);
    try {
      const r = route(path);
      if (!r) throw new RegistryError("UNSUPPORTED", `no endpoint at ${path.slice(0, 200)}`, { status: 404 });
      const params = new URLSearchParams(query);
      const client = peerAddress(peer, req);
      if (auth) authorize(req, r, params, principal, client);
      const res = await dispatch(req, r, params, client, principal);
      return req.method === "HEAD" && res.body ? new Response(null, { status: res.status, headers: res.headers }) : res;
    } catch (err) {
      if (err instanceof RegistryError) {
        // an upstream's fault (pull-through) is logged where it happened, in sync/; here only counted, throttled
        if (err.status >= 500 && err.detail?.startsWith("upstream ")) upstreamFault({ method: req.method, path, status: err.status, detail: err.detail });
        else if (err.status === 503 || err.status === 507) shortOf({ method: req.method, path, status: err.status, detail: err.detail });
        else if (err.status >= 500) log.error("request failed", { method: req.method, path, code: err.code, detail: err.detail });
        return errorResponse(err, req.method);
      }
      const refused = resourceError(err);
      if (refused) {
        shortOf({ method: req.method, path, status: refused.status, error: (err as Error).message });
        return errorResponse(refused, req.method);
      }
      log.error("internal error", { method: req.method, path, error: err });
      return errorResponse(new RegistryError("UNKNOWN"), req.method);
    }
  };
}
