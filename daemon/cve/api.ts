/**
 * The vulnerability API under /api/v1/cve, for admins and readers alike: every answer is
 * cut to the repositories the caller may pull (a repository it may not pull answers exactly
 * as one that does not exist), and only admins may import a database or ask for scans.
 *
 *   GET  /api/v1/cve/db                         the database in service (schema, build date)
 *   PUT  /api/v1/cve/db                         import a database (body: .db, tar.gz, tar.zst)
 *   GET  /api/v1/cve/images?repo=R              scanned manifests (of R) with severity counts
 *   GET  /api/v1/cve/image?repo=R&reference=X   one image's findings (X: tag or digest)
 *   GET  /api/v1/cve/vulnerabilities/<ID>       images carrying CVE <ID>
 *   GET  /api/v1/cve/summary                    findings per severity over visible images
 *   POST /api/v1/cve/scan?repo=R&reference=X    queue a scan now (admins)
 *
 * Errors use the OCI error body (`{"errors":[{code,message,detail}]}`).
 */
import { type ErrorCode, ERROR_TABLE, errorBody } from "../oci/errors";
import type { DbInfo } from "./grype";
import type { CveResults } from "./results";
import type { CveScanner } from "./scanner";
import { ImportError, type VulnDbStore } from "./store";

/**
 * What the API uses of the scanning service (service.ts `CveService` is one; the service
 * calls this module, so it names the parts it needs instead of importing the service back).
 */
export interface CveApiService {
  readonly store: Pick<VulnDbStore, "status" | "db">;
  readonly scanner: Pick<CveScanner, "rescanAll" | "queue" | "waiting">;
  readonly results: Pick<CveResults, "scanned" | "summary" | "findings" | "imagesWith" | "totals">;
  importDb(source: ReadableStream<Uint8Array>): Promise<DbInfo>;
  /** The digest `reference` names in `repo`. */
  resolve(repo: string, reference: string): Promise<string | undefined>;
}

/** Who is asking. */
export interface CveCaller {
  /** May import and queue scans. */
  admin: boolean;
  /** Repositories the caller may pull. */
  visible: (repo: string) => boolean;
}

const JSON_HEADERS = { "Content-Type": "application/json" };

function ok(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

function fail(code: ErrorCode, detail: string, status = ERROR_TABLE[code].status): Response {
  return new Response(errorBody(code, detail), { status, headers: JSON_HEADERS });
}

/** Handles one request under /api/v1/cve. */
export async function handleCveApi(service: CveApiService, req: Request, caller: CveCaller): Promise<Response> {
  const url = new URL(req.url, "http://localhost");
  const path = url.pathname.replace(/\/+$/, "");
  const q = url.searchParams;
  const unknownRepo = (repo: string) => fail("NAME_UNKNOWN", `repository "${repo}" is not known`);
  if (path === "/api/v1/cve/db") {
    if (req.method === "GET") return ok(service.store.status());
    if (req.method !== "PUT" && req.method !== "POST") return fail("UNSUPPORTED", `${req.method} is not supported on ${path}; use GET or PUT`);
    if (!caller.admin) return fail("DENIED", "importing a vulnerability database is for admins");
    if (!req.body) return fail("MANIFEST_INVALID", "the request has no body; send the database file", 400);
    try {
      const info = await service.importDb(req.body as ReadableStream<Uint8Array>);
      return ok({ imported: true, ...info, status: service.store.status() });
    } catch (err) {
      if (err instanceof ImportError) return fail("MANIFEST_INVALID", `the vulnerability database was refused (the one in service is kept): ${err.message}`, 400);
      throw err;
    }
  }
  if (req.method === "POST" && path === "/api/v1/cve/scan") {
    if (!caller.admin) return fail("DENIED", "queueing scans is for admins");
    const repo = q.get("repo");
    if (!repo) {
      service.scanner.rescanAll();
      return ok({ queued: "all" }, 202);
    }
    const digest = await service.resolve(repo, q.get("reference") ?? "latest");
    if (!digest) return fail("MANIFEST_UNKNOWN", `"${repo}:${q.get("reference") ?? "latest"}" is not stored here`);
    service.scanner.queue(repo, digest);
    return ok({ queued: `${repo}@${digest}` }, 202);
  }
  if (req.method !== "GET" && req.method !== "HEAD") return fail("UNSUPPORTED", `${req.method} is not supported on ${path}`);
  if (path === "/api/v1/cve/images") {
    const repo = q.get("repo") ?? undefined;
    if (repo !== undefined && !caller.visible(repo)) return unknownRepo(repo);
    return ok({ images: service.results.scanned(repo).filter((s) => caller.visible(s.repo)) });
  }
  if (path === "/api/v1/cve/image") {
    const repo = q.get("repo");
    if (!repo) return fail("NAME_INVALID", "give the repository as ?repo=NAME", 400);
    if (!caller.visible(repo)) return unknownRepo(repo);
    const reference = q.get("reference") ?? "latest";
    const digest = await service.resolve(repo, reference);
    if (!digest) return fail("MANIFEST_UNKNOWN", `"${repo}:${reference}" is not stored here`);
    const summary = service.results.summary(repo, digest);
    if (!summary) return fail("MANIFEST_UNKNOWN", `${repo}@${digest} has not been scanned${service.store.db ? " yet" : ": no vulnerability database is imported"}`);
    return ok({ repo, digest, ...summary, findings: service.results.findings(repo, digest) });
  }
  if (path.startsWith("/api/v1/cve/vulnerabilities/")) {
    const id = decodeURIComponent(path.slice("/api/v1/cve/vulnerabilities/".length));
    return ok({ id, images: service.results.imagesWith(id).filter((i) => caller.visible(i.repo)) });
  }
  if (path === "/api/v1/cve/summary") {
    return ok({ db: service.store.status(), waiting: service.scanner.waiting(), ...service.results.totals(caller.visible) });
  }
  return fail("NAME_UNKNOWN", `no vulnerability API at "${path}"`, 404);
}
