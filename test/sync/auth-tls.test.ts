/**
 * Credentials and TLS toward a real upstream: docker-registry with htpasswd (bcrypt) auth
 * behind TLS with an openssl-made CA. Right credentials and a trusted CA pull through;
 * wrong credentials and an untrusted CA give clear errors, never "manifest unknown".
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startDaemon } from "../helpers/daemon";
import { Skopeo, catalog, makeTemp, sha256, waitFor } from "../helpers/clients";
import { type BuiltImage, type UpstreamRegistry, buildLayout, makeCertificates, startUpstream } from "../helpers/upstream";

let upstream: UpstreamRegistry;
let skopeo: Skopeo;
let work: string;
let certs: Awaited<ReturnType<typeof makeCertificates>>;
let img: BuiltImage;
const ACCEPT = { Accept: "application/vnd.oci.image.manifest.v1+json" };

beforeAll(async () => {
  work = makeTemp("berth-auth-");
  certs = await makeCertificates(work);
  upstream = await startUpstream({ auth: { username: "edge", password: "s3cret" }, tls: { cert: certs.cert, key: certs.key } });
  skopeo = new Skopeo();
  img = buildLayout(join(work, "app"), "v1", ["linux/amd64"], [5000]);
  await skopeo.ok(["copy", "--dest-tls-verify=false", "--dest-creds", "edge:s3cret", `oci:${join(work, "app")}:v1`, `docker://${upstream.host}/team/app:v1`]);
  writeFileSync(join(work, "good.toml"), 'username = "edge"\npassword = "s3cret"\n');
  writeFileSync(join(work, "bad.toml"), 'username = "edge"\npassword = "wrong"\n');
}, 60_000);

afterAll(async () => {
  await upstream?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  rmSync(work, { recursive: true, force: true });
});

const registry = (creds: string, ca: string) =>
  `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "secure"\nurls = ["${upstream.url}"]\ncredentials_file = "${join(work, creds)}"\nca_file = "${ca}"\n`;

describe("credentials and TLS", () => {
  test("with the right credentials and a trusted CA, a pull goes through", async () => {
    await using berth = await startDaemon({ extra: registry("good.toml", certs.ca) });
    const out = join(work, "out");
    await skopeo.ok(["copy", "--src-tls-verify=false", `docker://${berth.host}/team/app:v1`, `oci:${out}:v1`]);
    const pulled = JSON.parse(readFileSync(join(out, "index.json"), "utf8")) as { manifests: { digest: string }[] };
    expect(pulled.manifests.map((m) => m.digest)).toEqual([img.digest]);
    const res = await fetch(`${berth.url}/v2/team/app/manifests/v1`, { headers: ACCEPT });
    expect(res.status).toBe(200);
    expect(res.headers.get("docker-content-digest")).toBe(img.digest);
    expect(sha256(new Uint8Array(await res.arrayBuffer()))).toBe(img.digest);
    // stored by berth, not only relayed
    const stored = () => {
      try {
        return (JSON.parse(readFileSync(join(berth.root, "team/app/index.json"), "utf8")) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest);
      } catch {
        return [];
      }
    };
    await waitFor("the image to be in berth's layout", () => stored().includes(img.digest));
  }, 60_000);

  test("wrong credentials: DENIED (502) saying the upstream refused berth", async () => {
    await using berth = await startDaemon({ extra: registry("bad.toml", certs.ca) });
    const res = await fetch(`${berth.url}/v2/team/app/manifests/v1`, { headers: ACCEPT });
    expect(res.status).toBe(502);
    const err = ((await res.json()) as { errors: { code: string; detail: string }[] }).errors[0]!;
    expect(err.code).toBe("DENIED");
    expect(err.detail).toContain("upstream secure: refused berth's credentials (401)");
    expect(await catalog(berth.url)).toEqual([]);
  }, 30_000);

  test("an untrusted CA: UNKNOWN (502) saying the TLS certificate is not trusted", async () => {
    await using berth = await startDaemon({ extra: registry("good.toml", certs.otherCa) });
    const res = await fetch(`${berth.url}/v2/team/app/manifests/v1`, { headers: ACCEPT });
    expect(res.status).toBe(502);
    const err = ((await res.json()) as { errors: { code: string; detail: string }[] }).errors[0]!;
    expect(err.code).toBe("UNKNOWN");
    expect(err.detail).toMatch(/^upstream secure: TLS certificate not trusted/);
    const blob = await fetch(`${berth.url}/v2/team/app/blobs/${img.digest}`);
    expect(blob.status).toBe(502);
    expect(((await blob.json()) as { errors: { detail: string }[] }).errors[0]!.detail).toMatch(/^upstream secure: TLS certificate not trusted/);
    expect(await catalog(berth.url)).toEqual([]);
  }, 30_000);

  test("a missing credentials file stops start-up with a message naming it", async () => {
    const bad = startDaemon({ extra: registry("missing.toml", certs.ca) });
    await expect(bad).rejects.toThrow(/credentials file .*missing\.toml/);
  }, 30_000);
});
