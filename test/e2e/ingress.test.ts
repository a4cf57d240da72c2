/**
 * Hostile and unusual requests against the real daemon over raw sockets (issue 9, items 4
 * and 9): routing on the request target as sent (dot segments, no Host header), manifest
 * bodies that arrive too slowly (408), more manifest bytes in flight than the budget (429),
 * and hostile nesting refused at once. After each, the daemon serves a normal push.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect } from "node:net";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { sha256 } from "../helpers/clients";

let d: Daemon;
beforeAll(async () => {
  d = await startDaemon({ http: 'body_timeout = 1\nmanifest_body_budget = "1 MiB"', storage: 'max_manifest_bytes = "1 MiB"' });
});
afterAll(async () => {
  await d[Symbol.asyncDispose]();
});

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/**
 * Sends `raw` on a fresh connection (keeping it open) and resolves with the first complete
 * response (status line, headers, and a body of Content-Length bytes). A bound of 15 s
 * turns a daemon that never answers into a failure instead of a hang.
 */
function exchange(raw: string): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(d.port, "127.0.0.1", () => sock.write(raw));
    let text = "";
    const bound = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer to ${raw.slice(0, 60)}; got ${text.slice(0, 200)}`));
    }, 15_000);
    const done = () => {
      const split = text.indexOf("\r\n\r\n");
      if (split < 0) return false;
      const head = text.slice(0, split);
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
      const body = text.slice(split + 4);
      if (body.length < length) return false;
      clearTimeout(bound);
      sock.destroy();
      resolve({ status: Number(head.split(" ")[1]), head, body: body.slice(0, length) });
      return true;
    };
    sock.on("data", (b) => {
      text += b.toString("latin1");
      done();
    });
    sock.on("close", () => {
      if (!done()) {
        clearTimeout(bound);
        reject(new Error(`connection closed; got ${JSON.stringify(text.slice(0, 200))}`));
      }
    });
    sock.on("error", () => {});
  });
}

/** Pushes a small image to `repo:tag` with fetch; returns the manifest PUT's status. */
async function push(repo: string, tag: string): Promise<number> {
  const blob = async (data: string) => {
    const res = await fetch(`${d.url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { method: "POST", body: data });
    if (res.status !== 201) throw new Error(`blob push: ${res.status}`);
  };
  const config = JSON.stringify({ os: "linux", architecture: "amd64", repo });
  await blob(config);
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length }, layers: [] });
  return (await fetch(`${d.url}/v2/${repo}/manifests/${tag}`, { method: "PUT", headers: { "Content-Type": OCI_MANIFEST }, body: manifest })).status;
}

const codeOf = (body: string) => (JSON.parse(body) as { errors: { code: string }[] }).errors[0]!.code;

