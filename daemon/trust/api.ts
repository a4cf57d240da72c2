/**
 * The trust store's HTTP routes, for admins only (the front checks that before calling):
 *
 *   GET    /api/v1/trust/keys             -> 200 {keys: [{name, kind, id, ...}], problems: [{name, error}]}
 *   POST   /api/v1/trust/keys             {name, pem} JSON, or a PEM body with ?name=NAME
 *                                         -> 201 {installed: [...]}; 409 when NAME exists (?replace=true replaces)
 *   DELETE /api/v1/trust/keys/<name>      -> 204; 404 when there is no such entry
 *   GET    /api/v1/trust/status?repo=R&digest=D
 *                                         -> 200 {state, signatures: [{tool, isTrusted, author, reason?, signature}]}
 *
 * and zot's upload endpoints, so zot users' scripts carry over (answers in the OCI error shape):
 *
 *   POST /v2/_zot/ext/cosign                              PEM public key body -> 200
 *   POST /v2/_zot/ext/notation?truststoreType=ca[&truststoreName=N]   PEM certificate body -> 200
 *
 * Bodies are capped at {@link MAX_PEM_BYTES}; errors use the admin API's `{ error }` shape.
 */
import { errorBody } from "../oci/errors";
import { parseDigest } from "../oci/digest";
import { nameProblem } from "../oci/names";
import { readTextAtMost } from "../platform/bodytext";
import type { TrustIndex } from "./status";
import { MAX_PEM_BYTES, type TrustStore, TrustStoreError } from "./store";

/** Where the routes live. */
export const TRUST_PATH = "/api/v1/trust";
/** zot's upload endpoints. */
export const ZOT_COSIGN_PATH = "/v2/_zot/ext/cosign";
export const ZOT_NOTATION_PATH = "/v2/_zot/ext/notation";

const JSON_HEADERS = { "Content-Type": "application/json", "Cache-Control": "no-store" };
const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
const error = (status: number, message: string) => json(status, { error: message });
const ociError = (status: number, code: "UNSUPPORTED" | "DENIED" | "NAME_UNKNOWN", message: string) =>
  new Response(errorBody(code, message), { status, headers: { ...JSON_HEADERS, "Docker-Distribution-API-Version": "registry/2.0" } });

/** The routes' handler: the request and its path (query excluded). */
export type TrustApi = (req: Request, path: string) => Promise<Response>;

/** Reads a body of at most {@link MAX_PEM_BYTES} bytes (counted as it streams); undefined when larger or unreadable. */
function boundedText(req: Request): Promise<string | undefined> {
  return readTextAtMost(req, MAX_PEM_BYTES);
}

/** Builds the handler over the store and the status index. */
export function createTrustApi(store: TrustStore, index: TrustIndex): TrustApi {
  async function add(req: Request, query: URLSearchParams): Promise<Response> {
    const text = await boundedText(req);
    if (text === undefined) return error(413, `the request body must be at most ${MAX_PEM_BYTES} bytes`);
    let name = query.get("name") ?? "";
    let pem = text;
    if ((req.headers.get("content-type") ?? "").startsWith("application/json")) {
      try {
        const body = JSON.parse(text);
        name = String(body?.name ?? "");
        pem = String(body?.pem ?? "");
      } catch {
        return error(400, "the request body is not JSON with name and pem");
      }
    }
    if (!name) return error(400, "a name is required (JSON {name, pem}, or ?name= with a PEM body)");
    try {
      return json(201, { installed: store.add(name, pem, query.get("replace") === "true") });
    } catch (err) {
      if (err instanceof TrustStoreError) return error(err.status, err.message);
      throw err;
    }
  }

  async function zotUpload(req: Request, path: string, query: URLSearchParams): Promise<Response> {
    if (req.method !== "POST") return ociError(405, "UNSUPPORTED", `method ${req.method} is not supported on ${path}`);
    const text = await boundedText(req);
    if (text === undefined) return ociError(413, "UNSUPPORTED", `the request body must be at most ${MAX_PEM_BYTES} bytes`);
    let name: string;
    if (path === ZOT_COSIGN_PATH) {
      if (!text.includes("-----BEGIN PUBLIC KEY-----")) return ociError(400, "UNSUPPORTED", "the body must be a PEM public key");
      name = "cosign";
    } else {
      const type = query.get("truststoreType") ?? "ca";
      if (type !== "ca") return ociError(400, "UNSUPPORTED", `truststoreType "${type.slice(0, 40)}" is not supported; only "ca"`);
      if (!text.includes("-----BEGIN CERTIFICATE-----")) return ociError(400, "UNSUPPORTED", "the body must be a PEM certificate");
      name = `notation-${(query.get("truststoreName") ?? "default").replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 40)}`;
    }
    try {
      // named after the content, so uploading the same key twice is one entry
      const { createHash } = await import("node:crypto");
      const id = createHash("sha256").update(text.trim()).digest("hex").slice(0, 12);
      store.add(`${name}-${id}.pem`, text, true);
      return new Response(null, { status: 200 });
    } catch (err) {
      if (err instanceof TrustStoreError) return ociError(400, "UNSUPPORTED", err.message);
      throw err;
    }
  }

  return async (req, path) => {
    const query = new URL(req.url, "http://localhost").searchParams;
    if (path === ZOT_COSIGN_PATH || path === ZOT_NOTATION_PATH) return zotUpload(req, path, query);
    const rest = path.slice(TRUST_PATH.length);
    if (rest === "/keys" || rest === "/keys/") {
      if (req.method === "GET" || req.method === "HEAD") return json(200, store.list());
      if (req.method === "POST") return add(req, query);
      return error(405, `method ${req.method} is not supported on ${TRUST_PATH}/keys`);
    }
    if (rest.startsWith("/keys/")) {
      let name: string;
      try {
        name = decodeURIComponent(rest.slice(6));
      } catch {
        return error(400, `"${rest.slice(6, 86)}" is not a percent-encoded name`);
      }
      if (req.method !== "DELETE") return error(405, `method ${req.method} is not supported on ${TRUST_PATH}/keys/<name>`);
      return store.remove(name) ? new Response(null, { status: 204 }) : error(404, `no trust store entry "${name.slice(0, 80)}"`);
    }
    if (rest === "/status") {
      const repo = query.get("repo") ?? "";
      const digest = query.get("digest") ?? "";
      const problem = nameProblem(repo);
      if (problem) return error(400, `repo: ${problem}`);
      if (!parseDigest(digest)) return error(400, `digest "${digest.slice(0, 80)}" is not a digest (sha256:<64 hex>)`);
      return json(200, await index.status(repo, digest));
    }
    return error(404, `no route ${path.slice(0, 100)}`);
  };
}
