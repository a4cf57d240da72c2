/**
 * The authorization matrix (issue 10, "Proof"): identities (anonymous, viewer, dev, ci,
 * admin, a wrong password) x every /v2 endpoint x two repositories, one of which
 * (`secret/app`) only ci and admins may touch. Each cell asserts allow (2xx) or deny (401
 * for anonymous callers and bad credentials, 403 for a known identity), and that no name,
 * tag, digest or byte of the secret repository appears in any response body or header given
 * to an identity that may not pull it. The expected grants are written out here, not taken
 * from the policy code.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setupAuth } from "../../daemon/auth/setup";
import { silentLogger } from "../../daemon/log";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";
import { type TestRegistry, createTestRegistry, imageManifest, pushImage, sha256 } from "../helpers/registry";
import { basic, configOf, writeHtpasswd } from "../helpers/auth";

type Action = "pull" | "push" | "delete";
const SHARED = "shared/app";
const SECRET = "secret/app";
const REPOS = [SHARED, SECRET] as const;

const IDENTITIES: Record<string, { headers: Record<string, string>; bad?: boolean; known: boolean }> = {
  anonymous: { headers: {}, known: false },
  viewer: { headers: basic("viewer", "viewer-pw"), known: true },
  dev: { headers: basic("dev", "dev-pw"), known: true },
  ci: { headers: basic("ci", "ci-pw"), known: true },
  admin: { headers: basic("admin", "admin-pw"), known: true },
  wrong: { headers: basic("ci", "wrong-pw"), bad: true, known: false },
};

/** What each identity may do, written out by hand (the policy below must produce exactly this). */
const GRANTS: Record<string, Record<string, Action[]>> = {
  anonymous: { [SHARED]: ["pull"], [SECRET]: [] },
  viewer: { [SHARED]: ["pull"], [SECRET]: [] },
  dev: { [SHARED]: ["pull", "push", "delete"], [SECRET]: [] },
  ci: { [SHARED]: ["pull", "push", "delete"], [SECRET]: ["pull", "push", "delete"] },
  admin: { [SHARED]: ["pull", "push", "delete"], [SECRET]: ["pull", "push", "delete"] },
  wrong: { [SHARED]: [], [SECRET]: [] },
};