test("routing is on the target as sent: dot segments and backslashes are refused, never resolved", async () => {
  expect(await push("ok/repo", "v1")).toBe(201);
  expect((await exchange(`GET /v2/ok/repo/tags/list HTTP/1.1\r\nHost: ${d.host}\r\n\r\n`)).status).toBe(200);
  for (const path of [
    "/v2/ok/%2e%2e/ok/repo/tags/list",
    "/v2/ok/%2E./ok/repo/tags/list",
    "/v2/ok/../ok/repo/tags/list",
    "/v2/ok/./repo/tags/list",
    "/v2/ok/%2e/repo/tags/list",
    "/v2/ok\\repo/tags/list",
    "/v2/x//../ok/repo/tags/list",
  ]) {
    const res = await exchange(`GET ${path} HTTP/1.1\r\nHost: ${d.host}\r\n\r\n`);
    expect(`${path} ${res.status}`).toBe(`${path} 400`);
    expect(codeOf(res.body)).toBe("NAME_INVALID");
  }
  // percent-encoded slashes and dots inside a name fail the name grammar
  for (const path of ["/v2/ok%2frepo/tags/list", "/v2/ok/re%2epo/tags/list"]) {
    const res = await exchange(`GET ${path} HTTP/1.1\r\nHost: ${d.host}\r\n\r\n`);
    expect(res.status).toBe(400);
    expect(codeOf(res.body)).toBe("NAME_INVALID");
  }
  // a push through a dot segment stores nothing under the name it resolves to
  const body = '{"schemaVersion":2}';
  const put = await exchange(`PUT /v2/ok/%2e%2e/other/manifests/v1 HTTP/1.1\r\nHost: ${d.host}\r\nContent-Type: ${OCI_MANIFEST}\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  expect(put.status).toBe(400);
  expect((await fetch(`${d.url}/v2/other/tags/list`)).status).toBe(404);
  // leaving /v2 through dot segments does not reach the admin API either
  const admin = await exchange(`POST /v2/../api/v1/gc HTTP/1.1\r\nHost: ${d.host}\r\nContent-Length: 0\r\n\r\n`);
  expect(admin.status).toBe(400);
});

test("a request without a Host header routes like any other", async () => {
  expect(await push("nohost/app", "t1")).toBe(201);
  const base = await exchange("GET /v2/ HTTP/1.0\r\n\r\n");
  expect(base.status).toBe(200);
  expect(base.body).toBe("{}");
  const tags = await exchange("GET /v2/nohost/app/tags/list HTTP/1.0\r\n\r\n");
  expect(tags.status).toBe(200);
  expect(JSON.parse(tags.body)).toEqual({ name: "nohost/app", tags: ["t1"] });
  const manifest = await exchange("GET /v2/nohost/app/manifests/t1 HTTP/1.0\r\n\r\n");
  expect(manifest.status).toBe(200);
  expect(await exchange("GET /v2/nohost/app/manifests/none HTTP/1.0\r\n\r\n").then((r) => codeOf(r.body))).toBe("MANIFEST_UNKNOWN");
  // HTTP/1.1 requires Host: Bun answers 400 itself, and the daemon carries on
  expect((await exchange("GET /v2/ HTTP/1.1\r\n\r\n")).status).toBe(400);
  expect((await fetch(`${d.url}/v2/`)).status).toBe(200);
});

test("manifest bodies that do not arrive before body_timeout are 408; the budget refuses more than it holds with 429", async () => {
  await push("slow/app", "base");
  // six clients announce 300 KiB manifests, send 1 KiB and stall: the 1 MiB budget takes three
  const head = `PUT /v2/slow/app/manifests/v1 HTTP/1.1\r\nHost: ${d.host}\r\nContent-Type: ${OCI_MANIFEST}\r\nContent-Length: ${300 * 1024}\r\n\r\n`;
  const answers = await Promise.all(Array.from({ length: 6 }, () => exchange(head + " ".repeat(1024))));
  const statuses = answers.map((a) => a.status).sort();
  expect(statuses).toEqual([408, 408, 408, 429, 429, 429]);
  for (const a of answers) {
    expect(a.head).toMatch(/\r\nconnection: close/i);
    if (a.status === 429) {
      expect(codeOf(a.body)).toBe("TOOMANYREQUESTS");
      expect(a.head).toMatch(/\r\nretry-after: \d+/i);
    } else {
      expect(codeOf(a.body)).toBe("MANIFEST_INVALID");
    }
  }
  // chunked (no Content-Length) stalls hit the deadline too
  const chunked = await exchange(`PUT /v2/slow/app/manifests/v2 HTTP/1.1\r\nHost: ${d.host}\r\nContent-Type: ${OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"sch\r\n`);
  expect(chunked.status).toBe(408);
  // nothing was stored, and the budget is free again
  expect((await fetch(`${d.url}/v2/slow/app/manifests/v1`)).status).toBe(404);
  expect(await push("slow/app", "v3")).toBe(201);
});

test("hostile nesting is refused as MANIFEST_INVALID without being parsed", async () => {
  const nested = "[".repeat(1 << 20);
  const res = await fetch(`${d.url}/v2/deep/app/manifests/v1`, { method: "PUT", headers: { "Content-Type": OCI_MANIFEST }, body: nested });
  expect(res.status).toBe(400);
  const body = (await res.json()) as { errors: { code: string; detail: string }[] };
  expect(body.errors[0]!.code).toBe("MANIFEST_INVALID");
  expect(body.errors[0]!.detail).toContain("nests deeper than 64");
  expect(await push("deep/app", "ok")).toBe(201);
});
