/**
 * containerd's ctr (1.6) against the real berth daemon: pulls of single- and multi-arch
 * images, pushes back to new repositories (checked byte-exact), and ctr's habit of trying
 * cross-repository mounts from sources that do not exist (berth must answer 202 + session).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import {
  type Containerd,
  type Fixtures,
  Skopeo,
  buildFixtures,
  getManifest,
  headBlob,
  layoutBlob,
  layoutBlobs,
  layoutTag,
  makeTemp,
  parseManifest,
  sha256,
  startContainerd,
} from "../helpers/clients";

setDefaultTimeout(60_000);

let daemon: Daemon;
let ctd: Containerd;
let skopeo: Skopeo;
let work: string;
let fx: Fixtures;

beforeAll(async () => {
  work = makeTemp("berth-e2e-ctr-");
  skopeo = new Skopeo();
  [fx, daemon, ctd] = await Promise.all([buildFixtures(join(work, "fixtures")), startDaemon(), startContainerd()]);
  const push = (src: string, dest: string, ...flags: string[]) =>
    skopeo.ok(["copy", "-q", "--dest-tls-verify=false", ...flags, `oci:${src}`, `docker://${daemon.host}/${dest}`]);
  await push(`${fx.single}:v1`, "c/single:v1");
  await push(`${fx.multi}:v1`, "c/multi:v1", "--all");
}, 60_000);

afterAll(async () => {
  await ctd?.[Symbol.asyncDispose]();
  await daemon?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** ref -> target digest, from `ctr images ls`. */
async function images(): Promise<Map<string, string>> {
  const r = await ctd.ctrOk(["images", "ls"]);
  const out = new Map<string, string>();
  for (const line of r.stdout.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length >= 3) out.set(cols[0]!, cols[2]!);
  }
  return out;
}

/** Digests in containerd's content store. */
async function content(): Promise<Set<string>> {
  const r = await ctd.ctrOk(["content", "ls", "-q"]);
  return new Set(r.stdout.split("\n").map((l) => l.trim()).filter(Boolean));
}

