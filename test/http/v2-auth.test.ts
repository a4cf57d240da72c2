/**
 * Socketless tests of authentication and authorization on every /v2 endpoint (issue 10):
 * 401 with a challenge for anonymous callers and bad credentials, 403 DENIED for a known
 * identity without the right, the same answer whether or not a forbidden repository exists,
 * catalogs filtered with exact pagination, mounts from a forbidden source falling back to a
 * plain upload, upload sessions owned by who opened them, and fuzzed Authorization headers.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setupAuth } from "../../daemon/auth/setup";
import { silentLogger } from "../../daemon/log";
import { type TestRegistry, createTestRegistry, pushBlob, pushImage, sha256 } from "../helpers/registry";
import { basic, configOf, writeHtpasswd } from "../helpers/auth";

const ADMIN_TOKEN = "admin-token-0123456789abcdef";
let dir: string;
let r: TestRegistry;
let secret: Awaited<ReturnType<typeof pushImage>>;
let team: Awaited<ReturnType<typeof pushImage>>;

const ANON = {};
const CI = basic("ci", "ci-pw");
const VIEWER = basic("viewer", "viewer-pw");
const DEV = basic("dev", "dev-pw");
const ADMIN = basic("admin", "admin-pw");
const WRONG = basic("ci", "not-the-password");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "berth-v2auth-"));
  const root = join(dir, "root");
  await using seed = await createTestRegistry({ root });
  await pushImage(seed, "public/base", "v1", "public");
  team = await pushImage(seed, "team/app", "v1", "team");
  secret = await pushImage(seed, "secret/app", "v1", "secret");
  const htpasswd = await writeHtpasswd(dir, { ci: "ci-pw", viewer: "viewer-pw", dev: "dev-pw", admin: "admin-pw" });
  const config = configOf(`
[auth]
htpasswd = "${htpasswd}"
admins = ["admin"]
[[access]]
repos = ["public/**"]
anonymous = ["pull"]
users = { ci = ["*"] }
[[access]]
repos = ["**"]
users = { ci = ["pull", "push", "delete"], viewer = ["pull"], dev = ["pull", "push"] }
[[access]]
repos = ["secret/**"]
users = { ci = ["pull", "push", "delete"] }
`);
  const auth = setupAuth(config, silentLogger, ADMIN_TOKEN)!;
  r = await createTestRegistry({ root, auth });
});
afterAll(async () => {
  await r[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

async function errorCode(res: Response): Promise<string> {
  return ((await res.json()) as { errors: { code: string }[] }).errors[0]!.code;
}

describe("GET /v2/", () => {
  test("anonymous callers get 401 with a Basic challenge when some repository needs credentials", async () => {
    const res = await r.call("GET", "/v2/", { headers: ANON });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Basic realm="berth", charset="UTF-8"');
    expect(await errorCode(res)).toBe("UNAUTHORIZED");
  });
  test("any valid identity gets 200", async () => {
    for (const who of [CI, VIEWER, DEV, ADMIN, { Authorization: `Bearer ${ADMIN_TOKEN}` }]) {
      expect((await r.call("GET", "/v2/", { headers: who })).status).toBe(200);
    }
  });
  test("a wrong password is 401 (podman login must fail), as is an unknown user", async () => {
    for (const who of [WRONG, basic("nobody", "pw"), { Authorization: "Bearer not-the-admin-token-xxxxxx" }]) {
      const res = await r.call("GET", "/v2/", { headers: who });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain("Basic");
    }
  });
  test("a wrong password is refused even where anonymous callers may pull", async () => {
    expect((await r.call("GET", "/v2/public/base/manifests/v1", { headers: ANON })).status).toBe(200);
    expect((await r.call("GET", "/v2/public/base/manifests/v1", { headers: WRONG })).status).toBe(401);
  });
});

describe("reads", () => {
  const endpoints = (repo: string) => [
    ["GET", `/v2/${repo}/manifests/v1`],
    ["HEAD", `/v2/${repo}/manifests/v1`],
    ["GET", `/v2/${repo}/blobs/${sha256("x")}`],
    ["HEAD", `/v2/${repo}/blobs/${sha256("x")}`],
    ["GET", `/v2/${repo}/tags/list`],
    ["GET", `/v2/${repo}/referrers/${sha256("x")}`],
  ];
  test("a forbidden pull answers the same whether or not the repository exists: 401 anonymous, 403 identity", async () => {
    for (const [method, path] of endpoints("secret/app")) {
      for (const [who, status, code] of [[ANON, 401, "UNAUTHORIZED"], [VIEWER, 403, "DENIED"]] as const) {
        const there = await r.call(method!, path!, { headers: who });
        const missing = await r.call(method!, path!.replace("secret/app", "secret/nothere"), { headers: who });
        expect([method, path, there.status]).toEqual([method, path, status]);
        expect(missing.status).toBe(status);
        if (method === "GET") {
          const [a, b] = [await there.text(), await missing.text()];
          expect(a).toBe(b);
          expect(JSON.parse(a).errors[0].code).toBe(code);
        }
        expect(there.headers.get("www-authenticate")).toBe(missing.headers.get("www-authenticate"));
      }
    }
  });
  test("allowed pulls work on every read endpoint", async () => {
    expect((await r.call("GET", "/v2/secret/app/manifests/v1", { headers: CI })).status).toBe(200);
    expect((await r.call("HEAD", `/v2/secret/app/blobs/${sha256(secret.layer)}`, { headers: CI })).status).toBe(200);
    expect((await r.call("GET", `/v2/team/app/blobs/${sha256(team.layer)}`, { headers: VIEWER })).status).toBe(200);
    expect(await (await r.call("GET", "/v2/team/app/tags/list", { headers: VIEWER })).json()).toEqual({ name: "team/app", tags: ["v1"] });
    expect((await r.call("GET", `/v2/team/app/referrers/${team.digest}`, { headers: VIEWER })).status).toBe(200);
    expect((await r.call("GET", "/v2/public/base/tags/list", { headers: ANON })).status).toBe(200);
  });
});

describe("catalog", () => {
  async function catalog(who: Record<string, string>, query = ""): Promise<{ status: number; repos?: string[]; link: string | null }> {
    const res = await r.call("GET", `/v2/_catalog${query}`, { headers: who });
    const body = res.status === 200 ? ((await res.json()) as { repositories: string[] }).repositories : undefined;
    return { status: res.status, ...(body ? { repos: body } : {}), link: res.headers.get("link") };
  }
  test("lists only what the caller may pull", async () => {
    expect((await catalog(ANON)).repos).toEqual(["public/base"]);
    expect((await catalog(VIEWER)).repos).toEqual(["public/base", "team/app"]);
    expect((await catalog(CI)).repos).toEqual(["public/base", "secret/app", "team/app"]);
    expect((await catalog(ADMIN)).repos).toEqual(["public/base", "secret/app", "team/app"]);
  });
  test("pagination is exact over the filtered list", async () => {
    const first = await catalog(VIEWER, "?n=1");
    expect(first.repos).toEqual(["public/base"]);
    expect(first.link).toBe('</v2/_catalog?n=1&last=public%2Fbase>; rel="next"');
    const second = await catalog(VIEWER, "?n=1&last=public%2Fbase");
    expect(second.repos).toEqual(["team/app"]);
    expect(second.link).toBeNull();
  });
});

describe("writes", () => {
  test("push needs push: viewer 403, anonymous 401 with a challenge, dev and ci may", async () => {
    expect((await r.call("POST", "/v2/team/app/blobs/uploads/", { headers: VIEWER })).status).toBe(403);
    const anon = await r.call("POST", "/v2/team/app/blobs/uploads/", { headers: ANON });
    expect(anon.status).toBe(401);
    expect(anon.headers.get("www-authenticate")).toContain("Basic");
    expect((await r.call("POST", "/v2/team/app/blobs/uploads/", { headers: DEV })).status).toBe(202);
    expect((await r.call("PUT", "/v2/secret/app/manifests/v2", { headers: { ...DEV, "Content-Type": "application/vnd.oci.image.manifest.v1+json" }, body: secret.manifest })).status).toBe(403);
    expect((await r.call("PUT", "/v2/secret/app/manifests/v2", { headers: { ...CI, "Content-Type": "application/vnd.oci.image.manifest.v1+json" }, body: secret.manifest })).status).toBe(201);
  });
  test("delete needs delete", async () => {
    expect((await r.call("DELETE", "/v2/secret/app/manifests/v2", { headers: DEV })).status).toBe(403);
    expect((await r.call("DELETE", `/v2/team/app/blobs/${sha256(team.layer)}`, { headers: DEV })).status).toBe(403);
    expect((await r.call("DELETE", "/v2/secret/app/manifests/v2", { headers: ANON })).status).toBe(401);
    expect((await r.call("DELETE", "/v2/secret/app/manifests/v2", { headers: CI })).status).toBe(202);
  });
  test("a mount from a repository the caller may not pull falls back to a plain upload session", async () => {
    const digest = sha256(secret.layer);
    const refused = await r.call("POST", `/v2/team/app/blobs/uploads/?mount=${digest}&from=secret/app`, { headers: DEV });
    const missing = await r.call("POST", `/v2/team/app/blobs/uploads/?mount=${sha256("nothing")}&from=public/base`, { headers: DEV });
    expect(refused.status).toBe(202);
    expect(missing.status).toBe(202);
    expect([...refused.headers.keys()].sort()).toEqual([...missing.headers.keys()].sort());
    expect((await r.call("HEAD", `/v2/team/app/blobs/${digest}`, { headers: DEV })).status).toBe(404);
    // without from, no repository is searched for it either
    expect((await r.call("POST", `/v2/team/app/blobs/uploads/?mount=${digest}`, { headers: DEV })).status).toBe(202);
    // a source the caller may pull mounts
    const pub = sha256("layer bytes of public");
    expect((await r.call("POST", `/v2/team/app/blobs/uploads/?mount=${pub}&from=public/base`, { headers: DEV })).status).toBe(201);
  });
  test("an upload session belongs to the identity that opened it", async () => {
    const started = await r.call("POST", "/v2/team/app/blobs/uploads/", { headers: CI });
    const location = started.headers.get("location")!;
    const bogus = location.replace(/[^/]+$/, "00000000-0000-4000-8000-000000000000");
    for (const [method, body] of [["GET", undefined], ["PATCH", "abc"], ["PUT", "abc"], ["DELETE", undefined]] as const) {
      const url = method === "PUT" ? `${location}?digest=${sha256("abc")}` : location;
      const other = await r.call(method, url, { headers: DEV, ...(body ? { body } : {}) });
      const never = await r.call(method, method === "PUT" ? `${bogus}?digest=${sha256("abc")}` : bogus, { headers: DEV, ...(body ? { body } : {}) });
      expect([method, other.status]).toEqual([method, 404]);
      expect(await other.text()).toBe((await never.text()).replace(bogus.split("/").pop()!, location.split("/").pop()!));
    }
    expect((await r.call("PATCH", location, { headers: CI, body: "abc" })).status).toBe(202);
    expect((await r.call("PUT", `${location}?digest=${sha256("abc")}`, { headers: CI })).status).toBe(201);
    // and anonymous callers cannot touch it either
    expect((await r.call("GET", location, { headers: ANON })).status).toBe(401);
  });
  test("admins may do everything; the admin token is an admin", async () => {
    const digest = await pushBlobAs(ADMIN, "secret/app", "admin blob");
    expect((await r.call("DELETE", `/v2/secret/app/blobs/${digest}`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).status).toBe(202);
  });
});

async function pushBlobAs(who: Record<string, string>, repo: string, data: string): Promise<string> {
  const digest = sha256(data);
  const res = await r.call("POST", `/v2/${repo}/blobs/uploads/?digest=${digest}`, { headers: who, body: data });
  expect(res.status).toBe(201);
  return digest;
}

describe("fuzzed Authorization headers", () => {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const headers = [
    "Basic",
    "Basic ",
    "Basic !!!!",
    "Basic Y2k6Y2ktcHc", // valid credentials without padding
    `Basic ${b64("ci")}`, // no colon
    `Basic ${b64(":ci-pw")}`, // empty user
    `Basic ${b64("ci:ci-pw\u0000")}`,
    `Basic ${b64("ci\u00e9:pw")}`,
    `Basic ${b64(`ci:${"x".repeat(5000)}`)}`,
    `Basic ${"A".repeat(20_000)}`,
    `Basic ${b64("ci:ci-pw")}=`,
    `basic ${b64("ci:wrong")}`,
    "Bearer",
    "Bearer ",
    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJjaSJ9.",
    `Bearer ${ADMIN_TOKEN}x`,
    `Bearer ${ADMIN_TOKEN.slice(1)}`,
    "Digest username=ci",
    "Negotiate abc",
    "\u00ff\u00fe",
    "x".repeat(10_000),
  ];
  test.each(headers.map((h) => [h.slice(0, 60), h]))("%s: 401, never 500, never access", async (_, value) => {
    for (const [method, path] of [["GET", "/v2/"], ["GET", "/v2/team/app/manifests/v1"], ["GET", "/v2/_catalog"], ["DELETE", "/v2/team/app/manifests/v1"]]) {
      let res: Response;
      try {
        res = await r.call(method!, path!, { headers: { Authorization: value } });
      } catch (err) {
        // the Fetch API itself refuses some header values: then nothing reaches berth
        expect(String(err)).toMatch(/header/i);
        continue;
      }
      expect([method, path, res.status]).toEqual([method, path, 401]);
      expect(await res.text()).not.toContain("team/app");
    }
  });
});
