/**
 * skopeo (1.9.3, isolated through iso.sh) against the real berth daemon: OCI layouts in and
 * out byte-exact, multi-arch indexes, Docker v2s2 manifests and lists, copies between
 * repositories (deduplicated to one inode), delete, sync, list-tags and inspect --raw.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import {
  type Fixtures,
  Skopeo,
  buildFixtures,
  getManifest,
  headBlob,
  layoutBlob,
  layoutBlobs,
  layoutTag,
  listTags,
  makeTemp,
  parseManifest,
  sha256,
} from "../helpers/clients";
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST as DOCKER_LIST, OCI_INDEX, OCI_MANIFEST } from "../../daemon/oci/mediatypes";

setDefaultTimeout(60_000);

let daemon: Daemon;
let skopeo: Skopeo;
let work: string;
let fx: Fixtures;

const text = (b: Uint8Array) => new TextDecoder().decode(b);

beforeAll(async () => {
  work = makeTemp("berth-e2e-skopeo-");
  skopeo = new Skopeo();
  [fx, daemon] = await Promise.all([buildFixtures(join(work, "fixtures")), startDaemon()]);
});

afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** skopeo copy with the TLS flags for berth on both sides. */
async function copy(src: string, dest: string, ...flags: string[]): Promise<void> {
  await skopeo.ok(["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", ...flags, src, dest]);
}

/** Inode of a blob file in a repository's layout under berth's root. */
function blobStat(repo: string, digest: string) {
  const [alg, hex] = digest.split(":");
  return statSync(join(daemon.root, repo, "blobs", alg!, hex!));
}

describe("OCI layout round trip", () => {
  test("single-arch: oci: -> berth -> oci: keeps every blob and the manifest digest", async () => {
    const tag = layoutTag(fx.single, "v1");
    await copy(`oci:${fx.single}:v1`, `docker://${daemon.host}/s/single:v1`);

    const got = await getManifest(daemon.url, "s/single", "v1");
    expect(got.status).toBe(200);
    expect(got.digestHeader).toBe(tag.digest);
    expect(got.contentType).toBe(OCI_MANIFEST);
    expect(sha256(got.bytes)).toBe(tag.digest);
    expect(got.bytes).toEqual(layoutBlob(fx.single, tag.digest));

    const out = join(work, "out-single");
    await copy(`docker://${daemon.host}/s/single:v1`, `oci:${out}:v1`);
    expect(layoutTag(out, "v1").digest).toBe(tag.digest);
    const before = layoutBlobs(fx.single);
    const after = layoutBlobs(out);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [digest, content] of after) {
      expect(content).toBe(digest); // each file hashes to its name
      expect(content).toBe(before.get(digest)!);
    }
    expect(before.size).toBe(3); // manifest, config, one layer
  });

  test("multi-arch: copy --all keeps the index digest and both platforms", async () => {
    const tag = layoutTag(fx.multi, "v1");
    const index = parseManifest(layoutBlob(fx.multi, tag.digest));
    expect(index.manifests?.length).toBe(2);
    await copy(`oci:${fx.multi}:v1`, `docker://${daemon.host}/s/multi:v1`, "--all");

    const got = await getManifest(daemon.url, "s/multi", "v1");
    expect(got.status).toBe(200);
    expect(got.contentType).toBe(OCI_INDEX);
    expect(sha256(got.bytes)).toBe(tag.digest);
    for (const child of index.manifests!) {
      const m = await getManifest(daemon.url, "s/multi", child.digest);
      expect(m.status).toBe(200);
      expect(m.contentType).toBe(OCI_MANIFEST);
      expect(sha256(m.bytes)).toBe(child.digest);
      const doc = parseManifest(m.bytes);
      for (const blob of [doc.config!, ...doc.layers!]) expect(await headBlob(daemon.url, "s/multi", blob.digest)).toBe(200);
    }
    expect(index.manifests!.map((m) => m.platform?.architecture).sort()).toEqual(["amd64", "arm64"]);

    const out = join(work, "out-multi");
    await copy(`docker://${daemon.host}/s/multi:v1`, `oci:${out}:v1`, "--all");
    expect(layoutTag(out, "v1").digest).toBe(tag.digest);
    const before = layoutBlobs(fx.multi);
    const after = layoutBlobs(out);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [digest, content] of after) expect(content).toBe(digest);
    expect(after.size).toBe(7); // index + 2 x (manifest, config, layer)
  });

  test("inspect --raw returns the stored manifests byte for byte", async () => {
    const single = layoutTag(fx.single, "v1");
    expect(await skopeo.rawManifest(`${daemon.host}/s/single:v1`)).toEqual(layoutBlob(fx.single, single.digest));
    const multi = layoutTag(fx.multi, "v1");
    expect(await skopeo.rawManifest(`${daemon.host}/s/multi:v1`)).toEqual(layoutBlob(fx.multi, multi.digest));
    const child = parseManifest(layoutBlob(fx.multi, multi.digest)).manifests![1]!;
    expect(await skopeo.rawManifest(`${daemon.host}/s/multi@${child.digest}`)).toEqual(layoutBlob(fx.multi, child.digest));
  });
});