describe("ctr pull", () => {
  test("single-arch image, unpacked", async () => {
    const tag = layoutTag(fx.single, "v1");
    const ref = `${daemon.host}/c/single:v1`;
    await ctd.ctrOk(["images", "pull", "--plain-http", ref]);
    expect((await images()).get(ref)).toBe(tag.digest);
    const have = await content();
    for (const digest of layoutBlobs(fx.single).keys()) expect(have).toContain(digest);
    // the unpacked image passes containerd's own diff_id verification
    const check = await ctd.ctrOk(["images", "check"]);
    expect(check.stdout).toMatch(new RegExp(`${ref.replaceAll(".", "\\.")}\\s.*complete`));
  });

  test("multi-arch image with --all-platforms fetches every platform", async () => {
    const tag = layoutTag(fx.multi, "v1");
    const ref = `${daemon.host}/c/multi:v1`;
    await ctd.ctrOk(["images", "pull", "--plain-http", "--all-platforms", ref]);
    expect((await images()).get(ref)).toBe(tag.digest);
    const have = await content();
    const blobs = layoutBlobs(fx.multi);
    expect(blobs.size).toBe(7);
    for (const digest of blobs.keys()) expect(have).toContain(digest);
  });

  test("a missing tag fails with not found", async () => {
    const r = await ctd.ctr(["images", "pull", "--plain-http", `${daemon.host}/c/single:nope`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("not found");
  });
});

describe("ctr push", () => {
  test("pushing a pulled multi-arch image to a new repository is byte-exact", async () => {
    const tag = layoutTag(fx.multi, "v1");
    const ref = `${daemon.host}/c/pushed:all`;
    await ctd.ctrOk(["images", "tag", `${daemon.host}/c/multi:v1`, ref]);
    await ctd.ctrOk(["images", "push", "--plain-http", ref]);

    const got = await getManifest(daemon.url, "c/pushed", "all");
    expect(got.status).toBe(200);
    expect(got.contentType).toBe("application/vnd.oci.image.index.v1+json");
    expect(got.bytes).toEqual(layoutBlob(fx.multi, tag.digest));
    expect(await skopeo.rawManifest(`${daemon.host}/c/pushed:all`)).toEqual(layoutBlob(fx.multi, tag.digest));
    for (const child of parseManifest(got.bytes).manifests!) {
      const m = await getManifest(daemon.url, "c/pushed", child.digest);
      expect(m.status).toBe(200);
      expect(sha256(m.bytes)).toBe(child.digest);
      const doc = parseManifest(m.bytes);
      for (const blob of [doc.config!, ...doc.layers!]) expect(await headBlob(daemon.url, "c/pushed", blob.digest)).toBe(200);
    }
  });

  test("a push whose mount source does not exist falls back to an upload", async () => {
    const tag = layoutTag(fx.single, "v1");
    const doc = parseManifest(layoutBlob(fx.single, tag.digest));
    const blobs = [doc.config!.digest, ...doc.layers!.map((l) => l.digest)];
    // point containerd's idea of where these blobs came from at repositories berth does not have
    for (const digest of blobs) {
      await ctd.ctrOk(["content", "label", digest, "containerd.io/distribution.source.127.0.0.1=ghost/nowhere"]);
    }
    const ref = `${daemon.host}/c/bogus:v1`;
    await ctd.ctrOk(["images", "tag", `${daemon.host}/c/single:v1`, ref]);
    const push = await ctd.ctrOk(["images", "push", "--plain-http", "--http-dump", ref]);
    const dump = push.stdout + push.stderr;
    const count = (re: RegExp) => dump.match(new RegExp(re.source, "g"))?.length ?? 0;
    // ctr tried to mount each blob from the bogus source ...
    expect(count(/POST \/v2\/c\/bogus\/blobs\/uploads\/\?mount=sha256:[0-9a-f]{64}&from=ghost(\/|%2F)nowhere /)).toBe(blobs.length);
    // ... got an upload session for each (202 + Location), and finished them with one PUT each
    expect(count(/HTTP\/1\.1 202 Accepted/)).toBe(blobs.length);
    expect(count(/Location: \/v2\/c\/bogus\/blobs\/uploads\/[^\s"]+/)).toBe(blobs.length);
    expect(count(/PUT \/v2\/c\/bogus\/blobs\/uploads\/[^\s]*\?digest=sha256%3A[0-9a-f]{64} /)).toBe(blobs.length);

    expect(await skopeo.rawManifest(`${daemon.host}/c/bogus:v1`)).toEqual(layoutBlob(fx.single, tag.digest));
    for (const digest of blobs) expect(await headBlob(daemon.url, "c/bogus", digest)).toBe(200);
  });

  test("POST with mount= from a missing or invalid repository answers 202 with a session; without from it mounts from the pool", async () => {
    const layer = parseManifest(layoutBlob(fx.single, layoutTag(fx.single, "v1").digest)).layers![0]!.digest;
    for (const from of ["no/such/repo", "Not..A..Name"]) {
      const res = await fetch(`${daemon.url}/v2/c/direct/blobs/uploads/?mount=${encodeURIComponent(layer)}&from=${encodeURIComponent(from)}`, { method: "POST" });
      // a bogus from must not fail the request: the client gets a session to upload into
      expect(res.status).toBe(202);
      const loc = res.headers.get("location");
      expect(loc).toMatch(/\/v2\/c\/direct\/blobs\/uploads\/[^/]+/);
      const status = await fetch(new URL(loc!, daemon.url), { method: "GET" });
      expect(status.status).toBe(204);
      expect((await fetch(new URL(loc!, daemon.url), { method: "DELETE" })).status).toBe(204);
      expect(await headBlob(daemon.url, "c/direct", layer)).toBe(404);
    }
    // c/single holds the layer but was not named: berth finds it in its pool (201), and the
    // target then holds it.
    const res = await fetch(`${daemon.url}/v2/c/direct/blobs/uploads/?mount=${encodeURIComponent(layer)}`, { method: "POST" });
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe(`/v2/c/direct/blobs/${layer}`);
    expect(await headBlob(daemon.url, "c/direct", layer)).toBe(200);
  });
});
