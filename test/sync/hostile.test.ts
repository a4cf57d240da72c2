/**
 * Hostile upstreams, against the real daemon and a scripted fake upstream
 * (test/helpers/fakeupstream.ts): manifests whose bytes do not match the digest announced
 * (by tag, by digest, in another algorithm), blobs longer or shorter than their descriptor
 * or than their Content-Length (a raw-socket upstream), bodies cut off midway, redirect
 * loops, and bodies that drip slower than `timeout_ms`.
 * Each is driven through pull-through (a client GET on a daemon with on-demand sync) and a
 * scheduled sync (POST /api/v1/sync/<name>/run on a daemon without on-demand sync), and
 * each must end the same way: the client gets an OCI error naming the upstream (or, for a
 * blob too large to verify before sending, a broken connection), never a 200 with wrong
 * bytes; nothing wrong is on disk (every stored blob hashes to its name, no hostile manifest
 * is in an index.json) nor visible through /v2; a log line names the upstream and the
 * problem; and the daemon goes on serving a good image from the same upstream.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { syncView, waitFor } from "../helpers/clients";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { type FakeUpstream, brokenBody, drippingBody, startFakeUpstream, startRawUpstream } from "../helpers/fakeupstream";

const hex = (alg: "sha256" | "sha512", b: Uint8Array) => createHash(alg).update(b).digest("hex");
const sha = (b: Uint8Array) => `sha256:${hex("sha256", b)}`;
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const INDEX = "application/vnd.oci.image.index.v1+json";

/** An image: config, one layer, and its manifest (whose layer size may lie by `sizeDelta`). */
function image(layerBytes: number, sizeDelta = 0) {
  const config = new TextEncoder().encode(JSON.stringify({ architecture: "amd64", os: "linux", nonce: randomBytes(8).toString("hex") }));
  const layer = randomBytes(layerBytes);
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.byteLength },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha(layer), size: layer.byteLength + sizeDelta }],
    }),
  );
  return { config, layer, manifest, digest: sha(manifest), layerDigest: sha(layer) };
}
type Image = ReturnType<typeof image>;

/** One hostile scenario: the upstream repository it lives in and what is wrong with it. */
interface Scenario {
  repo: string;
  image: Image;
  /** What a warn/error log line must contain besides the upstream's name. */
  says: RegExp;
  /** True when the manifest itself is the lie (its GET fails); else a blob of it is. */
  manifestLies: boolean;
  /** The status a pull-through manifest GET gets (manifest scenarios). */
  status?: number;
}

const good = image(500);
const S: Record<string, Scenario> = {};
const add = (name: string, img: Image, says: RegExp, manifestLies: boolean, status?: number) => (S[name] = { repo: `lib/${name}`, image: img, says, manifestLies, status });
add("taglie", image(100), /announcing/, true, 502);
add("taglie512", image(100), /announcing/, true, 502);
add("digestlie", image(100), /hashing to/, true, 502);
// a connection cut is the upstream being unreachable (503); a redirect loop is a bad answer (502), not an outage
add("cutmanifest", image(100), /broke off|ECONNRESET/, true, 503);
add("loop", image(100), /redirect/i, true, 502);
add("drip", image(100), /stalled|within/, true, 504);
add("short", image(3000, 100), /descriptor says 3100|3000 of 3100 bytes|not the 3100/, false);
add("long", image(3000, -100), /descriptor says 2900|more than the 2900 bytes|not the 2900/, false);
add("cut", image(3000), /broke off|ECONNRESET/, false);
add("cutbig", image(3 * 1024 * 1024), /broke off|ECONNRESET/, false);
add("pingpong", image(3000), /redirect/i, false);
add("dripblob", image(3000), /stalled|within/, false);
/** Other bytes, for the manifest served in place of one asked for by digest. */
const other = image(100);
/** An index whose only child, asked for by digest, is served with other bytes (scheduled sync). */
const lyingIndex = new TextEncoder().encode(
  JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ mediaType: MANIFEST, digest: S.digestlie!.image.digest, size: S.digestlie!.image.manifest.byteLength, platform: { architecture: "amd64", os: "linux" } }] }),
);

const manifestResponse = (bytes: Uint8Array, digest: string) => new Response(bytes, { headers: { "content-type": MANIFEST, "docker-content-digest": digest } });

