/**
 * Bearer token auth toward a real upstream: docker-registry with `auth: token`, trusting a
 * token service started by the test (test/helpers/tokenserver.ts) that checks Basic
 * credentials and signs RS256 JWTs. berth answers the registry's Bearer challenge from the
 * realm with its credentials and pulls through; wrong credentials give DENIED (502) naming
 * the token service, never "manifest unknown".
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startDaemon } from "../helpers/daemon";
import { errorsOf, makeTemp, Skopeo } from "../helpers/clients";
import { type TokenServer, startTokenServer } from "../helpers/tokenserver";
import { type BuiltImage, type UpstreamRegistry, buildLayout, startUpstream } from "../helpers/upstream";

let tokens: TokenServer;
let upstream: UpstreamRegistry;
let skopeo: Skopeo;
let work: string;
let img: BuiltImage;
const ACCEPT = { Accept: "application/vnd.oci.image.manifest.v1+json" };

beforeAll(async () => {
  work = makeTemp("berth-token-");
  tokens = await startTokenServer(work, "edge", "s3cret");
  upstream = await startUpstream({ token: tokens });
  skopeo = new Skopeo();
  img = buildLayout(join(work, "app"), "v1", ["linux/amd64"], [5000]);
  await skopeo.ok(["copy", "--dest-tls-verify=false", "--dest-creds", "edge:s3cret", `oci:${join(work, "app")}:v1`, `docker://${upstream.host}/team/app:v1`]);
  writeFileSync(join(work, "good.toml"), 'username = "edge"\npassword = "s3cret"\n');
  writeFileSync(join(work, "bad.toml"), 'username = "edge"\npassword = "wrong"\n');
}, 60_000);

afterAll(async () => {
  await upstream?.[Symbol.asyncDispose]();
  tokens?.[Symbol.dispose]();
  skopeo?.[Symbol.dispose]();
  rmSync(work, { recursive: true, force: true });
});

const registry = (creds?: string) =>
  `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "tok"\nurls = ["${upstream.url}"]\n${creds ? `credentials_file = "${join(work, creds)}"\n` : ""}`;

describe("Bearer token auth to the upstream", () => {
  test("the upstream really demands a token", async () => {
    const res = await fetch(`${upstream.url}/v2/team/app/manifests/v1`, { headers: ACCEPT });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain(`Bearer realm="${tokens.realm}"`);
  });

  test("with the right credentials berth fetches a token for the repository's scope and pulls through", async () => {
    const before = tokens.requests().length;
    await using berth = await startDaemon({ extra: registry("good.toml") });
    const out = join(work, "out");
    await skopeo.ok(["copy", "--src-tls-verify=false", `docker://${berth.host}/team/app:v1`, `oci:${out}:v1`]);
    const res = await fetch(`${berth.url}/v2/team/app/manifests/v1`, { headers: ACCEPT });
    expect(res.status).toBe(200);
    expect(res.headers.get("docker-content-digest")).toBe(img.digest);
    for (const d of img.platforms["linux/amd64"]!.blobs) expect((await fetch(`${berth.url}/v2/team/app/blobs/${d}`, { method: "HEAD" })).status).toBe(200);
    const asked = tokens.requests().slice(before);
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.every((r) => r.user === "edge" && r.status === 200 && r.service === tokens.service)).toBe(true);
    expect(asked.some((r) => r.scopes.includes("repository:team/app:pull"))).toBe(true);
    // the token is reused: far fewer token requests than upstream requests
    const upstreamGets = upstream.requests().filter((r) => r.uri.startsWith("/v2/team/app/") && r.status === 200).length;
    expect(upstreamGets).toBeGreaterThan(asked.length);
  }, 60_000);

  test("wrong credentials: DENIED (502) saying the token service refused berth", async () => {
    await using berth = await startDaemon({ extra: registry("bad.toml") });
    const res = await fetch(`${berth.url}/v2/team/app/manifests/v1`, { headers: ACCEPT });
    expect(res.status).toBe(502);
    const err = (await errorsOf(res))[0]!;
    expect(err.code).toBe("DENIED");
    expect(err.detail).toContain("upstream tok: token service");
    expect(err.detail).toContain("refused berth (401)");
    expect(err.detail).not.toContain("wrong");
    const blob = await fetch(`${berth.url}/v2/team/app/blobs/${img.platforms["linux/amd64"]!.blobs[0]}`);
    expect(blob.status).toBe(502);
    expect((await errorsOf(blob))[0]!.code).toBe("DENIED");
  }, 30_000);

  test("no credentials: the anonymous token request is refused, DENIED (502)", async () => {
    await using berth = await startDaemon({ extra: registry() });
    const res = await fetch(`${berth.url}/v2/team/app/manifests/v1`, { headers: ACCEPT });
    expect(res.status).toBe(502);
    expect((await errorsOf(res))[0]!.code).toBe("DENIED");
  }, 30_000);
});
