/**
 * podman (4.3, root, vfs, isolated through iso.sh) against the real berth daemon: push an
 * imported image and pull it back, push as Docker v2s2, and push a manifest list with
 * `manifest push --all`.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import {
  type Fixtures,
  Podman,
  Skopeo,
  buildFixtures,
  getManifest,
  headBlob,
  layoutBlob,
  layoutTag,
  listTags,
  makeTemp,
  parseManifest,
  sha256,
} from "../helpers/clients";
import { DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST } from "../../daemon/oci/mediatypes";

setDefaultTimeout(60_000);

let daemon: Daemon;
let podman: Podman;
let skopeo: Skopeo;
let work: string;
let fx: Fixtures;
/** Image ID (config digest, hex) of the imported rootfs. */
let imageId: string;

beforeAll(async () => {
  work = makeTemp("berth-e2e-podman-");
  skopeo = new Skopeo();
  [fx, daemon] = await Promise.all([buildFixtures(join(work, "fixtures")), startDaemon()]);
  podman = new Podman([daemon.host]);
  const r = await podman.ok(["import", "--quiet", "--change", 'CMD ["/hi.txt"]', fx.rootfs, `${daemon.host}/p/imported:v1`]);
  imageId = r.stdout.trim().replace(/^sha256:/, "");
  expect(imageId).toMatch(/^[0-9a-f]{64}$/);
}, 60_000);

afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
  podman?.[Symbol.dispose]();
  skopeo?.[Symbol.dispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** ID (config digest, hex) and repo digests of a local image. */
async function inspect(ref: string): Promise<{ id: string; repoDigests: string[] }> {
  const r = await podman.ok(["image", "inspect", ref]);
  const [img] = JSON.parse(r.stdout) as { Id: string; RepoDigests: string[] }[];
  return { id: img!.Id, repoDigests: img!.RepoDigests };
}

async function pushed(name: string, tag: string, digestFile: string) {
  const digest = readFileSync(digestFile, "utf8").trim();
  expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  const got = await getManifest(daemon.url, name, tag);
  expect(got.status).toBe(200);
  expect(sha256(got.bytes)).toBe(digest);
  expect(got.digestHeader).toBe(digest);
  return { digest, got, doc: parseManifest(got.bytes) };
}

describe("podman push / pull", () => {
  test("an imported image pushes as OCI and pulls back as the same image", async () => {
    const ref = `${daemon.host}/p/imported:v1`;
    const digestFile = join(work, "imported.digest");
    await podman.ok(["push", "--tls-verify=false", "--format", "oci", "--digestfile", digestFile, ref]);
    const { digest, got, doc } = await pushed("p/imported", "v1", digestFile);
    expect(got.contentType).toBe(OCI_MANIFEST);
    expect(doc.config?.digest).toBe(`sha256:${imageId}`);
    expect(doc.layers?.length).toBe(1);

    // the config berth serves is the one podman holds; its layer is the imported tarball
    const config = await fetch(`${daemon.url}/v2/p/imported/blobs/${doc.config!.digest}`);
    expect(config.status).toBe(200);
    const configBytes = new Uint8Array(await config.arrayBuffer());
    expect(sha256(configBytes)).toBe(doc.config!.digest);
    const cfg = JSON.parse(new TextDecoder().decode(configBytes)) as { rootfs: { diff_ids: string[] }; config: { Cmd: string[] } };
    expect(cfg.rootfs.diff_ids).toEqual([sha256(readFileSync(fx.rootfs))]);
    expect(cfg.config.Cmd).toEqual(["/hi.txt"]);
    expect(await headBlob(daemon.url, "p/imported", doc.layers![0]!.digest)).toBe(200);

    await podman.ok(["rmi", ref]);
    expect((await podman.run(["image", "exists", ref])).code).toBe(1);
    await podman.ok(["pull", "--quiet", "--tls-verify=false", ref]);
    const local = await inspect(ref);
    expect(local.id).toBe(imageId);
    expect(local.repoDigests).toContain(`${daemon.host}/p/imported@${digest}`);
  });

  test("--format v2s2 pushes a Docker manifest that pulls back", async () => {
    const digestFile = join(work, "v2s2.digest");
    await podman.ok([
      "push", "--tls-verify=false", "--format", "v2s2", "--digestfile", digestFile,
      `${daemon.host}/p/imported:v1`, `docker://${daemon.host}/p/imported:v2s2`,
    ]);
    const { digest, got, doc } = await pushed("p/imported", "v2s2", digestFile);
    expect(got.contentType).toBe(DOCKER_MANIFEST);
    expect(doc.mediaType).toBe(DOCKER_MANIFEST);
    expect(doc.config?.mediaType).toBe("application/vnd.docker.container.image.v1+json");
    expect(await listTags(daemon.url, "p/imported")).toEqual(["v1", "v2s2"]);

    const ref = `${daemon.host}/p/imported:v2s2`;
    await podman.ok(["pull", "--quiet", "--tls-verify=false", ref]);
    const local = await inspect(ref);
    expect(local.repoDigests).toContain(`${daemon.host}/p/imported@${digest}`);
    expect(local.id).toBe(doc.config!.digest.replace(/^sha256:/, ""));
  });

  test("manifest push --all pushes a two-platform list", async () => {
    const src = layoutTag(fx.multi, "v1");
    const children = parseManifest(layoutBlob(fx.multi, src.digest)).manifests!;
    await skopeo.ok(["copy", "-q", "--all", "--dest-tls-verify=false", `oci:${fx.multi}:v1`, `docker://${daemon.host}/p/src:multi`]);

    const list = `${daemon.host}/p/list:v1`;
    await podman.ok(["manifest", "create", list]);
    await podman.ok(["manifest", "add", "--all", "--tls-verify=false", list, `docker://${daemon.host}/p/src:multi`]);
    const digestFile = join(work, "list.digest");
    await podman.ok(["manifest", "push", "--all", "--tls-verify=false", "--digestfile", digestFile, list, `docker://${list}`]);

    const { got, doc } = await pushed("p/list", "v1", digestFile);
    expect(got.contentType).toBe(OCI_INDEX);
    expect(doc.manifests?.map((m) => m.platform?.architecture).sort()).toEqual(["amd64", "arm64"]);
    // the instances are the original manifests, byte for byte
    expect(doc.manifests!.map((m) => m.digest).sort()).toEqual(children.map((m) => m.digest).sort());
    for (const child of doc.manifests!) {
      const m = await getManifest(daemon.url, "p/list", child.digest);
      expect(m.status).toBe(200);
      expect(m.bytes).toEqual(layoutBlob(fx.multi, child.digest));
      const inner = parseManifest(m.bytes);
      for (const blob of [inner.config!, ...inner.layers!]) expect(await headBlob(daemon.url, "p/list", blob.digest)).toBe(200);
    }
  });
});
