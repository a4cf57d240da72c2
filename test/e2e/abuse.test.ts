/**
 * Abuse limits and the audit trail against the real daemon: request rates per client address
 * ([limits]) and the failed-login lockout, with clients played from distinct loopback source
 * addresses; audit lines (with and without [auth]) read from the daemon's stderr.
 */
import { expect, test } from "bun:test";
import { startDaemon, tempDir } from "../helpers/daemon";
import { writeHtpasswd } from "../helpers/auth";
import { requestFrom } from "../helpers/fromaddress";
import { waitFor } from "../helpers/clients";

test("a flood from one client gets 429 TOOMANYREQUESTS with Retry-After while another client is served", async () => {
  await using d = await startDaemon({ extra: "[limits]\nreads_per_second = 1\nread_burst = 5\n" });
  const statuses: number[] = [];
  let refused: Awaited<ReturnType<typeof requestFrom>> | undefined;
  for (let i = 0; i < 40; i++) {
    const r = await requestFrom("127.0.0.2", `${d.url}/v2/`);
    statuses.push(r.status);
    if (r.status === 429) refused ??= r;
  }
  expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
  expect(statuses).toContain(429);
  expect(Number(refused!.headers["retry-after"])).toBeGreaterThanOrEqual(1);
  expect(JSON.parse(refused!.body)).toMatchObject({ errors: [{ code: "TOOMANYREQUESTS" }] });
  // another client is served, and the flooding client's probes still answer
  expect((await requestFrom("127.0.0.3", `${d.url}/v2/`)).status).toBe(200);
  expect((await requestFrom("127.0.0.2", `${d.url}/livez`)).status).toBe(200);
  expect((await requestFrom("127.0.0.2", `${d.url}/readyz`)).status).toBe(200);
});

/** The audit lines in a daemon's log. */
function auditLines(logs: string): Record<string, unknown>[] {
  return logs.split("\n").filter((l) => l.includes('"msg":"audit"')).map((l) => JSON.parse(l));
}

test("push, tag move, deletes and admin actions appear in the daemon's stderr as audit lines", async () => {
  await using d = await startDaemon({ extra: "[audit]\npulls = true\npull_interval = 1\n" });
  const put = async (path: string, body: string, type = "application/octet-stream", method = "POST") => {
    const res = await fetch(`${d.url}${path}`, { method, body, headers: { "Content-Type": type } });
    expect(res.status).toBe(201);
  };
  const digestOf = (s: string) => `sha256:${new Bun.CryptoHasher("sha256").update(s).digest("hex")}`;
  const config = '{"architecture":"amd64","os":"linux"}';
  await put(`/v2/app/blobs/uploads/?digest=${digestOf(config)}`, config);
  const manifest = (layer: string) => JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: digestOf(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: digestOf(layer), size: layer.length }],
  });
  for (const layer of ["one", "two"]) {
    await put(`/v2/app/blobs/uploads/?digest=${digestOf(layer)}`, layer);
    await put("/v2/app/manifests/latest", manifest(layer), "application/vnd.oci.image.manifest.v1+json", "PUT");
  }
  expect((await fetch(`${d.url}/v2/app/manifests/latest`)).status).toBe(200);
  expect((await fetch(`${d.url}/v2/app/manifests/${digestOf(manifest("one"))}`, { method: "DELETE" })).status).toBe(202);
  expect((await fetch(`${d.url}/api/v1/storage/gc?dry_run=true`, { method: "POST" })).status).toBe(200);
  const want = [
    { audit: "push", identity: null, address: "127.0.0.1", repo: "app", reference: "latest", digest: digestOf(manifest("one")), tags: ["latest"] },
    { audit: "push", repo: "app", reference: "latest", digest: digestOf(manifest("two")) },
    { audit: "tag-move", address: "127.0.0.1", repo: "app", tag: "latest", from: digestOf(manifest("one")), digest: digestOf(manifest("two")) },
    { audit: "delete", kind: "manifest", address: "127.0.0.1", repo: "app", reference: digestOf(manifest("one")) },
    { audit: "admin", method: "POST", path: "/api/v1/storage/gc", status: 200, address: "127.0.0.1" },
    { audit: "pulls", pulls: [{ identity: null, repo: "app", digest: digestOf(manifest("two")), count: 1 }] },
  ];
  await waitFor("the audit lines", () => auditLines(d.logs()).length >= want.length);
  const lines = auditLines(d.logs());
  for (const w of want) expect(lines).toContainEqual(expect.objectContaining(w));
});

