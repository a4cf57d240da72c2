/**
 * The audit trail (audit/audit.ts): events as JSON lines through a logger, identities and
 * source addresses from the handler, pulls counted in memory and written in batches.
 */
import { expect, test } from "bun:test";
import { AuditTrail } from "../../daemon/audit/audit";
import type { Principal } from "../../daemon/auth/identity";
import { createLogger } from "../../daemon/log";
import { createTestRegistry, imageManifest, pushBlob, pushImage, sha256 } from "../helpers/registry";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("info", "json", (line) => lines.push(JSON.parse(line)));
  return { log, lines, events: (kind: string) => lines.filter((l) => l.msg === "audit" && l.audit === kind) };
}

const ci: Principal = { name: "ci", groups: ["builders"], source: "htpasswd" };
const peer = (address: string) => ({ requestIP: () => ({ address }) });

test("push, tag move and deletes are audited with identity, source address, repo, reference and digest", async () => {
  const c = capture();
  const audit = new AuditTrail(c.log, { pulls: false, pullIntervalMs: 1000 });
  await using r = await createTestRegistry({ audit });
  const as = (method: string, path: string, body?: string, principal: Principal | undefined = ci) =>
    r.handle(new Request(`http://registry.test${path}`, { method, body: body ?? null, headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } }), peer("192.0.2.10"), principal);

  const first = await pushImage(r, "team/app", "v1", "one"); // anonymous, no peer
  expect(c.events("push")).toEqual([expect.objectContaining({ identity: null, address: null, repo: "team/app", reference: "v1", digest: first.digest, tags: ["v1"] })]);

  // a second image pushed under the same tag by ci: a push and a tag move from the first digest
  const config = JSON.stringify({ seed: "two" });
  await pushBlob(r, "team/app", config);
  await pushBlob(r, "team/app", "layer two");
  const manifest = imageManifest(config, ["layer two"]);
  expect((await as("PUT", "/v2/team/app/manifests/v1?tag=stable", manifest)).status).toBe(201);
  const second = sha256(manifest);
  expect(c.events("push").at(-1)).toMatchObject({ identity: "ci", via: "htpasswd", address: "192.0.2.10", repo: "team/app", reference: "v1", digest: second, tags: ["v1", "stable"] });
  expect(c.events("tag-move")).toEqual([expect.objectContaining({ identity: "ci", address: "192.0.2.10", repo: "team/app", tag: "v1", from: first.digest, digest: second })]);
  // pushing the same manifest again under the same tag moves nothing
  expect((await as("PUT", "/v2/team/app/manifests/v1", manifest)).status).toBe(201);
  expect(c.events("tag-move").length).toBe(1);

  expect((await as("DELETE", "/v2/team/app/manifests/stable")).status).toBe(202);
  expect((await as("DELETE", `/v2/team/app/manifests/${first.digest}`)).status).toBe(202);
  expect((await as("DELETE", `/v2/team/app/blobs/${sha256(first.layer)}`)).status).toBe(202);
  expect(c.events("delete")).toEqual([
    expect.objectContaining({ identity: "ci", address: "192.0.2.10", kind: "tag", repo: "team/app", reference: "stable" }),
    expect.objectContaining({ identity: "ci", kind: "manifest", reference: first.digest }),
    expect.objectContaining({ identity: "ci", kind: "blob", reference: sha256(first.layer) }),
  ]);
  // a refused delete is not an event
  expect((await as("DELETE", "/v2/team/app/manifests/nosuchtag")).status).toBe(404);
  expect(c.events("delete").length).toBe(3);
  // nothing is logged for pulls unless asked
  expect((await as("GET", `/v2/team/app/manifests/v1`)).status).toBe(200);
  audit.close();
  expect(c.events("pulls")).toEqual([]);
});

test("pulls are counted per identity, repo and digest and written as one line per batch; HEAD is not a pull", async () => {
  const c = capture();
  let now = Date.parse("2026-01-01T00:00:00Z");
  const audit = new AuditTrail(c.log, { pulls: true, pullIntervalMs: 60_000 }, () => now);
  await using r = await createTestRegistry({ audit });
  const img = await pushImage(r, "app", "v1", "p");
  const pull = (method: string, principal?: Principal) => r.handle(new Request(`http://registry.test/v2/app/manifests/v1`, { method }), peer("192.0.2.1"), principal);
  for (let i = 0; i < 5; i++) await pull("GET", ci);
  await pull("GET");
  await pull("GET");
  await pull("HEAD", ci);
  expect(c.events("pulls")).toEqual([]); // nothing written per pull
  now += 60_000;
  audit.flushPulls();
  const [batch] = c.events("pulls");
  expect(batch).toMatchObject({ since: "2026-01-01T00:00:00.000Z", until: "2026-01-01T00:01:00.000Z", total: 7 });
  expect(batch!.pulls).toEqual(expect.arrayContaining([
    { identity: "ci", repo: "app", digest: img.digest, count: 5 },
    { identity: null, repo: "app", digest: img.digest, count: 2 },
  ]));
  audit.flushPulls(); // an empty batch writes nothing
  expect(c.events("pulls").length).toBe(1);
});

test("the pull batch is bounded: distinct triples beyond the bound are only counted", () => {
  const c = capture();
  const audit = new AuditTrail(c.log, { pulls: true, pullIntervalMs: 60_000, maxPullEntries: 10 });
  for (let i = 0; i < 1000; i++) audit.pulled({ address: "a" }, `repo${i}`, "sha256:00");
  audit.pulled({ address: "a" }, "repo0", "sha256:00");
  audit.close();
  const [batch] = c.events("pulls");
  expect((batch!.pulls as unknown[]).length).toBe(10);
  expect(batch).toMatchObject({ total: 1001, others: 990 });
});

test("login failures and admin actions", () => {
  const c = capture();
  const audit = new AuditTrail(c.log, { pulls: false, pullIntervalMs: 1000 });
  audit.loginFailed("ci", "192.0.2.5", "wrong password");
  audit.loginFailed("ci", "192.0.2.5", "wrong password", 60);
  audit.admin({ principal: { name: "root", groups: [], source: "htpasswd" }, address: "127.0.0.1" }, "POST", "/api/v1/storage/gc", 200);
  expect(c.events("login-failed")).toEqual([
    expect.objectContaining({ user: "ci", address: "192.0.2.5", reason: "wrong password" }),
    expect.objectContaining({ user: "ci", address: "192.0.2.5", locked: 60 }),
  ]);
  expect(c.events("admin")).toEqual([expect.objectContaining({ identity: "root", via: "htpasswd", address: "127.0.0.1", method: "POST", path: "/api/v1/storage/gc", status: 200 })]);
});
