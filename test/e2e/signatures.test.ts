/**
 * Real peers and signatures. Debian's skopeo 1.9.3 and podman 4.3 link Debian's
 * containers/image 5.23.1, built with a Debian-local change that disables sigstore:
 * `--sign-by-sigstore-private-key` and a policy.json `sigstoreSigned` requirement both fail
 * with "sigstore disabled" (the first test states it, so the day Debian enables it, it fails
 * and says so). The round trip runs with Debian's skopeo source rebuilt without that patch
 * (scripts/build-sigstore-peers, run by scripts/setup --test-peers): it signs while pushing
 * into berth, berth verifies the signature with the installed key and serves the image, and
 * skopeo and podman (rebuilt the same way) pull it back through a `sigstoreSigned` policy
 * (and refuse it for another key).
 * Also: a signature the test writes in skopeo's format verifies in berth and in skopeo, and
 * an unsigned image is refused to skopeo.
 * The encrypted private key is made here from cosign's published format: PEM "ENCRYPTED
 * COSIGN PRIVATE KEY" (the label containers/image 5.23 reads; newer cosign writes "ENCRYPTED
 * SIGSTORE PRIVATE KEY") around JSON {kdf: scrypt N=32768 r=8 p=1 + salt, cipher:
 * nacl/secretbox + nonce, ciphertext} of the PKCS#8 DER key.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { generateKeyPairSync, randomBytes, scryptSync } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import nacl from "tweetnacl";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { type Fixtures, Podman, Skopeo, buildFixtures, describeRun, makeTemp } from "../helpers/clients";
import { type KeyObject, createHash, sign, verify } from "node:crypto";

setDefaultTimeout(120_000);

/** Debian's skopeo and podman rebuilt with sigstore (scripts/build-sigstore-peers). */
const SIGSTORE_PEERS = process.env.BERTH_SIGSTORE_PEERS_DIR ?? join(homedir(), ".cache/berth-build/sigstore-peers");

/** The path of a rebuilt peer; fails the test, with what to run, when it has not been built. */
function sigstorePeer(name: "skopeo" | "podman"): string {
  const path = join(SIGSTORE_PEERS, name);
  if (!existsSync(path)) throw new Error(`${name} with sigstore is missing at "${path}": build it with scripts/setup --test-peers (scripts/build-sigstore-peers)`);
  return path;
}

/** The rebuilt skopeo with `policy`. */
function sigstoreSkopeo(policy?: string): Skopeo {
  return new Skopeo(policy, sigstorePeer("skopeo"));
}

let daemon: Daemon;
let fixtures: Fixtures;
let work: string;

/** An encrypted cosign private key (PEM) for `password`, and the public key (PEM). */
function cosignKeyPair(password: string): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const der = privateKey.export({ type: "pkcs8", format: "der" });
  const salt = randomBytes(32);
  const nonce = randomBytes(24);
  const key = scryptSync(password, salt, 32, { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
  const box = nacl.secretbox(new Uint8Array(der), new Uint8Array(nonce), new Uint8Array(key));
  const doc = {
    kdf: { name: "scrypt", params: { N: 32768, r: 8, p: 1 }, salt: salt.toString("base64") },
    cipher: { name: "nacl/secretbox", nonce: nonce.toString("base64") },
    ciphertext: Buffer.from(box).toString("base64"),
  };
  const body = Buffer.from(JSON.stringify(doc)).toString("base64").replace(/.{64}/g, "$&\n").trimEnd();
  return { privatePem: `-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n${body}\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\n`, publicPem: publicKey.export({ type: "spki", format: "pem" }).toString() };
}

/** Pull flags: the policy is checked against the source's signatures; an oci: layout cannot store sigstore signatures, so none are copied. */
const PULL = ["--remove-signatures"];

/** A policy.json that accepts `repo` only with a sigstore signature by `keyPath`. */
function sigstorePolicy(repo: string, keyPath: string): string {
  return JSON.stringify({
    default: [{ type: "insecureAcceptAnything" }],
    transports: { docker: { [repo]: [{ type: "sigstoreSigned", keyPath, signedIdentity: { type: "matchRepository" } }] } },
  });
}

/** The digest tag `tag` of `repo` points at, read from the tag list's manifest (GET is refused by policy). */
async function digestOfTag(repo: string, tag: string): Promise<string> {
  const index = JSON.parse(readFileSync(join(daemon.root, repo, "index.json"), "utf8")) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  return index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag)!.digest;
}

