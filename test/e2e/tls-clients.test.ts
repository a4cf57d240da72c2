/**
 * Push and pull over TLS with a real client (issue 15): the daemon serves HTTPS with a
 * certificate from a test CA (test/helpers/pki.ts); skopeo trusts that CA through a
 * certificate directory (no --tls-verify=false anywhere) and copies an image with a 64 MiB
 * layer in and out. Over TLS the daemon cannot hand a blob to sendfile: the large layer is
 * what proves the encrypted streaming path both ways, byte for byte. A client that does not
 * trust the CA is refused at the handshake and nothing is stored.
 *
 * podman is not used: podman pull unpacks layers into its storage, and these layers are
 * random bytes, not tar archives; skopeo exercises the same containers/image transport.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Skopeo, layoutBlobs, makeTemp, sha256 } from "../helpers/clients";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { type Pki, makePki } from "../helpers/pki";
import { type BuiltImage, buildLayout } from "../helpers/upstream";

let pki: Pki;
let d: Daemon;
let skopeo: Skopeo;
let work: string;
let certs: string;
let image: BuiltImage;

beforeAll(async () => {
  pki = makePki();
  d = await startDaemon({ http: `tls_cert = "${pki.server.cert}"\ntls_key = "${pki.server.key}"\n` });
  skopeo = new Skopeo();
  work = makeTemp("berth-tls-clients-");
  certs = join(work, "certs");
  mkdirSync(certs);
  copyFileSync(pki.ca, join(certs, "ca.crt")); // containers/image: *.crt in the directory are trusted CAs
  image = buildLayout(join(work, "src"), "v1", ["linux/amd64"], [64 << 20, 3000]);
}, 60_000);

afterAll(async () => {
  await d?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  pki?.[Symbol.dispose]();
});

describe("TLS with a real client", () => {
  test("skopeo pushes and pulls an image with a 64 MiB layer over HTTPS, verifying the test CA", async () => {
    await skopeo.ok(["copy", "-q", "--dest-cert-dir", certs, `oci:${join(work, "src")}:v1`, `docker://${d.host}/secure/app:v1`]);
    const served = await skopeo.ok(["inspect", "--raw", "--cert-dir", certs, `docker://${d.host}/secure/app:v1`]);
    expect(sha256(served.stdout)).toBe(image.digest);
    await skopeo.ok(["copy", "-q", "--src-cert-dir", certs, `docker://${d.host}/secure/app:v1`, `oci:${join(work, "back")}:v1`]);
    const blobs = layoutBlobs(join(work, "back"));
    for (const digest of image.platforms["linux/amd64"]!.blobs) {
      expect(blobs.has(digest)).toBe(true);
      expect(sha256(readFileSync(join(work, "back/blobs/sha256", digest.slice(7))))).toBe(digest);
    }
    expect(readFileSync(join(work, "back/blobs/sha256", image.platforms["linux/amd64"]!.blobs[1]!.slice(7))).byteLength).toBeGreaterThan(64 << 20);
  }, 120_000);

  test("a client that does not trust the CA is refused at the handshake; nothing is stored", async () => {
    const other = join(work, "other-certs");
    mkdirSync(other);
    const r = await skopeo.run(["copy", "-q", "--dest-cert-dir", other, `oci:${join(work, "src")}:v1`, `docker://${d.host}/untrusted/app:v1`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/certificate|x509/i);
    const res = await fetch(`https://${d.host}/v2/untrusted/app/tags/list`, { tls: { ca: readFileSync(pki.ca, "utf8") } } as RequestInit);
    expect(res.status).toBe(404);
  }, 60_000);
});