function answer(req: Request, path: string): Response | undefined {
  if (path === "/loop-a") return Response.redirect(new URL("/loop-b", req.url).href, 302);
  if (path === "/loop-b") return Response.redirect(new URL("/loop-a", req.url).href, 302);
  const m = /^\/v2\/((?:lib|sched)\/[a-z0-9]+)\/(manifests|blobs|tags)\/(.+)$/.exec(path);
  if (!m) return undefined;
  const [, repo, kind, ref] = m as unknown as [string, string, string, string];
  const name = repo.split("/")[1]!;
  if (kind === "tags") return Response.json({ name: repo, tags: ["v1"] });
  const s = name === "good" ? undefined : name === "lonecut" ? S.cut : S[name];
  const img = s?.image ?? good;
  if (kind === "manifests") {
    if (name === "digestlie" && ref === "v1" && repo.startsWith("sched/")) return new Response(lyingIndex, { headers: { "content-type": INDEX, "docker-content-digest": sha(lyingIndex) } });
    if (name === "digestlie" && ref === img.digest) return manifestResponse(other.manifest, img.digest);
    if (ref !== "v1" && ref !== img.digest) return undefined;
    if (name === "taglie") return manifestResponse(img.manifest, other.digest);
    if (name === "taglie512") return manifestResponse(img.manifest, `sha512:${hex("sha512", other.manifest)}`);
    if (name === "cutmanifest") return new Response(brokenBody(img.manifest, 40), { headers: { "content-type": MANIFEST, "docker-content-digest": img.digest } });
    if (name === "loop") return Response.redirect(req.url, 302);
    if (name === "drip") {
      if (req.method === "HEAD") return new Response(null, { headers: { "content-type": MANIFEST, "docker-content-digest": img.digest } });
      return new Response(drippingBody(img.manifest, 400), { headers: { "content-type": MANIFEST, "docker-content-digest": img.digest } });
    }
    return manifestResponse(img.manifest, img.digest);
  }
  if (ref === sha(img.config)) return new Response(img.config);
  if (ref !== img.layerDigest) return undefined;
  if (name === "cut" || name === "cutbig" || name === "lonecut") return new Response(brokenBody(img.layer, img.layer.byteLength >> 1));
  if (name === "pingpong") return Response.redirect(new URL("/loop-a", req.url).href, 302);
  if (name === "dripblob") return new Response(drippingBody(img.layer, 400));
  return new Response(img.layer);
}

/** A blob the raw upstream serves with a Content-Length that lies: fewer or more bytes follow. */
const lengthLie = image(3000);

function rawAnswer(_method: string, path: string) {
  const m = /^\/v2\/raw\/(lenshort|lenlong)\/blobs\/(.+)$/.exec(path);
  if (!m || m[2] !== lengthLie.layerDigest) return undefined;
  const head = (n: number) => ["HTTP/1.1 200 OK", "Content-Type: application/octet-stream", `Content-Length: ${n}`];
  // lenshort: 3000 announced, 1500 sent, then the close; lenlong: 1500 announced, all 3000 sent
  return m[1] === "lenshort" ? { head: head(3000), body: lengthLie.layer.subarray(0, 1500) } : { head: head(1500), body: lengthLie.layer };
}

let fake: FakeUpstream;
let raw: FakeUpstream;
let pull: Daemon;
let sched: Daemon;
/**
 * A bound on each wait of a test (a hung request or a missing log line), below bun's 5 s
 * test timeout: a hang fails its own test instead of the timeout killing the daemons.
 */
const GUARD_MS = 4_000;
const guard = () => AbortSignal.timeout(GUARD_MS);
const common = `urls = ["URL"]\ntimeout_ms = 200\nretries = 0\nbreaker_failures = 1000\n`;

beforeAll(async () => {
  fake = startFakeUpstream(answer);
  const registry = common.replace("URL", fake.url);
  raw = startRawUpstream(rawAnswer);
  const rawRegistry = common.replace("URL", raw.url);
  pull = await startDaemon({ extra: `[[sync.registries]]\nname = "fake"\n${registry}repos = ["lib/**"]\n[[sync.registries]]\nname = "raw"\n${rawRegistry}repos = ["raw/**"]\n` });
  const repos = ["sched/good", ...Object.keys(S).map((n) => `sched/${n}`)];
  sched = await startDaemon({ extra: `[[sync.registries]]\nname = "fake"\n${registry}repos = ${JSON.stringify(repos)}\non_demand = false\n` });
}, 30_000);

afterAll(async () => {
  await pull?.[Symbol.asyncDispose]();
  await sched?.[Symbol.asyncDispose]();
  await fake?.[Symbol.asyncDispose]();
  await raw?.[Symbol.asyncDispose]();
});

/** Every blob file under the store: its path and whether its bytes hash to its name. */
function blobFiles(root: string): { path: string; ok: boolean }[] {
  const out: { path: string; ok: boolean }[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && /\/blobs\/(sha256|sha512)\/[0-9a-f]+$/.test(p)) {
        const alg = p.split("/").at(-2) as "sha256" | "sha512";
        out.push({ path: p, ok: hex(alg, readFileSync(p)) === e.name });
      }
    }
  };
  walk(root);
  return out;
}

