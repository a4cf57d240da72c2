/**
 * Pull-through with authentication on (issue 10): sync's on-demand fetch runs only for
 * callers who may pull the repository. A refused caller gets its 401/403 before the
 * registry (and so the pull-through decorator) is asked, and the upstream sees no request.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Skopeo, makeTemp, runOk } from "../helpers/clients";
import { startDaemon } from "../helpers/daemon";
import { type UpstreamRegistry, buildLayout, startUpstream } from "../helpers/upstream";
import { basic } from "../helpers/auth";

setDefaultTimeout(60_000);

let upstream: UpstreamRegistry;
let skopeo: Skopeo;
let work: string;

beforeAll(async () => {
  work = makeTemp("berth-pt-auth-");
  upstream = await startUpstream();
  skopeo = new Skopeo();
  buildLayout(join(work, "img"), "1.0", ["linux/amd64"], [1024]);
  await skopeo.ok(["copy", "--dest-tls-verify=false", `oci:${join(work, "img")}:1.0`, `docker://${upstream.host}/lib/app:1.0`]);
}, 60_000);
afterAll(async () => {
  await upstream?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

test("on-demand fetches run only for callers who may pull", async () => {
  const htpasswd = join(work, "htpasswd");
  await runOk(["htpasswd", "-B", "-b", "-c", "-C", "4", htpasswd, "viewer", "viewer-pw"]);
  await runOk(["htpasswd", "-B", "-b", "-C", "4", htpasswd, "other", "other-pw"]);
  chmodSync(htpasswd, 0o600);
  await using berth = await startDaemon({
    extra: `
[auth]
htpasswd = "${htpasswd}"
[[access]]
repos = ["up/**"]
users = { viewer = ["pull"] }
[[access]]
repos = ["**"]
authenticated = ["pull"]
[[sync.registries]]
name = "up"
urls = ["${upstream.url}"]
repos = ["lib/**"]
dest_prefix = "up"
interval = 0
on_demand = true
`,
  });
  const manifest = (headers: Record<string, string>) =>
    fetch(`${berth.url}/v2/up/lib/app/manifests/1.0`, { headers: { ...headers, Accept: "application/vnd.oci.image.manifest.v1+json" } });
  // the upstream's log already holds the push that seeded it; count from here
  const before = upstream.requests().length;
  const fetched = () => upstream.requests().slice(before).filter((q) => q.uri.includes("/lib/app/")).length;
  expect((await manifest({})).status).toBe(401);
  expect((await manifest(basic("other", "other-pw"))).status).toBe(403);
  expect((await manifest(basic("viewer", "wrong"))).status).toBe(401);
  expect(fetched()).toBe(0);
  const ok = await manifest(basic("viewer", "viewer-pw"));
  expect(ok.status).toBe(200);
  expect(fetched()).toBeGreaterThan(0);
});