/** Pushes, as the cosign tag scheme, a simple-signing signature of `digest` naming `reference` (what skopeo/cosign write). */
async function attachSignature(repo: string, digest: string, reference: string, key: KeyObject): Promise<void> {
  const payload = Buffer.from(JSON.stringify({ critical: { identity: { "docker-reference": reference }, image: { "docker-manifest-digest": digest }, type: "cosign container image signature" }, optional: null }));
  const empty = Buffer.from("{}");
  const d = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
  for (const blob of [payload, empty]) expect((await fetch(`${daemon.url}/v2/${repo}/blobs/uploads/?digest=${d(blob)}`, { method: "POST", body: blob })).status).toBe(201);
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: d(empty), size: empty.length },
    layers: [{ mediaType: "application/vnd.dev.cosign.simplesigning.v1+json", digest: d(payload), size: payload.length, annotations: { "dev.cosignproject.cosign/signature": sign("sha256", payload, key).toString("base64") } }],
  };
  const res = await fetch(`${daemon.url}/v2/${repo}/manifests/${digest.replace(":", "-")}.sig`, { method: "PUT", body: JSON.stringify(manifest), headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
  expect(res.status).toBe(201);
}

beforeAll(async () => {
  work = makeTemp("berth-sig-e2e-");
  fixtures = await buildFixtures(join(work, "fixtures"));
  daemon = await startDaemon({ extra: `[trust]\nenabled = true\n[[trust.policy]]\nrepositories = ["signed/**"]\nrequire_signature = true\n` });
  writeFileSync(join(work, "registries.yaml"), "default-docker:\n  use-sigstore-attachments: true\n");
  const { privatePem, publicPem } = cosignKeyPair("sesame");
  writeFileSync(join(work, "cosign.key"), privatePem);
  writeFileSync(join(work, "skopeo.pub"), publicPem);
  writeFileSync(join(work, "passphrase"), "sesame");
  writeFileSync(join(work, "other.pub"), generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }).toString());
});
afterAll(async () => {
  await daemon?.stop();
});

test("Debian's skopeo 1.9 cannot sign with a sigstore key (a Debian-local change disables it): stated, so the day it can, this test says so", async () => {
  using skopeo = new Skopeo();
  const signed = await skopeo.run(["copy", "--registries.d", work, "--dest-tls-verify=false", "--sign-by-sigstore-private-key", join(work, "cosign.key"), "--sign-passphrase-file", join(work, "passphrase"), `oci:${fixtures.single}:v1`, `docker://${daemon.host}/signed/skopeo:v1`]);
  expect(signed.stderr).toContain("Debian-local change: sigstore disabled");
});