let dir: string;
let r: TestRegistry;
const images: Record<string, Awaited<ReturnType<typeof pushImage>>> = {};
let secretMarkers: string[];
let counter = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "berth-matrix-"));
  const root = join(dir, "root");
  await using seed = await createTestRegistry({ root });
  images[SHARED] = await pushImage(seed, SHARED, "shared-tag", "SHARED-CONTENT");
  images[SECRET] = await pushImage(seed, SECRET, "classified-tag", "SECRET-CONTENT");
  // a referrer of the secret image, so referrers has something to leak
  const sig = imageManifest("{}", ["SECRET-SIGNATURE"], { subject: { mediaType: OCI_MANIFEST, digest: images[SECRET].digest, size: images[SECRET].manifest.length } });
  await seed.call("POST", `/v2/${SECRET}/blobs/uploads/?digest=${sha256("{}")}`, { body: "{}" });
  await seed.call("POST", `/v2/${SECRET}/blobs/uploads/?digest=${sha256("SECRET-SIGNATURE")}`, { body: "SECRET-SIGNATURE" });
  expect((await seed.call("PUT", `/v2/${SECRET}/manifests/${sha256(sig)}`, { headers: { "Content-Type": OCI_MANIFEST }, body: sig })).status).toBe(201);
  const s = images[SECRET];
  const hex = (d: string) => d.slice("sha256:".length);
  secretMarkers = ["secret", "classified-tag", "SECRET-CONTENT", "SECRET-SIGNATURE", hex(s.digest), hex(sha256(s.config)), hex(sha256(s.layer)), hex(sha256(sig))];
  const htpasswd = await writeHtpasswd(dir, { viewer: "viewer-pw", dev: "dev-pw", ci: "ci-pw", admin: "admin-pw" });
  const config = configOf(`
[auth]
htpasswd = "${htpasswd}"
admins = ["admin"]
[[access]]
repos = ["**"]
anonymous = ["pull"]
users = { viewer = ["pull"], dev = ["*"], ci = ["pull", "push", "delete"] }
[[access]]
repos = ["secret/**"]
users = { ci = ["pull", "push", "delete"] }
`);
  r = await createTestRegistry({ root, auth: setupAuth(config, silentLogger, undefined)! });
});
afterAll(async () => {
  await r[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

const ADMIN = IDENTITIES.admin!.headers;

/** Fresh content (pushed as admin) for a case that changes state. */
async function freshBlob(repo: string): Promise<string> {
  const data = `fresh blob ${++counter}`;
  const res = await r.call("POST", `/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { headers: ADMIN, body: data });
  expect(res.status).toBe(201);
  return sha256(data);
}
async function freshManifest(repo: string): Promise<string> {
  const img = images[repo]!;
  const body = imageManifest(img.config, [img.layer], { annotations: { n: String(++counter) } });
  const res = await r.call("PUT", `/v2/${repo}/manifests/t${counter}`, { headers: { ...ADMIN, "Content-Type": OCI_MANIFEST }, body });
  expect(res.status).toBe(201);
  return sha256(body);
}
async function openSession(repo: string, headers: Record<string, string>): Promise<string> {
  const res = await r.call("POST", `/v2/${repo}/blobs/uploads/`, { headers });
  expect(res.status).toBe(202);
  return res.headers.get("location")!;
}

/** One endpoint: the action it needs, and how to call it as `who` on `repo`. */
interface Endpoint {
  name: string;
  action: Action;
  call(repo: string, who: Record<string, string>, allowed: boolean): Promise<Response>;
}

const ENDPOINTS: Endpoint[] = [
  { name: "GET manifest by tag", action: "pull", call: (repo, who) => r.call("GET", `/v2/${repo}/manifests/${repo === SECRET ? "classified-tag" : "shared-tag"}`, { headers: who }) },
  { name: "HEAD manifest by digest", action: "pull", call: (repo, who) => r.call("HEAD", `/v2/${repo}/manifests/${images[repo]!.digest}`, { headers: who }) },
  { name: "GET blob", action: "pull", call: (repo, who) => r.call("GET", `/v2/${repo}/blobs/${sha256(images[repo]!.layer)}`, { headers: who }) },
  { name: "HEAD blob", action: "pull", call: (repo, who) => r.call("HEAD", `/v2/${repo}/blobs/${sha256(images[repo]!.layer)}`, { headers: who }) },
  { name: "GET blob range", action: "pull", call: (repo, who) => r.call("GET", `/v2/${repo}/blobs/${sha256(images[repo]!.layer)}`, { headers: { ...who, Range: "bytes=0-3" } }) },
  { name: "GET tags/list", action: "pull", call: (repo, who) => r.call("GET", `/v2/${repo}/tags/list`, { headers: who }) },
  { name: "GET referrers", action: "pull", call: (repo, who) => r.call("GET", `/v2/${repo}/referrers/${images[repo]!.digest}`, { headers: who }) },
  { name: "POST upload", action: "push", call: (repo, who) => r.call("POST", `/v2/${repo}/blobs/uploads/`, { headers: who }) },
  {
    name: "POST monolithic upload",
    action: "push",
    call: (repo, who) => {
      const data = `mono ${++counter}`;
      return r.call("POST", `/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { headers: who, body: data });
    },
  },
  {
    name: "PATCH + PUT own upload session (admin's when refused)",
    action: "push",
    call: async (repo, who, allowed) => {
      const location = await openSession(repo, allowed ? who : ADMIN);
      const patched = await r.call("PATCH", location, { headers: who, body: "chunk" });
      if (!allowed) return patched;
      expect(patched.status).toBe(202);
      return r.call("PUT", `${location}?digest=${sha256("chunk")}`, { headers: who });
    },
  },
  {
    name: "GET upload status",
    action: "push",
    call: async (repo, who, allowed) => r.call("GET", await openSession(repo, allowed ? who : ADMIN), { headers: who }),
  },
  {
    name: "DELETE upload session",
    action: "push",
    call: async (repo, who, allowed) => r.call("DELETE", await openSession(repo, allowed ? who : ADMIN), { headers: who }),
  },
  {
    name: "PUT manifest",
    action: "push",
    call: (repo, who) => {
      const img = images[repo]!;
      return r.call("PUT", `/v2/${repo}/manifests/pushed${++counter}`, { headers: { ...who, "Content-Type": OCI_MANIFEST }, body: img.manifest });
    },
  },
  {
    name: "PUT manifest moving a tag",
    action: "push",
    call: async (repo, who) => {
      const img = images[repo]!;
      const body = imageManifest(img.config, [img.layer], { annotations: { moved: String(++counter) } });
      return r.call("PUT", `/v2/${repo}/manifests/${repo === SECRET ? "classified-tag" : "shared-tag"}`, { headers: { ...who, "Content-Type": OCI_MANIFEST }, body });
    },
  },
  { name: "DELETE manifest", action: "delete", call: async (repo, who) => r.call("DELETE", `/v2/${repo}/manifests/${await freshManifest(repo)}`, { headers: who }) },
  { name: "DELETE blob", action: "delete", call: async (repo, who) => r.call("DELETE", `/v2/${repo}/blobs/${await freshBlob(repo)}`, { headers: who }) },
];

const responses: Record<string, { label: string; text: string }[]> = {};

/** Everything a response shows: status, headers, body (bytes as latin1, so any byte matches). */
async function record(identity: string, label: string, res: Response): Promise<void> {
  const body = Buffer.from(await res.arrayBuffer()).toString("latin1");
  const headers = [...res.headers.entries()].map(([k, v]) => `${k}: ${v}`).join("\n");
  (responses[identity] ??= []).push({ label, text: `${res.status}\n${headers}\n${body}` });
}

function expectedStatus(identity: string, allowed: boolean, res: Response): boolean {
  const id = IDENTITIES[identity]!;
  if (allowed) return res.status >= 200 && res.status < 300;
  return res.status === (id.known ? 403 : 401);
}

describe.each(Object.keys(IDENTITIES))("%s", (identity) => {
  const who = IDENTITIES[identity]!.headers;
  for (const repo of REPOS) {
    for (const ep of ENDPOINTS) {
      const allowed = GRANTS[identity]![repo]!.includes(ep.action);
      test(`${ep.name} on ${repo}: ${allowed ? "allowed" : "denied"}`, async () => {
        const res = await ep.call(repo, who, allowed);
        const ok = expectedStatus(identity, allowed, res);
        const copy = res.clone();
        await record(identity, `${ep.name} on ${repo}`, res);
        if (!ok) throw new Error(`${identity} ${ep.name} on ${repo}: got ${res.status} ${await copy.text()}`);
        if (!allowed && res.status === 401) expect(res.headers.get("www-authenticate")).toStartWith("Basic ");
      });
    }
  }

  test("GET /v2/: 200 for an identity, 401 otherwise (anonymous may not pull everything)", async () => {
    const res = await r.call("GET", "/v2/", { headers: who });
    expect(res.status).toBe(IDENTITIES[identity]!.known ? 200 : 401);
    await record(identity, "GET /v2/", res);
  });

  test("the catalog lists exactly the repositories the identity may pull", async () => {
    const res = await r.call("GET", "/v2/_catalog", { headers: who });
    if (IDENTITIES[identity]!.bad) return void expect(res.status).toBe(401);
    expect(res.status).toBe(200);
    const repos = ((await res.clone().json()) as { repositories: string[] }).repositories;
    expect(repos).toEqual(REPOS.filter((repo) => GRANTS[identity]![repo]!.includes("pull")).sort());
    await record(identity, "catalog", res);
    // pages of one: the same names, and Link headers that never name a hidden repository
    const paged: string[] = [];
    let url: string | null = "/v2/_catalog?n=1";
    while (url) {
      const page = await r.call("GET", url, { headers: who });
      paged.push(...((await page.clone().json()) as { repositories: string[] }).repositories);
      url = /<([^>]+)>/.exec(page.headers.get("link") ?? "")?.[1] ?? null;
      await record(identity, "catalog page", page);
    }
    expect(paged).toEqual(repos);
  });

  test("a mount from the secret repository into shared/app", async () => {
    const digest = sha256(images[SECRET]!.layer);
    const res = await r.call("POST", `/v2/${SHARED}/blobs/uploads/?mount=${digest}&from=${SECRET}`, { headers: who });
    const canPush = GRANTS[identity]![SHARED]!.includes("push");
    const canPullSource = GRANTS[identity]![SECRET]!.includes("pull");
    // pushers who may pull the source mount (201); other pushers get a plain session (202), as for a missing blob
    expect(res.status).toBe(!canPush ? (IDENTITIES[identity]!.known ? 403 : 401) : canPullSource ? 201 : 202);
    await record(identity, "mount", res);
    if (canPush && !canPullSource) {
      expect((await r.call("HEAD", `/v2/${SHARED}/blobs/${digest}`, { headers: who })).status).toBe(404);
    }
  });

  test("no name, tag, digest or byte of the secret repository reaches an identity that may not pull it", () => {
    if (GRANTS[identity]![SECRET]!.includes("pull")) return;
    expect(responses[identity]!.length).toBeGreaterThan(ENDPOINTS.length * 2);
    for (const { label, text } of responses[identity]!) {
      for (const marker of secretMarkers) {
        if (text.includes(marker)) throw new Error(`${identity}: "${marker}" appears in the response to ${label}:\n${text.slice(0, 500)}`);
      }
    }
  });
});