/** An [auth] section and policy: admin, ci (push and delete), anonymous callers nothing. */
async function authConfig(dir: string): Promise<string> {
  const htpasswd = await writeHtpasswd(dir, { admin: "admin-pw", ci: "ci-pw" });
  return `[auth]\nhtpasswd = "${htpasswd}"\nadmins = ["admin"]\n[[access]]\nrepos = ["**"]\nusers = { ci = ["pull", "push", "delete"] }\n`;
}

test("10 wrong passwords lock out that source with 429 + Retry-After while the right user from elsewhere still logs in", async () => {
  using dir = tempDir();
  await using d = await startDaemon({ extra: await authConfig(dir.path) });
  const auth = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` });
  const statuses: number[] = [];
  let refused: Awaited<ReturnType<typeof requestFrom>> | undefined;
  for (let i = 0; i < 10; i++) {
    const r = await requestFrom("127.0.0.2", `${d.url}/v2/`, { headers: auth("ci", `guess-${i}`) });
    statuses.push(r.status);
    if (r.status === 429) refused ??= r;
  }
  expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429, 429, 429]);
  expect(Number(refused!.headers["retry-after"])).toBeGreaterThanOrEqual(59);
  expect(JSON.parse(refused!.body)).toMatchObject({ errors: [{ code: "TOOMANYREQUESTS" }] });
  // the right password from the locked source is refused too; from elsewhere it logs in
  expect((await requestFrom("127.0.0.2", `${d.url}/v2/`, { headers: auth("ci", "ci-pw") })).status).toBe(429);
  expect((await requestFrom("127.0.0.3", `${d.url}/v2/`, { headers: auth("ci", "ci-pw") })).status).toBe(200);
  // an anonymous probe from the locked source is answered as ever (401 with a challenge), not slowed
  const probe = await requestFrom("127.0.0.2", `${d.url}/v2/`);
  expect(probe.status).toBe(401);
  expect(probe.headers["www-authenticate"]).toContain("Basic");
  // each failure is in the audit trail with user, source and reason; the fifth started the lockout
  await waitFor("the login failures", () => auditLines(d.logs()).filter((l) => l.audit === "login-failed").length >= 5);
  const failures = auditLines(d.logs()).filter((l) => l.audit === "login-failed");
  expect(failures.length).toBe(5);
  expect(failures[0]).toMatchObject({ user: "ci", address: "127.0.0.2", reason: expect.any(String) });
  expect(failures[4]).toMatchObject({ locked: 60 });
});

test("with [auth], audit lines carry the identity: push, delete, admin action", async () => {
  using dir = tempDir();
  await using d = await startDaemon({ extra: await authConfig(dir.path) });
  const as = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` });
  const digestOf = (s: string) => `sha256:${new Bun.CryptoHasher("sha256").update(s).digest("hex")}`;
  const ci = as("ci", "ci-pw");
  const config = '{"os":"linux"}';
  const layer = "layer";
  for (const blob of [config, layer]) {
    expect((await fetch(`${d.url}/v2/factory/app/blobs/uploads/?digest=${digestOf(blob)}`, { method: "POST", body: blob, headers: ci })).status).toBe(201);
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: digestOf(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: digestOf(layer), size: layer.length }],
  });
  const put = await fetch(`${d.url}/v2/factory/app/manifests/1.0`, { method: "PUT", body: manifest, headers: { ...ci, "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
  expect(put.status).toBe(201);
  expect((await fetch(`${d.url}/v2/factory/app/manifests/1.0`, { method: "DELETE", headers: ci })).status).toBe(202);
  expect((await fetch(`${d.url}/api/v1/storage/gc?dry_run=true`, { method: "POST", headers: as("admin", "admin-pw") })).status).toBe(200);
  expect((await fetch(`${d.url}/api/v1/storage/gc?dry_run=true`, { method: "POST", headers: ci })).status).toBe(403);
  await waitFor("the audit lines", () => auditLines(d.logs()).length >= 4);
  const lines = auditLines(d.logs());
  expect(lines).toContainEqual(expect.objectContaining({ audit: "push", identity: "ci", via: "htpasswd", address: "127.0.0.1", repo: "factory/app", reference: "1.0", digest: digestOf(manifest), tags: ["1.0"] }));
  expect(lines).toContainEqual(expect.objectContaining({ audit: "delete", identity: "ci", address: "127.0.0.1", kind: "tag", repo: "factory/app", reference: "1.0" }));
  expect(lines).toContainEqual(expect.objectContaining({ audit: "admin", identity: "admin", via: "htpasswd", method: "POST", path: "/api/v1/storage/gc", status: 200 }));
  expect(lines).toContainEqual(expect.objectContaining({ audit: "admin", identity: "ci", method: "POST", path: "/api/v1/storage/gc", status: 403 }));
});
