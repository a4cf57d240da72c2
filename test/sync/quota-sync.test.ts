/**
 * Quota and the free-space floor apply to what sync fetches, not only to pushes (issue 15):
 * against the real daemon and a scripted fake upstream, a pull-through GET of a layer larger
 * than `[quota] max_bytes` (nothing evictable to make room) and a scheduled sync of the same
 * image are refused; nothing of the layer is stored; the refusal names the quota (the OCI
 * error's detail or a warn line of the log); and a small image that fits still syncs.
 * Then the same with `min_free = "100%"` (no byte may be added).
 *
 * Written before sync fetches went through the one ingest path: on that code these tests
 * failed (the fetch wrote the layer whatever the quota). Now every fetch is admitted.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { syncView, waitFor } from "../helpers/clients";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fakeupstream";

const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";

function image(layerBytes: number) {
  const config = new TextEncoder().encode(JSON.stringify({ architecture: "amd64", os: "linux", nonce: randomBytes(8).toString("hex") }));
  const layer = randomBytes(layerBytes);
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.byteLength },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha(layer), size: layer.byteLength }],
  }));
  return { config, layer, manifest, digest: sha(manifest), layerDigest: sha(layer) };
}

const QUOTA = 1 << 20;
const images = { big: image(2 << 20), small: image(4096) };
const REFUSAL = /storage quota exceeded|not enough free space/;

let fake: FakeUpstream;
beforeAll(() => {
  fake = startFakeUpstream((_req, path) => {
    const m = /^\/v2\/lib\/(big|small)\/(manifests|blobs|tags)\/(.+)$/.exec(path);
    if (!m) return undefined;
    const img = images[m[1] as "big" | "small"];
    if (m[2] === "tags") return Response.json({ name: `lib/${m[1]}`, tags: ["v1"] });
    if (m[2] === "manifests") return new Response(img.manifest, { headers: { "content-type": MANIFEST, "docker-content-digest": img.digest } });
    if (m[3] === sha(img.config)) return new Response(img.config);
    if (m[3] === img.layerDigest) return new Response(img.layer);
    return undefined;
  });
});
afterAll(async () => {
  await fake?.[Symbol.asyncDispose]();
});

/** Bytes of every file under the store's repositories and pool (not the metadata database). */
function storedBytes(root: string): number {
  let total = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\/blobs\/sha(256|512)\//.test(p) || p.includes("/.berth/pool/")) total += statSync(p).size;
    }
  };
  walk(root);
  return total;
}

const registry = (onDemand: boolean) =>
  `[[sync.registries]]\nname = "fake"\nurls = ["${fake.url}"]\nrepos = ["lib/big", "lib/small"]\ntimeout_ms = 2000\nretries = 0\nbreaker_failures = 1000\non_demand = ${onDemand}\n`;

/** The daemon has no fetch in flight (a refused or finished fetch has left the table). */
const settled = (d: Daemon) => waitFor("fetches to settle", async () => (await syncView(d.url)).fetches.length === 0, 4_000);

/** The refusal is named: in the error the client got, or in a warn line of the log. */
function refusalNamed(d: Daemon, detail: string): boolean {
  return REFUSAL.test(detail) || d.logs().split("\n").some((l) => /"level":"(warn|error)"/.test(l) && REFUSAL.test(l));
}

for (const [limit, quotaToml] of [["max_bytes", `[quota]\nmax_bytes = ${QUOTA}\nmin_free = "0%"\n`], ["min_free", `[quota]\nmin_free = "100%"\n`]] as const) {
  describe(`sync fetches are admitted like pushes (${limit})`, () => {
    test("pull-through: a layer that does not fit is refused with an OCI error, and nothing of it is stored", async () => {
      await using d = await startDaemon({ extra: `${quotaToml}${registry(true)}` });
      const img = images.big;
      const res = await fetch(`${d.url}/v2/lib/big/blobs/${img.layerDigest}`, { signal: AbortSignal.timeout(4_000) });
      let detail = "";
      if (res.ok) {
        // a 200 must not be the layer's bytes: on main the fetch streams and stores it
        const body = new Uint8Array(await res.arrayBuffer().catch(() => new ArrayBuffer(0)));
        expect(sha(body)).not.toBe(img.layerDigest);
      } else {
        expect(res.status).toBeGreaterThanOrEqual(400);
        const body = (await res.json()) as { errors: { code: string; detail: string }[] };
        expect(body.errors[0]!.code.length).toBeGreaterThan(0);
        detail = body.errors[0]!.detail ?? "";
      }
      await settled(d);
      expect(existsSync(join(d.root, "lib/big/blobs/sha256", img.layerDigest.slice(7)))).toBe(false);
      expect(storedBytes(d.root)).toBeLessThan(img.layer.byteLength);
      expect(refusalNamed(d, detail)).toBe(true);
    });

    test("scheduled sync: the run fails for the image that does not fit, stores nothing of its layer", async () => {
      await using d = await startDaemon({ extra: `${quotaToml}${registry(false)}` });
      expect((await fetch(`${d.url}/api/v1/sync/fake/run`, { method: "POST" })).status).toBe(202);
      await waitFor("the sync run to end", async () => (await syncView(d.url)).registries[0]!.lastRun !== null, 4_000);
      await settled(d);
      const run = (await syncView(d.url)).registries[0]!.lastRun!;
      expect(run.error).toBeUndefined(); // the run itself went through: big failed, small synced (below)
      expect(run.report?.failed ?? 0).toBeGreaterThanOrEqual(1);
      expect(existsSync(join(d.root, "lib/big/blobs/sha256", images.big.layerDigest.slice(7)))).toBe(false);
      expect(storedBytes(d.root)).toBeLessThan(images.big.layer.byteLength);
      expect(refusalNamed(d, "")).toBe(true);
      if (limit === "max_bytes") {
        // what fits is still synced
        expect(existsSync(join(d.root, "lib/small/blobs/sha256", images.small.layerDigest.slice(7)))).toBe(true);
      }
    });
  });
}
