/**
 * Strings a registry hands back (annotations, labels, media types, error messages) reach a
 * terminal through the client's human output; escape sequences in them are shown, not
 * obeyed (a pusher could otherwise retitle the window, rewrite what the operator sees, or
 * fake extra lines), also what `berth cve` shows of an image's own files (OS name, versions).
 * JSON output stays exact (JSON.stringify escapes C0 itself).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDaemon, type Daemon } from "../helpers/daemon";
import { berth, shown } from "../helpers/cli";
import { pushBlobTo } from "../helpers/clients";
import { printable, table } from "../../daemon/client/output";

let daemon: Daemon;
let home: string;
const other = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch: (req) => {
    if (new URL(req.url).pathname === "/api/v1/cve/image") {
      // what an image's own files decide: its OS name, a package's installed version
      return Response.json({
        repo: "evil/app", digest: "sha256:00", os: "\x1b]0;owned\x07Debian", packages: 1, scannedAt: "now", dbBuilt: "then",
        count: 1, maxSeverity: "High", counts: { High: 1 }, error: "\x1b[2Jnote",
        findings: [{ id: "CVE-1", package: "openssl", version: "1.0\x1b[31m\nberth: forged", fixState: "fixed", fixedIn: "1.1", severity: "high" }],
      });
    }
    return Response.json({ errors: [{ code: "DENIED", message: "no", detail: "\x1b]0;owned\x07\x1b[2Jfake\nberth: all good" }] }, { status: 403 });
  },
});
beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "berth-esc-"));
  daemon = await startDaemon();
});
afterAll(async () => {
  other.stop(true);
  await daemon?.[Symbol.asyncDispose]();
  rmSync(home, { recursive: true, force: true });
});

const HOSTILE = "\x1b]0;owned\x07\x1b[31mred\x9b2J\rover\nberth: forged line";

test("inspect shows escape sequences of annotations and labels as text", async () => {
  const config = JSON.stringify({ architecture: "amd64", os: "linux", config: { Labels: { evil: HOSTILE } }, rootfs: { type: "layers", diff_ids: [] } });
  const c = await pushBlobTo(daemon.url, "esc/app", config);
  const doc = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: c.digest, size: c.size },
    layers: [],
    annotations: { note: HOSTILE },
  };
  const put = await fetch(`${daemon.url}/v2/esc/app/manifests/v1`, { method: "PUT", body: JSON.stringify(doc), headers: { "Content-Type": doc.mediaType } });
  expect(put.status).toBe(201);
  const r = await berth(home, ["inspect", "esc/app:v1", "-r", daemon.url]);
  expect(r.code, shown(r)).toBe(0);
  expect(r.stdout).toContain("red");
  expect(r.stdout).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
  // no line of the output was forged by a newline in a value
  expect(r.stdout.split("\n").some((l) => l.startsWith("berth: forged"))).toBe(false);
  const json = await berth(home, ["inspect", "esc/app:v1", "-r", daemon.url, "--json"]);
  expect(JSON.parse(json.stdout).annotations.note).toBe(HOSTILE);
});

test("a server's error message is printed without its escape sequences", async () => {
  const r = await berth(home, ["repos", "-r", `http://127.0.0.1:${other.port}`]);
  expect(r.code, shown(r)).toBe(4);
  expect(r.stderr).toContain("fake");
  expect(r.stderr).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
  expect(r.stderr.split("\n").some((l) => l.startsWith("berth: all good"))).toBe(false);
});

test("printable and table escape control characters, keep the rest", () => {
  expect(printable("a\x1b[2Jb\nc\u009bd é")).toBe("a\\x1b[2Jb\\nc\\x9bd é");
  expect(table(["A", "B"], [["\x07x", "y\rz"]])).toBe("A      B\n\\x07x  y\\rz");
});

test("berth cve prints what an image's files decide (OS name, versions) without their escape sequences", async () => {
  const r = await berth(home, ["cve", "evil/app:v1", "--url", `http://127.0.0.1:${other.port}`]);
  expect(r.code, shown(r)).toBe(0);
  expect(r.stdout).toContain("Debian");
  expect(r.stdout).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
  expect(r.stdout.split("\n").some((l) => l.startsWith("berth: forged"))).toBe(false);
});
