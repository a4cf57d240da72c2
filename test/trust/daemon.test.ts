/**
 * Signatures on the daemon (in process, over HTTP): trust status per manifest and per index
 * child, `require_signature` (403 DENIED naming the reason, an audit line, pushes and
 * signatures still landing), keys added and removed through the admin API and zot's upload
 * endpoints (status flips), signatures that arrive before the image, and the trust routes'
 * access control (nothing of a forbidden repository leaks).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { mkdtempSync, writeFileSync } from "node:fs";
import { startDaemon as startBerth } from "../../daemon/main";
import { createLogger } from "../../daemon/log";
import { configOf, basic, writeHtpasswd } from "../helpers/auth";
import { tempDir } from "../helpers/daemon";
import { berth as cli, shown } from "../helpers/cli";
import { der, digestOf, keyPair, makePki, notationJws } from "./fixtures";
import { SIZES, getManifest, pushBlob, pushCosignSignature, pushImage, pushIndex, pushManifest, pushNotationSignature } from "./push";

const ADMIN = basic("root", "root-pw");
const BOB = basic("bob", "bob-pw");

type Berth = Awaited<ReturnType<typeof startBerth>>;

describe("trust on the daemon", () => {
  const dir = tempDir("berth-trust-");
  const pki = makePki();
  const release = keyPair("p256");
  const intruder = keyPair("p256");
  let berth: Berth;
  let url: string;
  const lines: string[] = [];

  beforeAll(async () => {
    const htpasswd = await writeHtpasswd(dir.path, { root: "root-pw", bob: "bob-pw" });
    const keys = join(dir.path, "keys");
    const config = configOf(`
[http]
address = "127.0.0.1"
port = 0
[storage]
root = "${join(dir.path, "root")}"
[auth]
htpasswd = "${htpasswd}"
admins = ["root"]
[[access]]
repos = ["public/**"]
users = { bob = ["pull", "push"] }
[trust]
enabled = true
keys_dir = "${keys}"
[[trust.policy]]
repositories = ["secure/**"]
require_signature = true
`);
    const log = createLogger("info", "json", (line) => void lines.push(line));
    berth = await startBerth(config, log, log);
    url = `http://127.0.0.1:${berth.server.port}`;
  });
  afterAll(async () => {
    await berth?.close(1000);
    pki[Symbol.dispose]();
    dir[Symbol.dispose]();
  });

  const addKey = (name: string, pem: string) => fetch(`${url}/api/v1/trust/keys?name=${name}`, { method: "POST", body: pem, headers: { ...ADMIN, "Content-Type": "application/x-pem-file" } });
  const status = async (repo: string, digest: string) => (await (await fetch(`${url}/api/v1/trust/status?repo=${repo}&digest=${digest}`, { headers: ADMIN })).json()) as { state: string; signatures: { tool: string; isTrusted: boolean; author: string; reason?: string }[] };

  test("an unsigned image in a repository that requires signatures is refused with DENIED and an audit line; a verified one is served", async () => {
    const digest = await pushImage(url, "secure/app", "v1", "layer one", ADMIN);
    const refused = await getManifest(url, "secure/app", "v1", ADMIN);
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body).errors[0]).toMatchObject({ code: "DENIED" });
    expect(refused.body).toContain(`${digest} has no signature`);
    expect(lines.some((l) => l.includes('"audit":"signature-refused"') && l.includes(digest))).toBe(true);
    // signed after the push, with a key nobody installed yet: still refused, saying why
    await pushCosignSignature(url, "secure/app", digest, release, digest, ADMIN);
    expect((await getManifest(url, "secure/app", "v1", ADMIN)).body).toContain("no public key is installed");
    expect((await status("secure/app", digest)).state).toBe("unverified");
    expect((await addKey("release.pub", release.publicPem)).status).toBe(201);
    expect((await getManifest(url, "secure/app", "v1", ADMIN)).status).toBe(200);
    expect((await getManifest(url, "secure/app", digest, ADMIN)).status).toBe(200);
    expect(await berth.trust!.trustOf("secure/app", digest)).toEqual({ isSigned: true, signatures: [{ tool: "cosign", isTrusted: true, author: "release.pub" }] });
    // the signature itself is served (clients verify it)
    expect((await getManifest(url, "secure/app", `${digest.replace(":", "-")}.sig`, ADMIN)).status).toBe(200);
  });

  test("search shows the trust store's verdicts: IsSigned and SignatureInfo as zot names them", async () => {
    const digest = await pushImage(url, "public/found", "v1", "searched layer", ADMIN);
    const other = await pushImage(url, "public/found", "v2", "unsigned layer", ADMIN);
    await pushCosignSignature(url, "public/found", digest, release, digest, ADMIN); // release.pub is installed by the first test
    const query = `{ ImageList(repo: "public/found") { Results { Tag Digest IsSigned SignatureInfo { Tool IsTrusted Author } } } }`;
    const res = await fetch(`${url}/v2/_zot/ext/search`, { method: "POST", body: JSON.stringify({ query }), headers: { ...ADMIN, "Content-Type": "application/json" } });
    expect(res.status).toBe(200);
    const results = ((await res.json()) as { data: { ImageList: { Results: { Tag: string; Digest: string; IsSigned: boolean; SignatureInfo: { Tool: string; IsTrusted: boolean; Author: string }[] }[] } } }).data.ImageList.Results;
    const v1 = results.find((r) => r.Tag === "v1")!;
    expect(v1.Digest).toBe(digest);
    expect(v1.IsSigned).toBe(true);
    expect(v1.SignatureInfo).toHaveLength(1);
    expect(v1.SignatureInfo[0]).toMatchObject({ Tool: "cosign", IsTrusted: true });
    expect(v1.SignatureInfo[0]!.Author).toContain("release.pub");
    const v2 = results.find((r) => r.Tag === "v2")!;
    expect(v2.Digest).toBe(other);
    expect(v2.IsSigned).toBe(false);
    expect(v2.SignatureInfo).toEqual([]);
  });

  test("removing the key flips the status back", async () => {
    const digest = await pushImage(url, "secure/flip", "v1", "flip", ADMIN);
    await pushCosignSignature(url, "secure/flip", digest, release, digest, ADMIN);
    expect((await status("secure/flip", digest)).state).toBe("verified");
    expect((await fetch(`${url}/api/v1/trust/keys/release.pub`, { method: "DELETE", headers: ADMIN })).status).toBe(204);
    expect((await status("secure/flip", digest)).state).toBe("unverified");
    expect((await getManifest(url, "secure/flip", "v1", ADMIN)).status).toBe(403);
    expect((await addKey("release.pub", release.publicPem)).status).toBe(201);
    expect((await getManifest(url, "secure/flip", "v1", ADMIN)).status).toBe(200);
    // deleting the signature flips it too
    const sig = await fetch(`${url}/v2/secure/flip/manifests/${digest.replace(":", "-")}.sig`, { method: "HEAD", headers: { ...ADMIN, Accept: "application/vnd.oci.image.manifest.v1+json" } });
    expect((await fetch(`${url}/v2/secure/flip/manifests/${sig.headers.get("docker-content-digest")}`, { method: "DELETE", headers: ADMIN })).status).toBe(202);
    expect((await status("secure/flip", digest)).state).toBe("unsigned");
    expect((await getManifest(url, "secure/flip", "v1", ADMIN)).body).toContain("has no signature");
  });

  test("a signature made with the wrong key, or for another digest, does not verify", async () => {
    const digest = await pushImage(url, "secure/wrong", "v1", "wrong", ADMIN);
    await pushCosignSignature(url, "secure/wrong", digest, intruder, digest, ADMIN);
    const s = await status("secure/wrong", digest);
    expect(s.state).toBe("unverified");
    expect(s.signatures[0]!.reason).toContain("does not verify with any of");
    const other = await pushImage(url, "secure/wrong", "v2", "other", ADMIN);
    // a valid signature of `other`, stored under this image's .sig tag
    await pushCosignSignature(url, "secure/wrong", digest, release, other, ADMIN);
    expect((await status("secure/wrong", digest)).signatures[0]!.reason).toContain(`signs ${other}`);
    expect((await getManifest(url, "secure/wrong", "v1", ADMIN)).status).toBe(403);
  });

  test("a signature that arrives before its image counts once the image lands", async () => {
    // an unsigned image makes the repository exist (and stays refused)
    const layerFirst = await pushImage(url, "secure/early", undefined, "early", ADMIN);
    // a second image's digest is known before it is pushed (its bytes are): its signature goes first
    const future = { schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", size: 2 }, layers: [] };
    const bytes = Buffer.from(JSON.stringify(future));
    const { createHash } = await import("node:crypto");
    const futureDigest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    await pushCosignSignature(url, "secure/early", futureDigest, release, futureDigest, ADMIN);
    expect((await status("secure/early", futureDigest)).state).toBe("verified");
    expect(await pushManifest(url, "secure/early", "late", future, undefined, ADMIN)).toBe(futureDigest);
    expect((await getManifest(url, "secure/early", "late", ADMIN)).status).toBe(200);
    expect((await getManifest(url, "secure/early", layerFirst, ADMIN)).status).toBe(403);
  });

  test("a signature on the index covers its children; one on a child covers only that child", async () => {
    const a = await pushImage(url, "secure/multi", undefined, "amd64", ADMIN);
    const b = await pushImage(url, "secure/multi", undefined, "arm64", ADMIN);
    const idx = await pushIndex(url, "secure/multi", "v1", [a, b], ADMIN);
    await pushCosignSignature(url, "secure/multi", a, release, a, ADMIN);
    expect((await getManifest(url, "secure/multi", a, ADMIN)).status).toBe(200);
    expect((await getManifest(url, "secure/multi", b, ADMIN)).status).toBe(403);
    expect((await getManifest(url, "secure/multi", "v1", ADMIN)).status).toBe(403);
    await pushCosignSignature(url, "secure/multi", idx, release, idx, ADMIN);
    expect((await getManifest(url, "secure/multi", "v1", ADMIN)).status).toBe(200);
    expect((await getManifest(url, "secure/multi", b, ADMIN)).status).toBe(200);
  });

  test("unsigned indexes listing a child, however many and however their digests sort, do not hide the signed one", async () => {
    const repo = "secure/crowd";
    const signer = keyPair("p256");
    expect((await addKey("crowd.pub", signer.publicPem)).status).toBe(201);
    const child = await pushImage(url, repo, undefined, "crowded child", ADMIN);
    const other = await pushImage(url, repo, undefined, "other child", ADMIN);
    const index = (children: string[], n?: number) => ({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: children.map((c) => ({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: c, size: SIZES.get(c) ?? 0, platform: { os: "linux", architecture: "amd64" } })),
      ...(n === undefined ? {} : { annotations: { n: String(n) } }),
    });
    const signed = digestOf(JSON.stringify(index([child])));
    // 20 unsigned indexes (listing the child and another image) whose digests all sort before the
    // signed one's: an index lookup in digest order meets every one of them first
    const crowd = async (from: number, count: number) => {
      let pushed = 0;
      for (let i = from; pushed < count; i++) {
        const doc = index([child, other], i);
        if (digestOf(JSON.stringify(doc)) >= signed) continue;
        await pushManifest(url, repo, undefined, doc, "application/vnd.oci.image.index.v1+json", ADMIN);
        pushed++;
      }
      return from + 10_000;
    };
    const next = await crowd(0, 10);
    expect(await pushManifest(url, repo, "v1", index([child]), "application/vnd.oci.image.index.v1+json", ADMIN)).toBe(signed);
    await pushCosignSignature(url, repo, signed, signer, signed, ADMIN);
    await crowd(next, 10);
    expect((await getManifest(url, repo, child, ADMIN)).status).toBe(200);
    expect((await getManifest(url, repo, "v1", ADMIN)).status).toBe(200);
    // listed only by unsigned indexes: still refused
    expect((await getManifest(url, repo, other, ADMIN)).body).toContain(`${other} has no signature`);
    // the verdicts follow the keys: removed, the child is refused; installed again, it is served
    expect((await fetch(`${url}/api/v1/trust/keys/crowd.pub`, { method: "DELETE", headers: ADMIN })).status).toBe(204);
    expect((await getManifest(url, repo, child, ADMIN)).status).toBe(403);
    expect((await addKey("crowd.pub", signer.publicPem)).status).toBe(201);
    expect((await getManifest(url, repo, child, ADMIN)).status).toBe(200);
  });

  test("notation: a JWS chained to a CA uploaded through zot's endpoint verifies; an expired signature does not", async () => {
    const digest = await pushImage(url, "secure/notation", "v1", "notation", ADMIN);
    await pushNotationSignature(url, "secure/notation", digest, notationJws(pki.leaf, digest, { chain: [der(pki.interPem)], expiry: new Date(Date.now() - 1000) }), ADMIN);
    expect((await status("secure/notation", digest)).signatures[0]!.reason).toContain("signature expired");
    const upload = await fetch(`${url}/v2/_zot/ext/notation?truststoreType=ca`, { method: "POST", body: pki.caPem, headers: ADMIN });
    expect(upload.status).toBe(200);
    expect((await getManifest(url, "secure/notation", "v1", ADMIN)).status).toBe(403);
    await pushNotationSignature(url, "secure/notation", digest, notationJws(pki.leaf, digest, { chain: [der(pki.interPem)] }), ADMIN);
    await berth.trust!.index.idle();
    expect((await getManifest(url, "secure/notation", "v1", ADMIN)).status).toBe(200);
    const s = await status("secure/notation", digest);
    expect(s.signatures.map((x) => [x.tool, x.isTrusted, x.author]).sort()).toEqual([["notation", false, ""], ["notation", true, "CN=release signer, O=acme"]]);
  });

  test("zot's cosign endpoint installs a key; list shows it; a private key is refused", async () => {
    const pair = keyPair("ed25519");
    expect((await fetch(`${url}/v2/_zot/ext/cosign`, { method: "POST", body: pair.publicPem, headers: ADMIN })).status).toBe(200);
    const list = (await (await fetch(`${url}/api/v1/trust/keys`, { headers: ADMIN })).json()) as { keys: { name: string; kind: string; keyType?: string }[] };
    expect(list.keys.some((k) => k.name.startsWith("cosign-") && k.keyType === "ed25519")).toBe(true);
    const priv = pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const refused = await fetch(`${url}/api/v1/trust/keys?name=oops`, { method: "POST", body: priv, headers: ADMIN });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: string }).error).toContain("PRIVATE KEY");
  });

  test("access: the trust routes are for admins only and leak nothing of a forbidden repository", async () => {
    const digest = await pushImage(url, "secure/hidden", "v1", "hidden", ADMIN);
    const asBob = [
      await fetch(`${url}/api/v1/trust/status?repo=secure/hidden&digest=${digest}`, { headers: BOB }),
      await fetch(`${url}/api/v1/trust/keys`, { headers: BOB }),
      await fetch(`${url}/api/v1/trust/keys?name=x`, { method: "POST", body: release.publicPem, headers: BOB }),
      await fetch(`${url}/v2/_zot/ext/cosign`, { method: "POST", body: release.publicPem, headers: BOB }),
      await fetch(`${url}/v2/_zot/ext/notation`, { method: "POST", body: pki.caPem }),
    ];
    expect(asBob.map((r) => r.status)).toEqual([403, 403, 403, 403, 401]);
    for (const r of asBob) expect(await r.text()).not.toContain(digest.slice(7, 20));
    // bob's pull of the forbidden repository is the access refusal, not the signature's reason
    const pull = await getManifest(url, "secure/hidden", "v1", BOB);
    expect(pull.status).toBe(403);
    expect(pull.body).not.toContain("signature");
    expect(pull.body).not.toContain(digest);
  });

  test("a runnable image that names a subject, or dresses as a notation signature, is not an attachment: it needs its own signature", async () => {
    // review finding: anything with a subject was served unchecked, so a pusher made any
    // unsigned image pullable by adding `subject` (runtimes ignore it and run the layers)
    const target = await pushImage(url, "secure/bypass", "base", "base", ADMIN);
    const layer = Buffer.from("payload an attacker wants run");
    await pushBlob(url, "secure/bypass", layer, ADMIN);
    const jws = Buffer.from("{}");
    const runnable = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", size: 2 },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: digestOf(layer), size: layer.length }],
    };
    await pushManifest(url, "secure/bypass", "with-subject", { ...runnable, subject: { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: target, size: SIZES.get(target) } }, undefined, ADMIN);
    expect((await getManifest(url, "secure/bypass", "with-subject", ADMIN)).status).toBe(403);
    await pushBlob(url, "secure/bypass", jws, ADMIN);
    await pushManifest(url, "secure/bypass", "dressed", { ...runnable, artifactType: "application/vnd.cncf.notary.signature", layers: [...runnable.layers, { mediaType: "application/jose+json", digest: digestOf(jws), size: jws.length }] }, undefined, ADMIN);
    expect((await getManifest(url, "secure/bypass", "dressed", ADMIN)).status).toBe(403);
    // a real signature (no filesystem layer) is still served
    await pushCosignSignature(url, "secure/bypass", target, intruder, target, ADMIN);
    expect((await getManifest(url, "secure/bypass", `${target.replace(":", "-")}.sig`, ADMIN)).status).toBe(200);
  });

  test("referrers that are no signatures, however many and however their digests sort, do not hide a signature", async () => {
    // review finding: only the first 64 referrers (by digest) were looked at, so 64 SBOMs or
    // other attachments pushed beside an image pushed its verified signature out of sight
    expect((await fetch(`${url}/v2/_zot/ext/notation?truststoreType=ca`, { method: "POST", body: pki.caPem, headers: ADMIN })).status).toBe(200);
    const digest = await pushImage(url, "secure/crowded", "v1", "crowded", ADMIN);
    const blob = Buffer.from("an attachment");
    await pushBlob(url, "secure/crowded", blob, ADMIN);
    await pushBlob(url, "secure/crowded", Buffer.from("{}"), ADMIN);
    const envelope = notationJws(pki.leaf, digest, { chain: [der(pki.interPem)] });
    await pushBlob(url, "secure/crowded", envelope, ADMIN);
    const signature = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      artifactType: "application/vnd.cncf.notary.signature",
      config: { mediaType: "application/vnd.oci.empty.v1+json", digest: digestOf("{}"), size: 2 },
      layers: [{ mediaType: "application/jose+json", digest: digestOf(envelope), size: envelope.length }],
      subject: { mediaType: "application/vnd.oci.image.manifest.v1+json", digest, size: SIZES.get(digest) },
    };
    const signatureDigest = digestOf(JSON.stringify(signature));
    // 70 attachments whose digests all sort before the signature's (found by trying annotations)
    let pushed = 0;
    for (let i = 0; pushed < 70; i++) {
      const sbom = {
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        artifactType: "application/spdx+json",
        config: { mediaType: "application/vnd.oci.empty.v1+json", digest: digestOf("{}"), size: 2 },
        layers: [{ mediaType: "application/spdx+json", digest: digestOf(blob), size: blob.length }],
        subject: { mediaType: "application/vnd.oci.image.manifest.v1+json", digest, size: SIZES.get(digest) },
        annotations: { n: String(i) },
      };
      if (digestOf(JSON.stringify(sbom)) >= signatureDigest) continue;
      await pushManifest(url, "secure/crowded", undefined, sbom, undefined, ADMIN);
      pushed++;
    }
    expect(await pushManifest(url, "secure/crowded", undefined, signature, undefined, ADMIN)).toBe(signatureDigest);
    expect((await status("secure/crowded", digest)).state).toBe("verified");
    expect((await getManifest(url, "secure/crowded", "v1", ADMIN)).status).toBe(200);
  });

  test("repositories without a policy are served unsigned, with their status still reported", async () => {
    const digest = await pushImage(url, "public/app", "v1", "public", BOB);
    expect((await getManifest(url, "public/app", "v1", BOB)).status).toBe(200);
    expect(await berth.trust!.trustOf("public/app", digest)).toEqual({ isSigned: false, signatures: [] });
  });

  test("berth trust keys add|list|rm drive the admin API; a status flips with them", async () => {
    const main = join(import.meta.dir, "../../daemon/main.ts");
    const pair = keyPair("p384");
    const pemFile = join(dir.path, "p384.pub");
    writeFileSync(pemFile, pair.publicPem);
    const digest = await pushImage(url, "secure/cli", "v1", "cli", ADMIN);
    await pushCosignSignature(url, "secure/cli", digest, pair, digest, ADMIN);
    // the daemon runs in this process: the CLI is awaited, never run synchronously
    const cli = async (args: string[], user = "root") => {
      const p = Bun.spawn([process.execPath, main, "trust", "keys", ...args, "--url", url, "--user", user, "--password-stdin"], { stdin: Buffer.from(`${user}-pw\n`), stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = [await new Response(p.stdout).text(), await new Response(p.stderr).text(), await p.exited];
      return { code, out, err };
    };
    expect(await cli(["add", "p384.pub", pemFile])).toMatchObject({ code: 0 });
    expect((await cli(["list"])).out).toMatch(/^p384\.pub\s+key \(ec\)/m);
    expect((await status("secure/cli", digest)).state).toBe("verified");
    expect(await cli(["rm", "p384.pub"])).toMatchObject({ code: 0, out: "removed p384.pub\n" });
    expect((await status("secure/cli", digest)).state).toBe("unverified");
    const bob = await cli(["list"], "bob");
    expect(bob.code).toBe(1);
    expect(bob.err).toContain("403");
  });

  test("berth trust keys on the stored login: the default alias, --registry, $BERTH_REGISTRY; the client's exit codes", async () => {
    const pair = keyPair("p256");
    const pemFile = join(dir.path, "stored.pub");
    writeFileSync(pemFile, pair.publicPem);
    const h = mkdtempSync(join(dir.path, "home-"));
    expect((await cli(h, ["login", url, "--alias", "adm", "--user", "root", "--password-stdin"], "root-pw")).code).toBe(0);
    expect((await cli(h, ["login", url, "--alias", "reader", "--user", "bob", "--password-stdin"], "bob-pw")).code).toBe(0);
    // the default alias (adm, the first login), then --registry and $BERTH_REGISTRY
    const added = await cli(h, ["trust", "keys", "add", "stored.pub", pemFile]);
    expect(added.code, shown(added)).toBe(0);
    expect(added.stdout).toMatch(/^stored\.pub\s+key \(ec\)/m);
    const listed = await cli(h, ["trust", "keys", "list", "--registry", "adm", "--json"]);
    expect(listed.code, shown(listed)).toBe(0);
    expect((JSON.parse(listed.stdout) as { keys: { name: string }[] }).keys.map((k) => k.name)).toContain("stored.pub");
    // bob is no admin: 403 is exit 4 here (with --url it stays 1, as the test above shows)
    const denied = await cli(h, ["trust", "keys", "list"], "", { BERTH_REGISTRY: "reader" });
    expect(denied.code, shown(denied)).toBe(4);
    expect(denied.stderr).toContain("403");
    // --user overrides the stored user, with the password on stdin
    const asRoot = await cli(h, ["trust", "keys", "rm", "stored.pub", "-r", "reader", "--user", "root", "--password-stdin"], "root-pw");
    expect(asRoot, shown(asRoot)).toMatchObject({ code: 0, stdout: "removed stored.pub\n" });
    const gone = await cli(h, ["trust", "keys", "rm", "stored.pub"]);
    expect(gone.code, shown(gone)).toBe(3);
    const both = await cli(h, ["trust", "keys", "list", "--url", url, "--registry", "adm"]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("give --url or --registry, not both");
    const nothing = await cli(mkdtempSync(join(dir.path, "home-")), ["trust", "keys", "list"]);
    expect(nothing.code, shown(nothing)).toBe(2);
    expect(nothing.stderr).toContain("no registry given");
  });

  test("a bad file in keys_dir is reported, the others still count (re-read on reload)", async () => {
    writeFileSync(join(dir.path, "keys", "broken.pem"), "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n");
    berth.trust!.reload();
    const list = (await (await fetch(`${url}/api/v1/trust/keys`, { headers: ADMIN })).json()) as { keys: { name: string }[]; problems: { name: string; error: string }[] };
    expect(list.problems.map((p) => p.name)).toEqual(["broken.pem"]);
    expect(list.keys.some((k) => k.name === "release.pub")).toBe(true);
  });
});
