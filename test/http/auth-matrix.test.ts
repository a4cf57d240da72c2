/**
 * The authorization matrix (issue 10, "Proof"): identities (anonymous, viewer, dev, ci,
 * admin, a wrong password) x every /v2 endpoint x two repositories, one of which
 * (`secret/app`) only ci and admins may touch. Each cell asserts allow (2xx) or deny (401
 * for anonymous callers and bad credentials, 403 for a known identity), and that no name,
 * tag, digest or byte of the secret repository appears in any response body or header given
 * to an identity that may not pull it. The expected grants are written out here, not taken
 * from the policy code. The endpoint table, seeding and response log are shared with the
 * token and API key matrix (auth-matrix-tokens.test.ts) through auth-matrix-table.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setupAuth } from "../../daemon/auth/setup";
import { silentLogger } from "../../daemon/log";
import { type TestRegistry, createTestRegistry, sha256 } from "../helpers/registry";
import { basic, configOf, writeHtpasswd } from "../helpers/auth";
import { type Action, type Endpoint, type Seeded, REPOS, ResponseLog, SECRET, SHARED, matrixEndpoints, seedRepositories } from "./auth-matrix-table";

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
let seeded: Seeded;
const images: Seeded["images"] = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "berth-matrix-"));
  const root = join(dir, "root");
  seeded = await seedRepositories(root);
  Object.assign(images, seeded.images);
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

const ENDPOINTS: Endpoint[] = matrixEndpoints(() => r, images, IDENTITIES.admin!.headers);
const log = new ResponseLog();
const record = (identity: string, label: string, res: Response) => log.record(identity, label, res);

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
    expect(log.count(identity)).toBeGreaterThan(ENDPOINTS.length * 2);
    log.expectNoLeak(identity, seeded.secretMarkers);
  });
});