describe("Docker schema 2", () => {
  test("--format v2s2 stores and serves a Docker manifest", async () => {
    await copy(`oci:${fx.single}:v1`, `docker://${daemon.host}/s/docker:v1`, "--format", "v2s2");
    const raw = await skopeo.rawManifest(`${daemon.host}/s/docker:v1`);
    const doc = parseManifest(raw);
    expect(doc.mediaType).toBe(DOCKER_MANIFEST);
    expect(doc.config?.mediaType).toBe("application/vnd.docker.container.image.v1+json");
    expect(doc.layers?.[0]?.mediaType).toBe("application/vnd.docker.image.rootfs.diff.tar.gzip");

    const got = await getManifest(daemon.url, "s/docker", "v1");
    expect(got.status).toBe(200);
    expect(got.contentType).toBe(DOCKER_MANIFEST);
    expect(got.bytes).toEqual(raw);
    expect(got.digestHeader).toBe(sha256(raw));
    const head = await getManifest(daemon.url, "s/docker", got.digestHeader!, "HEAD");
    expect(head.status).toBe(200);
    expect(head.contentType).toBe(DOCKER_MANIFEST);

    // and it pulls back out as the same Docker manifest
    const out = join(work, "out-docker");
    await copy(`docker://${daemon.host}/s/docker:v1`, `dir:${out}`);
    expect(new Uint8Array(readFileSync(join(out, "manifest.json")))).toEqual(raw);
  });

  test("copy --all --format v2s2 stores a Docker manifest list", async () => {
    await copy(`oci:${fx.multi}:v1`, `docker://${daemon.host}/s/dockerlist:v1`, "--all", "--format", "v2s2");
    const raw = await skopeo.rawManifest(`${daemon.host}/s/dockerlist:v1`);
    const list = parseManifest(raw);
    expect(list.mediaType).toBe(DOCKER_LIST);
    expect(list.manifests?.map((m) => m.platform?.architecture).sort()).toEqual(["amd64", "arm64"]);

    const got = await getManifest(daemon.url, "s/dockerlist", "v1");
    expect(got.contentType).toBe(DOCKER_LIST);
    expect(got.bytes).toEqual(raw);
    for (const child of list.manifests!) {
      expect(child.mediaType).toBe(DOCKER_MANIFEST);
      const m = await getManifest(daemon.url, "s/dockerlist", child.digest);
      expect(m.status).toBe(200);
      expect(m.contentType).toBe(DOCKER_MANIFEST);
      expect(sha256(m.bytes)).toBe(child.digest);
      expect(m.bytes.byteLength).toBe(child.size);
    }
  });
});

describe("between repositories", () => {
  test("copy to a second repository shares the blob inodes", async () => {
    const tag = layoutTag(fx.single, "v1");
    await copy(`docker://${daemon.host}/s/single:v1`, `docker://${daemon.host}/other/copy:v1`);
    expect(await skopeo.rawManifest(`${daemon.host}/other/copy:v1`)).toEqual(layoutBlob(fx.single, tag.digest));

    const doc = parseManifest(layoutBlob(fx.single, tag.digest));
    const digests = [tag.digest, doc.config!.digest, ...doc.layers!.map((l) => l.digest)];
    for (const digest of digests) {
      const a = blobStat("s/single", digest);
      const b = blobStat("other/copy", digest);
      expect({ digest, ino: b.ino, dev: b.dev }).toEqual({ digest, ino: a.ino, dev: a.dev });
      expect(b.nlink).toBeGreaterThanOrEqual(3); // the pool's link + both repositories
    }
  });

  test("delete removes the tag and leaves other repositories alone", async () => {
    const tag = layoutTag(fx.single, "v1");
    await copy(`oci:${fx.single}:v1`, `docker://${daemon.host}/s/del:v1`);
    expect((await getManifest(daemon.url, "s/del", "v1")).status).toBe(200);
    const nlinkBefore = blobStat("s/single", tag.digest).nlink;

    await skopeo.ok(["delete", "--tls-verify=false", `docker://${daemon.host}/s/del:v1`]);

    const inspect = await skopeo.run(["inspect", "--raw", "--tls-verify=false", `docker://${daemon.host}/s/del:v1`]);
    expect(inspect.code).not.toBe(0);
    expect(inspect.stderr).toMatch(/manifest unknown/i);
    const byTag = await getManifest(daemon.url, "s/del", "v1");
    expect(byTag.status).toBe(404);
    expect(JSON.parse(text(byTag.bytes)).errors[0].code).toBe("MANIFEST_UNKNOWN");
    expect((await getManifest(daemon.url, "s/del", tag.digest)).status).toBe(404);
    expect(await listTags(daemon.url, "s/del")).toEqual([]);

    // the same manifest in s/single is untouched (one link fewer on the shared inode)
    const still = await getManifest(daemon.url, "s/single", "v1");
    expect(still.status).toBe(200);
    expect(sha256(still.bytes)).toBe(tag.digest);
    expect(blobStat("s/single", tag.digest).nlink).toBe(nlinkBefore - 1);
  });
});