/** Asserts that `root` holds nothing wrong and nothing of scenario `s` in local `repo`. */
function nothingStored(root: string, repo: string, s: Scenario) {
  const bad = blobFiles(root).filter((f) => !f.ok);
  expect(bad).toEqual([]);
  const dir = join(root, repo);
  if (!existsSync(dir)) return;
  const index = join(dir, "index.json");
  if (existsSync(index)) expect(readFileSync(index, "utf8")).not.toContain(s.image.digest);
  expect(existsSync(join(dir, "blobs/sha256", s.image.digest.slice(7)))).toBe(false);
  const layer = join(dir, "blobs/sha256", s.image.layerDigest.slice(7));
  if (existsSync(layer)) expect(hex("sha256", readFileSync(layer))).toBe(s.image.layerDigest.slice(7));
}

/** The first warn/error log line of `d` naming upstream "fake", `repo` and matching `says`. */
function why(d: Daemon, repo: string, says: RegExp): string | undefined {
  return d
    .logs()
    .split("\n")
    // the throttled resource-shortage warning of the HTTP layer names another cause: it does not count
    .find((l) => /"level":"(warn|error)"/.test(l) && !l.includes("for want of resources") && l.includes("fake") && l.includes(repo) && says.test(l));
}

async function expectUpstreamError(res: Response, says: RegExp) {
  expect([502, 503, 504]).toContain(res.status);
  const body = (await res.json()) as { errors: { code: string; message: string; detail: string }[] };
  expect(body.errors[0]!.code).toBe("UNKNOWN");
  expect(body.errors[0]!.detail).toContain("upstream fake");
  expect(body.errors[0]!.detail).toMatch(says);
}

/** GETs `url`; resolves with the status and the body's digest, or "broken" when the body broke off. */
async function fetchBody(url: string): Promise<{ status: number; digest?: string; broken?: boolean; res?: Response }> {
  let res: Response;
  try {
    res = await fetch(url, { signal: guard() });
  } catch (err) {
    if ((err as Error).name === "TimeoutError") throw new Error(`GET ${url} hung`);
    return { status: 0, broken: true };
  }
  if (res.status !== 200) return { status: res.status, res };
  try {
    return { status: 200, digest: sha(new Uint8Array(await res.arrayBuffer())) };
  } catch (err) {
    if ((err as Error).name === "TimeoutError") throw new Error(`GET ${url} hung`);
    return { status: 200, broken: true };
  }
}

async function servesGood(d: Daemon, repo: string) {
  const m = await fetch(`${d.url}/v2/${repo}/manifests/v1`, { headers: { accept: MANIFEST }, signal: guard() });
  expect(m.status).toBe(200);
  expect(sha(new Uint8Array(await m.arrayBuffer()))).toBe(good.digest);
  const b = await fetchBody(`${d.url}/v2/${repo}/blobs/${good.layerDigest}`);
  expect(b).toEqual({ status: 200, digest: good.layerDigest });
}

describe("pull-through from a hostile upstream", () => {
  for (const [name, s] of Object.entries(S).filter(([, s]) => s.manifestLies)) {
    test(`manifest ${name}: an OCI error naming the upstream, nothing stored, logged`, async () => {
      const ref = name === "digestlie" ? s.image.digest : "v1";
      const res = await fetch(`${pull.url}/v2/${s.repo}/manifests/${ref}`, { headers: { accept: MANIFEST }, signal: guard() });
      expect(res.status).toBe(s.status!);
      await expectUpstreamError(res, s.says);
      await waitFor(`a log line saying why ${name} failed`, () => why(pull, s.repo, s.says) !== undefined, GUARD_MS);
      nothingStored(pull.root, s.repo, s);
      await servesGood(pull, "lib/good");
    });
  }

  for (const [name, s] of Object.entries(S).filter(([, s]) => !s.manifestLies)) {
    test(`blob ${name}: never a clean 200 with wrong bytes, the image not stored, logged`, async () => {
      // the manifest is fine by itself and is served while its blobs come in
      const m = await fetch(`${pull.url}/v2/${s.repo}/manifests/v1`, { headers: { accept: MANIFEST }, signal: guard() });
      expect(m.status).toBe(200);
      expect(sha(new Uint8Array(await m.arrayBuffer()))).toBe(s.image.digest);
      const b = await fetchBody(`${pull.url}/v2/${s.repo}/blobs/${s.image.layerDigest}`);
      if (b.res) await expectUpstreamError(b.res, /./);
      const clean200 = b.status === 200 && !b.broken;
      // short and long serve the right bytes (only the manifest's size is wrong): a clean 200 must carry them
      if (clean200) expect(b.digest).toBe(s.image.layerDigest);
      if (name !== "short" && name !== "long") expect(clean200).toBe(false);
      await waitFor(`a log line saying why ${name} failed`, () => why(pull, s.repo, s.says) !== undefined, GUARD_MS);
      nothingStored(pull.root, s.repo, s);
      await servesGood(pull, "lib/good");
    });
  }

  test("a blob asked for alone (no image pulled) and cut off: an error or a broken connection, nothing stored, logged", async () => {
    const s = { ...S.cut!, repo: "lib/lonecut" };
    const b = await fetchBody(`${pull.url}/v2/${s.repo}/blobs/${s.image.layerDigest}`);
    if (b.res) await expectUpstreamError(b.res, /./);
    expect(b.status === 200 && !b.broken).toBe(false);
    await waitFor("a log line saying why the lone blob failed", () => why(pull, s.repo, s.says) !== undefined, GUARD_MS);
    nothingStored(pull.root, s.repo, s);
    await servesGood(pull, "lib/good");
  });
});