test("a cosign tag-scheme signature in skopeo's format pushed after the image verifies in berth and is served as clients fetch it", async () => {
  const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
  writeFileSync(join(work, "cosign.pub"), pair.publicKey.export({ type: "spki", format: "pem" }).toString());
  using pusher = new Skopeo();
  const pushed = await pusher.run(["copy", "--dest-tls-verify=false", `oci:${fixtures.single}:v1`, `docker://${daemon.host}/signed/app:v1`]);
  expect(pushed.code, describeRun(pushed)).toBe(0);
  const head = await fetch(`${daemon.url}/v2/signed/app/manifests/v1`, { method: "HEAD", headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
  expect(head.status).toBe(403);
  const digest = head.headers.get("docker-content-digest") ?? (await digestOfTag("signed/app", "v1"));
  await attachSignature("signed/app", digest, `${daemon.host}/signed/app`, pair.privateKey);
  // refused until the key is installed (zot's endpoint, from loopback: no admin token is set)
  expect((await fetch(`${daemon.url}/v2/signed/app/manifests/v1`)).status).toBe(403);
  expect((await fetch(`${daemon.url}/v2/_zot/ext/cosign`, { method: "POST", body: readFileSync(join(work, "cosign.pub")) })).status).toBe(200);
  expect((await fetch(`${daemon.url}/v2/signed/app/manifests/v1`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } })).status).toBe(200);
  const status = (await (await fetch(`${daemon.url}/api/v1/trust/status?repo=signed/app&digest=${digest}`)).json()) as { state: string; signatures: { tool: string; author: string }[] };
  expect(status.state).toBe("verified");
  // what a verifying client fetches (skopeo's and cosign's lookup): the .sig manifest by tag, then its payload
  const sig = (await (await fetch(`${daemon.url}/v2/signed/app/manifests/${digest.replace(":", "-")}.sig`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } })).json()) as { layers: { digest: string; annotations: Record<string, string> }[] };
  const payload = new Uint8Array(await (await fetch(`${daemon.url}/v2/signed/app/blobs/${sig.layers[0]!.digest}`)).arrayBuffer());
  expect(verify("sha256", payload, pair.publicKey, Buffer.from(sig.layers[0]!.annotations["dev.cosignproject.cosign/signature"]!, "base64"))).toBe(true);
  expect(JSON.parse(new TextDecoder().decode(payload)).critical.image["docker-manifest-digest"]).toBe(digest);
  // Debian's skopeo (and podman: the same patched containers/image) refuses to verify it
  using debian = new Skopeo(sigstorePolicy(`${daemon.host}/signed/app`, join(work, "cosign.pub")));
  const refused = await debian.run(["copy", "--registries.d", work, "--src-tls-verify=false", ...PULL, `docker://${daemon.host}/signed/app:v1`, `oci:${join(work, "out")}:v1`]);
  expect(refused.stderr).toContain("Debian-local change: sigstore disabled");
  // containers/image's own verification (the rebuilt skopeo) accepts it
  using skopeo = sigstoreSkopeo(sigstorePolicy(`${daemon.host}/signed/app`, join(work, "cosign.pub")));
  const pulled = await skopeo.run(["copy", "--registries.d", work, "--src-tls-verify=false", ...PULL, `docker://${daemon.host}/signed/app:v1`, `oci:${join(work, "out")}:v1`]);
  expect(pulled.code, describeRun(pulled)).toBe(0);
});

test("an unsigned image pushed by skopeo lands but is not served from a repository requiring signatures", async () => {
  using skopeo = new Skopeo();
  const pushed = await skopeo.run(["copy", "--dest-tls-verify=false", `oci:${fixtures.single}:v1`, `docker://${daemon.host}/signed/unsigned:v1`]);
  expect(pushed.code, describeRun(pushed)).toBe(0);
  const pulled = await skopeo.run(["copy", "--src-tls-verify=false", `docker://${daemon.host}/signed/unsigned:v1`, `oci:${join(work, "out3")}:v1`]);
  expect(pulled.code).not.toBe(0);
  expect(pulled.stderr).toContain("denied");
  const body = await (await fetch(`${daemon.url}/v2/signed/unsigned/manifests/v1`)).text();
  expect(body).toContain("requires a verified signature");
  expect(daemon.logs()).toContain('"audit":"signature-refused"');
});

