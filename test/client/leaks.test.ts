/**
 * The client's credentials stay with the registry they were given for (review of the
 * client): a Bearer challenge whose realm is another origin gets no Basic credentials, and
 * a redirect to another origin (a blob on object storage, or a hostile server) carries no
 * Authorization header. Two loopback servers on different ports are two origins.
 */
import { afterAll, expect, test } from "bun:test";
import { RegistryClient } from "../../daemon/client/http";

const seen: { path: string; auth: string | null }[] = [];
const other = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(req) {
    seen.push({ path: new URL(req.url).pathname, auth: req.headers.get("authorization") });
    if (new URL(req.url).pathname === "/token") return Response.json({ token: "anonymous-token" });
    return new Response("elsewhere");
  },
});
const otherUrl = `http://127.0.0.1:${other.port}`;
const registry = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === "/v2/") return new Response(null, { status: 401, headers: { "WWW-Authenticate": `Bearer realm="${otherUrl}/token",service="evil"` } });
    if (path === "/v2/x/blobs/moved") return new Response(null, { status: 307, headers: { Location: `${otherUrl}/blob` } });
    if (path === "/api/v1/moved") return new Response(null, { status: 307, headers: { Location: `${otherUrl}/admin` } });
    return new Response("here");
  },
});
const registryUrl = `http://127.0.0.1:${registry.port}`;
afterAll(() => {
  other.stop(true);
  registry.stop(true);
});

test("a token realm on another origin is not sent the password", async () => {
  seen.length = 0;
  const client = new RegistryClient({ url: registryUrl, username: "ci", password: "s3cret" });
  const res = await client.request("/v2/", { scope: "repository:x:pull" });
  await res.body?.cancel();
  const asked = seen.filter((s) => s.path === "/token");
  expect(asked.length).toBe(1);
  expect(asked[0]!.auth).toBeNull();
});

test("a redirect to another origin carries no credentials (/v2 and /api/v1)", async () => {
  seen.length = 0;
  const client = new RegistryClient({ url: registryUrl, username: "ci", password: "s3cret", token: "admin-token" });
  const blob = await client.request("/v2/x/blobs/moved");
  expect(await blob.text()).toBe("elsewhere");
  const admin = await client.request("/api/v1/moved");
  expect(await admin.text()).toBe("elsewhere");
  expect(seen.map((s) => s.path)).toContain("/admin");
  for (const s of seen) expect(s.auth).toBeNull();
});