describe("pull-through from an upstream whose Content-Length lies", () => {
  for (const [name, says] of [["lenshort", /broke off|ECONNRESET/], ["lenlong", /hashing to|do not match/]] as const) {
    test(`${name}: an error or a broken connection, nothing stored, logged`, async () => {
      const repo = `raw/${name}`;
      const b = await fetchBody(`${pull.url}/v2/${repo}/blobs/${lengthLie.layerDigest}`);
      if (b.res) {
        expect([502, 503]).toContain(b.res.status);
        const e = ((await b.res.json()) as { errors: { code: string; detail: string }[] }).errors[0]!;
        expect(e.code).toBe("UNKNOWN");
        expect(e.detail).toContain("upstream raw");
      }
      expect(b.status === 200 && !b.broken).toBe(false);
      expect(raw.hits(`/v2/${repo}/blobs/${lengthLie.layerDigest}`)).toBe(1);
      const line = () => pull.logs().split("\n").find((l) => /"level":"warn"/.test(l) && !l.includes("for want of resources") && l.includes('"upstream":"raw"') && l.includes(repo) && says.test(l));
      await waitFor(`a log line saying why ${name} failed`, () => line() !== undefined, GUARD_MS);
      nothingStored(pull.root, repo, { repo, image: lengthLie, says, manifestLies: false });
      await servesGood(pull, "lib/good");
    });
  }
});

describe("scheduled sync from a hostile upstream", () => {
  test("one run: every hostile tag fails with a reason, nothing of it stored or served, the good image synced", async () => {
    const run = await fetch(`${sched.url}/api/v1/sync/fake/run`, { method: "POST" });
    expect(run.status).toBe(202);
    let last: { report?: { failed: number; images: number }; error?: string } | null = null;
    await waitFor(
      "the sync run to finish",
      async () => {
        const info = (await (await fetch(`${sched.url}/api/v1/sync`)).json()) as { registries: { lastRun: typeof last }[] };
        last = info.registries[0]!.lastRun;
        return last !== null;
      },
      20_000,
    );
    expect(last!.error).toBeUndefined();
    expect(last!.report).toMatchObject({ failed: Object.keys(S).length, images: 1 });
    for (const [name, s] of Object.entries(S)) {
      const repo = `sched/${name}`;
      expect({ name, line: why(sched, repo, s.says) !== undefined }).toEqual({ name, line: true });
      nothingStored(sched.root, repo, s);
      const res = await fetch(`${sched.url}/v2/${repo}/manifests/v1`);
      expect({ name, status: res.status }).toEqual({ name, status: 404 });
      expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toMatch(/MANIFEST_UNKNOWN|NAME_UNKNOWN/);
      // a blob that did arrive whole and verified may stay (the disk walk above checks its bytes); through /v2 it must match too
      const blob = await fetchBody(`${sched.url}/v2/${repo}/blobs/${s.image.layerDigest}`);
      if (blob.status === 200) expect(blob).toEqual({ status: 200, digest: s.image.layerDigest });
      else expect(blob.status).toBe(404);
    }
    await servesGood(sched, "sched/good");
  }, 30_000);
});

describe("counting what hostile upstreams sent", () => {
  test("a blob longer than its descriptor and one shorter are counted as corrupt for that upstream; a cut-off one is not", async () => {
    const count = async () => (await syncView(sched.url)).registries.find((r) => r.name === "fake")!.corruptBlobs;
    // the scheduled run above met "short" and "long" (size lies) and the cut-off blobs
    expect(await count()).toBe(2);
  });
});
