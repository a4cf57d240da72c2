/**
 * Vulnerability scanning in a real daemon with [auth] on: images pushed by skopeo, a
 * database in Grype's v6 schema imported over the admin API, scans run by the scheduler
 * (after the import for what was there, on push for what comes after), and the results cut
 * to what each caller may pull: nothing of a repository a reader may not pull leaks
 * (its image answers as an unknown one; listings, CVE lookups and summaries leave it out).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { Skopeo, makeTemp, waitFor } from "../helpers/clients";
import { basic, writeHtpasswd } from "../helpers/auth";
import { writeGrypeV6 } from "./grypedb";
import { APK_INSTALLED, buildImage } from "./images";
import { ADVISORIES } from "./advisories";
import { berth, shown } from "../helpers/cli";

setDefaultTimeout(120_000);

let work: string;
let daemon: Daemon;
let skopeo: Skopeo;
const ROOT = basic("root", "rootpw");
const ALICE = basic("alice", "alicepw");

async function push(layout: string, ref: string): Promise<void> {
  await skopeo.ok(["copy", "-q", "--dest-tls-verify=false", "--dest-creds", "root:rootpw", `oci:${layout}:v1`, `docker://${daemon.host}/${ref}`]);
}

/** An error answer in the OCI format (it names at least one error). */
interface OciErrors { errors: [{ code: string; message: string; detail: string }, ...{ code: string; message: string; detail: string }[]] }
/** GET/PUT /api/v1/cve/db. */
interface DbStatus { present?: boolean; imported?: boolean; schema?: number; built?: string }
/** GET /api/v1/cve/image: one image's scan. */
interface ImageScan { maxSeverity: string; os: string; dbBuilt: string; counts: { critical: number }; findings: { id: string; package: string }[] }
/** GET /api/v1/cve/images and /vulnerabilities/<id>: the images listed. */
interface ImageList { images: { repo: string }[] }
/** GET /api/v1/cve/summary. */
interface Summary { images: number }
/** The search API's answers read below (each query names its one field). */
interface SearchAnswer {
  data: {
    ImageList?: { Results: { Tag: string; Vulnerabilities: { MaxSeverity: string; Count: number } }[] };
    CVEListForImage?: { CVEList: { Id: string; Severity: string }[] };
    ImageListForCVE?: { Results: { RepoName: string; Tag: string }[] };
  };
}

/** Calls the daemon; every answer these tests read carries a JSON body of shape `T` (an empty one fails the test). */
async function api<T = OciErrors>(path: string, headers: Record<string, string> = {}, init: RequestInit = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(`${daemon.url}${path}`, { ...init, headers: { ...headers, ...(init.headers as Record<string, string>) } });
  const text = await res.text();
  if (!text) throw new Error(`${path} answered ${res.status} with an empty body`);
  return { status: res.status, body: JSON.parse(text) as T };
}

beforeAll(async () => {
  work = makeTemp("berth-cve-daemon-");
  const htpasswd = await writeHtpasswd(work, { root: "rootpw", alice: "alicepw" });
  skopeo = new Skopeo();
  const deb = join(work, "deb");
  await buildImage(join(work, "deb-src"), deb, [{ files: { "etc/os-release": "ID=debian\nVERSION_ID=\"12\"\n", "var/lib/dpkg/status": readFileSync("/var/lib/dpkg/status") } }]);
  daemon = await startDaemon({
    extra: `[auth]\nhtpasswd = "${htpasswd}"\nadmins = ["root"]\n[[access]]\nrepos = ["public/**"]\nusers = { alice = ["pull"] }\n[cve]\nenabled = true\n[scheduler]\njitter_ms = 0\n`,
  });
  await push(deb, "public/app:v1");
  await push(deb, "secret/app:v1");
});

afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("vulnerability scanning in the daemon", () => {
  test("before any import: no database, nothing scanned", async () => {
    expect((await api<DbStatus>("/api/v1/cve/db", ROOT)).body).toEqual({ present: false });
    const r = await api("/api/v1/cve/image?repo=public/app&reference=v1", ROOT);
    expect(r.status).toBe(404);
    expect(r.body.errors[0].detail).toContain("no vulnerability database is imported");
  });

  test("a reader may not import a database; a bad file is refused in the OCI error format", async () => {
    const denied = await api("/api/v1/cve/db", ALICE, { method: "PUT", body: "x" });
    expect(denied.status).toBe(403);
    expect(denied.body.errors[0].code).toBe("DENIED");
    const bad = await api("/api/v1/cve/db", ROOT, { method: "PUT", body: new Uint8Array(3000).fill(9) });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0]).toMatchObject({ code: "MANIFEST_INVALID" });
    expect(bad.body.errors[0].detail).toContain("neither a SQLite database nor a tar");
  });

  test("an admin imports a database; every stored image is scanned", async () => {
    const db = join(work, "grype.db");
    writeGrypeV6(db, ADVISORIES);
    const r = await api<DbStatus>("/api/v1/cve/db", ROOT, { method: "PUT", body: Bun.file(db) });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ imported: true, schema: 6, built: "2026-11-30T04:12:01.000Z" });
    await waitFor("both images scanned", async () => (await api<ImageList>("/api/v1/cve/images", ROOT)).body.images.length === 2, 30_000);
    const img = await api<ImageScan>("/api/v1/cve/image?repo=secret/app&reference=v1", ROOT);
    expect(img.status).toBe(200);
    expect(img.body).toMatchObject({ maxSeverity: "critical", os: "debian 12" });
    expect(img.body.findings.map((f) => f.id)).toContain("CVE-2026-1001");
    expect(img.body.counts.critical).toBeGreaterThan(0);
  });

  test("an image pushed after the import is scanned on push", async () => {
    const apk = join(work, "apk");
    await buildImage(join(work, "apk-src"), apk, [{ files: { "etc/os-release": "ID=alpine\nVERSION_ID=3.19.1\n", "lib/apk/db/installed": APK_INSTALLED } }]);
    await push(apk, "public/alpine:v1");
    await waitFor("the pushed image scanned", async () => (await api("/api/v1/cve/image?repo=public/alpine&reference=v1", ROOT)).status === 200, 30_000);
    const img = await api<ImageScan>("/api/v1/cve/image?repo=public/alpine&reference=v1", ALICE);
    expect(img.body.findings.map((f) => `${f.id} ${f.package}`)).toEqual(["CVE-2026-2001 libssl3", "CVE-2026-2002 busybox"]);
  });

  test("nothing of a repository the reader may not pull leaks", async () => {
    const secret = await api("/api/v1/cve/image?repo=secret/app&reference=v1", ALICE);
    const absent = await api("/api/v1/cve/image?repo=nothere/app&reference=v1", ALICE);
    expect(secret.status).toBe(404);
    expect(secret.body.errors[0].code).toBe(absent.body.errors[0].code);
    expect(JSON.stringify(secret.body)).not.toContain("critical");
    const images = (await api<ImageList>("/api/v1/cve/images", ALICE)).body.images.map((i) => i.repo);
    expect(images.sort()).toEqual(["public/alpine", "public/app"]);
    expect((await api("/api/v1/cve/images?repo=secret/app", ALICE)).status).toBe(404);
    const byCve = (await api<ImageList>("/api/v1/cve/vulnerabilities/CVE-2026-1001", ALICE)).body.images.map((i) => i.repo);
    expect(byCve).toEqual(["public/app"]);
    const rootByCve = (await api<ImageList>("/api/v1/cve/vulnerabilities/CVE-2026-1001", ROOT)).body.images.map((i) => i.repo);
    expect(rootByCve.sort()).toEqual(["public/app", "secret/app"]);
    expect((await api<Summary>("/api/v1/cve/summary", ALICE)).body.images).toBe(2);
    // anonymous callers may pull nothing here, so they see nothing
    expect((await api<ImageList>("/api/v1/cve/images")).body.images).toEqual([]);
  });

  test("zot's search API shows the results: Vulnerabilities, CVEListForImage, ImageListForCVE, cut to what the caller may pull", async () => {
    const search = async (query: string, who: Record<string, string>) =>
      (await api<SearchAnswer>("/v2/_zot/ext/search", who, { method: "POST", body: JSON.stringify({ query }), headers: { "Content-Type": "application/json" } })).body;
    const list = await search(`{ ImageList(repo: "public/app") { Results { Tag Vulnerabilities { MaxSeverity Count } } } }`, ALICE);
    expect(list.data.ImageList?.Results[0]?.Vulnerabilities.MaxSeverity).toBe("CRITICAL");
    expect(list.data.ImageList?.Results[0]?.Vulnerabilities.Count).toBeGreaterThan(0);
    const cves = await search(`{ CVEListForImage(image: "public/app:v1") { Tag CVEList { Id Severity PackageList { Name InstalledVersion FixedVersion } } } }`, ALICE);
    const ids = cves.data.CVEListForImage?.CVEList.map((c) => c.Id);
    expect(ids).toContain("CVE-2026-1001");
    expect(cves.data.CVEListForImage?.CVEList.find((c) => c.Id === "CVE-2026-1001")?.Severity).toBe("CRITICAL");
    const forCve = await search(`{ ImageListForCVE(id: "CVE-2026-1001") { Results { RepoName Tag } } }`, ALICE);
    expect(forCve.data.ImageListForCVE?.Results.map((r) => r.RepoName)).toEqual(["public/app"]);
    const forCveRoot = await search(`{ ImageListForCVE(id: "CVE-2026-1001") { Results { RepoName Tag } } }`, ROOT);
    expect(forCveRoot.data.ImageListForCVE?.Results.map((r) => r.RepoName).sort()).toEqual(["public/app", "secret/app"]);
    // a forbidden image answers as an unknown one
    const secret = await search(`{ CVEListForImage(image: "secret/app:v1") { CVEList { Id } } }`, ALICE);
    const absent = await search(`{ CVEListForImage(image: "nothere/app:v1") { CVEList { Id } } }`, ALICE);
    expect(JSON.stringify(secret).replaceAll("secret/app", "X")).toBe(JSON.stringify(absent).replaceAll("nothere/app", "X"));
  });

  test("metrics: findings per repository and severity", async () => {
    const text = await (await fetch(`${daemon.url}/metrics`, { headers: ROOT })).text();
    expect(text).toMatch(/berth_cve_findings\{repository="secret\/app",severity="critical"\} [1-9]/);
    expect(text).toMatch(/berth_cve_db_built_timestamp_seconds 1796011921/);
  });

  test("the CLI: db import, db status, an image's findings; a forbidden repository is unknown", async () => {
    const cli = async (args: string[], password: string) => {
      const proc = Bun.spawn([process.execPath, join(import.meta.dir, "../../daemon/main.ts"), "cve", ...args, "--url", daemon.url, "--password-stdin"], { stdin: new Blob([password]), stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      return { out, err, code };
    };
    const db = join(work, "grype-cli.db");
    writeGrypeV6(db, ADVISORIES, "2026-12-01T00:00:00Z");
    const imported = await cli(["db", "import", db, "--user", "root"], "rootpw");
    expect(imported.code).toBe(0);
    expect(imported.out).toContain("imported: Grype schema 6.0.2, built 2026-12-01T00:00:00.000Z");
    const status = await cli(["db", "status", "--user", "alice"], "alicepw");
    expect(status.out).toContain("built 2026-12-01T00:00:00.000Z");
    await waitFor("a rescan with the new database", async () => (await api<ImageScan>("/api/v1/cve/image?repo=public/app&reference=v1", ROOT)).body.dbBuilt === "2026-12-01T00:00:00.000Z", 30_000);
    const image = await cli(["public/app:v1", "--user", "alice"], "alicepw");
    expect(image.code).toBe(0);
    expect(image.out).toMatch(/CRITICAL\s+CVE-2026-1001\s+dpkg\s/);
    const secret = await cli(["secret/app:v1", "--user", "alice"], "alicepw");
    expect(secret.code).toBe(1);
    expect(secret.err).toContain('repository "secret/app" is not known');
  });

  test("berth cve on the stored login: the default alias, --registry, $BERTH_REGISTRY; the client's exit codes", async () => {
    const h = mkdtempSync(join(work, "home-"));
    expect((await berth(h, ["login", daemon.url, "--alias", "adm", "--user", "root", "--password-stdin"], "rootpw")).code).toBe(0);
    expect((await berth(h, ["login", daemon.url, "--alias", "reader", "--user", "alice", "--password-stdin"], "alicepw")).code).toBe(0);
    const db = join(work, "grype-stored.db");
    writeGrypeV6(db, ADVISORIES, "2026-12-02T00:00:00Z");
    // alice may not import: 403 is exit 4 here (with --url it stays 1)
    const denied = await berth(h, ["cve", "db", "import", db, "--registry", "reader"]);
    expect(denied.code, shown(denied)).toBe(4);
    // the default alias (adm, the first login)
    const imported = await berth(h, ["cve", "db", "import", db]);
    expect(imported.code, shown(imported)).toBe(0);
    expect(imported.stdout).toContain("imported: Grype schema 6.0.2, built 2026-12-02T00:00:00.000Z");
    const status = await berth(h, ["cve", "db", "status", "--json"], "", { BERTH_REGISTRY: "reader" });
    expect(status.code, shown(status)).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ present: true, built: "2026-12-02T00:00:00.000Z" });
    await waitFor("a rescan with the new database", async () => (await api<ImageScan>("/api/v1/cve/image?repo=public/app&reference=v1", ROOT)).body.dbBuilt === "2026-12-02T00:00:00.000Z", 30_000);
    const image = await berth(h, ["cve", "public/app:v1", "-r", "reader"]);
    expect(image.code, shown(image)).toBe(0);
    expect(image.stdout).toMatch(/CRITICAL\s+CVE-2026-1001\s+dpkg\s/);
    // a repository alice may not pull answers as an unknown one: exit 3 (with --url it stays 1)
    const secret = await berth(h, ["cve", "secret/app:v1"], "", { BERTH_REGISTRY: "reader" });
    expect(secret.code, shown(secret)).toBe(3);
    expect(secret.stderr).toContain('repository "secret/app" is not known');
    const nothing = await berth(mkdtempSync(join(work, "home-")), ["cve", "db", "status"]);
    expect(nothing.code, shown(nothing)).toBe(2);
    expect(nothing.stderr).toContain("no registry given");
  });
});
