/**
 * Offline first against a real upstream that goes away and comes back: cached pulls stay
 * fast and never wait on the upstream, misses fail at once with a clear 503 once the
 * upstream is marked down, the breaker recovers by itself, and the tag re-check state
 * survives a restart of berth.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { Skopeo, makeTemp, waitFor } from "../helpers/clients";
import { type BuiltImage, type UpstreamRegistry, buildLayout, startUpstream } from "../helpers/upstream";

let upstream: UpstreamRegistry;
let berth: Daemon;
let skopeo: Skopeo;
let work: string;
let root: string;
let img: BuiltImage;

const ACCEPT = { Accept: "application/vnd.oci.image.manifest.v1+json" };
const config = () =>
  `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "up"\nurls = ["${upstream.url}"]\ntag_check_interval = 3600\nbreaker_failures = 2\nprobe_interval_ms = 100\ntimeout_ms = 2000\n`;

beforeAll(async () => {
  work = makeTemp("berth-off-");
  root = join(work, "root");
  upstream = await startUpstream();
  skopeo = new Skopeo();
  img = buildLayout(join(work, "app"), "v1", ["linux/amd64"], [100_000]);
  buildLayout(join(work, "other"), "v1", ["linux/amd64"], [1000]);
  await skopeo.ok(["copy", "--dest-tls-verify=false", `oci:${join(work, "app")}:v1`, `docker://${upstream.host}/team/app:v1`]);
  await skopeo.ok(["copy", "--dest-tls-verify=false", `oci:${join(work, "other")}:v1`, `docker://${upstream.host}/team/other:v1`]);
  berth = await startDaemon({ root, extra: config() });
  // warm the cache: pull the image once
  await skopeo.ok(["copy", "--src-tls-verify=false", `docker://${berth.host}/team/app:v1`, `oci:${join(work, "pulled")}:v1`]);
  await waitFor("the image to be stored", async () => (await fetch(`${berth.url}/v2/team/app/manifests/v1`, { headers: ACCEPT })).status === 200 && ((await fetch(`${berth.url}/api/v1/sync`).then((r) => r.json())) as { fetches: unknown[] }).fetches.length === 0);
}, 60_000);

afterAll(async () => {
  await berth?.[Symbol.asyncDispose]();
  await upstream?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  rmSync(work, { recursive: true, force: true });
});

async function syncInfo() {
  return (await (await fetch(`${berth.url}/api/v1/sync`)).json()) as { registries: { state: string; lastError: string | null }[] };
}

describe("offline first", () => {
  test("with the upstream down, cached content is served fast and misses fail with a clear 503", async () => {
    await upstream.stop();
    // misses: the first ones find the upstream unreachable, then it is marked down
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${berth.url}/v2/team/other/manifests/v1`, { headers: ACCEPT });
      expect(res.status).toBe(503);
      const err = ((await res.json()) as { errors: { code: string; detail: string }[] }).errors[0]!;
      expect(err.code).toBe("UNKNOWN");
      expect(err.detail).toMatch(/^upstream up: (unreachable|unreachable since)/);
    }
    expect((await syncInfo()).registries[0]!.state).toBe("down");
    // A listener on the upstream's port that reads requests and never answers: a cached pull
    // that asked the upstream anything would show here (and hang until berth's timeout).
    const asked: string[] = [];
    const blackhole = Bun.listen({
      hostname: "127.0.0.1",
      port: Number(new URL(upstream.url).port),
      socket: { data: (_socket, data) => void asked.push(...data.toString().split("\r\n").filter((l) => /^[A-Z]+ \//.test(l))) },
    });
    try {
      // cached pulls: a real client pull succeeds, byte-exact, without a word to the upstream
      await skopeo.ok(["copy", "--src-tls-verify=false", `docker://${berth.host}/team/app:v1`, `oci:${join(work, "offline")}:v1`]);
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${berth.url}/v2/team/app/manifests/v1`, { headers: ACCEPT });
        expect(res.status).toBe(200);
        expect(res.headers.get("docker-content-digest")).toBe(img.digest);
      }
      const pulled = JSON.parse(readFileSync(join(work, "offline", "index.json"), "utf8")) as { manifests: { digest: string }[] };
      expect(pulled.manifests.map((m) => m.digest)).toEqual([img.digest]);
      // the breaker's probes may reach the listener; nothing about team/app may
      expect(asked.filter((l) => l.includes("/team/app/"))).toEqual([]);
    } finally {
      blackhole.stop(true);
    }
  }, 60_000);

  test("when the upstream comes back, berth notices by itself and pulls through again", async () => {
    await upstream.restart();
    await waitFor("the upstream to be marked up", async () => (await syncInfo()).registries[0]!.state === "up", 10_000);
    const res = await fetch(`${berth.url}/v2/team/other/manifests/v1`, { headers: ACCEPT });
    expect(res.status).toBe(200);
  }, 30_000);

  test("the tag re-check time survives a restart: a cached tag is not re-checked early", async () => {
    await berth.stop();
    await berth[Symbol.asyncDispose]();
    berth = await startDaemon({ root, extra: config() });
    const before = upstream.requests().length;
    for (let i = 0; i < 3; i++) expect((await fetch(`${berth.url}/v2/team/app/manifests/v1`, { headers: ACCEPT })).status).toBe(200);
    expect(upstream.requests().slice(before).filter((r) => r.uri.includes("/team/app/"))).toEqual([]);
  }, 30_000);
});
