/**
 * Abuse limits against the real daemon: request rates per client address ([limits]), with
 * clients played from distinct loopback source addresses.
 */
import { expect, test } from "bun:test";
import { startDaemon } from "../helpers/daemon";
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