describe("tags and sync", () => {
  const single = () => layoutTag(fx.single, "v1").digest;
  const multi = () => layoutTag(fx.multi, "v1").digest;

  beforeAll(async () => {
    await copy(`oci:${fx.single}:v1`, `docker://${daemon.host}/s/syncsrc:v1`);
    await copy(`oci:${fx.multi}:v1`, `docker://${daemon.host}/s/syncsrc:v2`, "--all");
    await copy(`oci:${fx.multi}:v1`, `docker://${daemon.host}/s/syncsrc:latest`, "--all");
  });

  test("list-tags matches what was pushed", async () => {
    const r = await skopeo.ok(["list-tags", "--tls-verify=false", `docker://${daemon.host}/s/syncsrc`]);
    const body = JSON.parse(r.stdout) as { Repository: string; Tags: string[] };
    expect(body.Repository).toBe(`${daemon.host}/s/syncsrc`);
    expect([...body.Tags].sort()).toEqual(["latest", "v1", "v2"]);
    expect(await listTags(daemon.url, "s/syncsrc")).toEqual(["latest", "v1", "v2"]);
  });

  test("sync docker -> docker copies every tag under the new prefix", async () => {
    await skopeo.ok([
      "sync", "--all", "--src", "docker", "--dest", "docker", "--src-tls-verify=false", "--dest-tls-verify=false",
      `${daemon.host}/s/syncsrc`, `${daemon.host}/mirror`,
    ]);
    expect(await listTags(daemon.url, "mirror/syncsrc")).toEqual(["latest", "v1", "v2"]);
    expect(sha256((await getManifest(daemon.url, "mirror/syncsrc", "v1")).bytes)).toBe(single());
    for (const t of ["v2", "latest"]) {
      const got = await getManifest(daemon.url, "mirror/syncsrc", t);
      expect(got.contentType).toBe(OCI_INDEX);
      expect(sha256(got.bytes)).toBe(multi());
    }
    for (const child of parseManifest(layoutBlob(fx.multi, multi())).manifests!) {
      expect((await getManifest(daemon.url, "mirror/syncsrc", child.digest)).status).toBe(200);
    }
  });

  test("sync to dir: and back", async () => {
    const dir = join(work, "syncdir");
    await skopeo.ok(["sync", "--all", "--src", "docker", "--dest", "dir", "--src-tls-verify=false", `${daemon.host}/s/syncsrc`, dir]);
    expect(readdirSync(dir).sort()).toEqual(["syncsrc:latest", "syncsrc:v1", "syncsrc:v2"]);
    expect(sha256(readFileSync(join(dir, "syncsrc:v1", "manifest.json")))).toBe(single());
    expect(sha256(readFileSync(join(dir, "syncsrc:v2", "manifest.json")))).toBe(multi());

    for (const t of ["v1", "v2"]) {
      await skopeo.ok(["sync", "--all", "--src", "dir", "--dest", "docker", "--dest-tls-verify=false", join(dir, `syncsrc:${t}`), `${daemon.host}/fromdir`]);
    }
    const tags = await listTags(daemon.url, "fromdir/syncsrc");
    expect(tags).toEqual(["v1", "v2"]);
    expect(sha256((await getManifest(daemon.url, "fromdir/syncsrc", "v1")).bytes)).toBe(single());
    expect(sha256((await getManifest(daemon.url, "fromdir/syncsrc", "v2")).bytes)).toBe(multi());
  });
});