test("skopeo signs with a sigstore key while pushing into berth; berth verifies it with that key and serves it; skopeo's sigstoreSigned policy accepts it and refuses another key", async () => {
  using signer = sigstoreSkopeo();
  const signed = await signer.run(["copy", "--registries.d", work, "--dest-tls-verify=false", "--sign-by-sigstore-private-key", join(work, "cosign.key"), "--sign-passphrase-file", join(work, "passphrase"), `oci:${fixtures.single}:v1`, `docker://${daemon.host}/signed/roundtrip:v1`]);
  expect(signed.code, describeRun(signed)).toBe(0);
  const digest = await digestOfTag("signed/roundtrip", "v1");
  const statusOf = async () => (await (await fetch(`${daemon.url}/api/v1/trust/status?repo=signed/roundtrip&digest=${digest}`)).json()) as { state: string; signatures: { tool: string; isTrusted: boolean; author: string }[] };
  // skopeo wrote a cosign signature berth finds; no key of the store verifies it yet, so nothing is served
  const before = await statusOf();
  expect(before.state).not.toBe("verified");
  expect(before.signatures.map((s) => [s.tool, s.isTrusted])).toEqual([["cosign", false]]);
  const manifest = () => fetch(`${daemon.url}/v2/signed/roundtrip/manifests/v1`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
  expect((await manifest()).status).toBe(403);
  // the admin API (loopback, no admin token set) installs skopeo's public key
  const installed = await fetch(`${daemon.url}/api/v1/trust/keys?name=skopeo-roundtrip.pem`, { method: "POST", body: readFileSync(join(work, "skopeo.pub")) });
  expect(installed.status).toBe(201);
  const after = await statusOf();
  expect(after.state).toBe("verified");
  expect(after.signatures.map(({ tool, isTrusted, author }) => ({ tool, isTrusted, author }))).toEqual([{ tool: "cosign", isTrusted: true, author: "skopeo-roundtrip.pem" }]);
  expect((await manifest()).status).toBe(200);
  // skopeo pulls it back, finding the signature as a sigstore attachment and verifying it with the key
  const policy = (key: string) => sigstorePolicy(`${daemon.host}/signed/roundtrip`, join(work, key));
  using verifier = sigstoreSkopeo(policy("skopeo.pub"));
  const pulled = await verifier.run(["copy", "--registries.d", work, "--src-tls-verify=false", ...PULL, `docker://${daemon.host}/signed/roundtrip:v1`, `oci:${join(work, "roundtrip")}:v1`]);
  expect(pulled.code, describeRun(pulled)).toBe(0);
  // and refuses it when the policy names another key
  using stranger = sigstoreSkopeo(policy("other.pub"));
  const refused = await stranger.run(["copy", "--registries.d", work, "--src-tls-verify=false", ...PULL, `docker://${daemon.host}/signed/roundtrip:v1`, `oci:${join(work, "roundtrip-other")}:v1`]);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toContain("cryptographic signature verification failed");
});

test("skopeo's sigstoreSigned policy refuses an image berth serves without a signature", async () => {
  using pusher = sigstoreSkopeo();
  const pushed = await pusher.run(["copy", "--dest-tls-verify=false", `oci:${fixtures.single}:v1`, `docker://${daemon.host}/open/unsigned:v1`]);
  expect(pushed.code, describeRun(pushed)).toBe(0);
  expect((await fetch(`${daemon.url}/v2/open/unsigned/manifests/v1`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } })).status).toBe(200);
  using verifier = sigstoreSkopeo(sigstorePolicy(`${daemon.host}/open/unsigned`, join(work, "skopeo.pub")));
  const pulled = await verifier.run(["copy", "--registries.d", work, "--src-tls-verify=false", ...PULL, `docker://${daemon.host}/open/unsigned:v1`, `oci:${join(work, "open")}:v1`]);
  expect(pulled.code).not.toBe(0);
  expect(pulled.stderr).toContain("A signature was required, but no signature exists");
});

test("podman, rebuilt the same way, pulls the image skopeo signed through a sigstoreSigned policy and refuses it for another key", async () => {
  const binary = sigstorePeer("podman");
  // podman has no --registries.d: inside iso.sh's private mount namespace, /etc/containers is replaced by one holding ours
  const wrapper = join(work, "podman-sigstore.sh");
  writeFileSync(wrapper, `#!/bin/sh\nset -e\nmount -n -t tmpfs tmpfs /etc/containers\nmkdir /etc/containers/registries.d\ncp ${join(work, "registries.yaml")} /etc/containers/registries.d/\nexec ${binary} "$@"\n`, { mode: 0o755 });
  using podman = new Podman([daemon.host], wrapper);
  const policy = (key: string) => {
    const path = join(work, `podman-policy-${key}.json`);
    writeFileSync(path, sigstorePolicy(`${daemon.host}/signed/roundtrip`, join(work, key)));
    return path;
  };
  const pulled = await podman.run(["pull", "--signature-policy", policy("skopeo.pub"), `${daemon.host}/signed/roundtrip:v1`]);
  expect(pulled.code, describeRun(pulled)).toBe(0);
  const refused = await podman.run(["pull", "--signature-policy", policy("other.pub"), `${daemon.host}/signed/roundtrip:v1`]);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toContain("cryptographic signature verification failed");
});
