/**
 * Durability on the real disk, observed: the real daemon runs under strace (Debian package
 * `strace`), the test pushes blobs and a manifest over HTTP, deletes a tag and a blob, and
 * pulls an image through from a small scripted upstream; then it reads the trace and checks,
 * for every acknowledged operation, the order of the calls that make it durable. Data is
 * fsynced (on a descriptor of that very file, after its last write) before it is hard-linked
 * into the pool or a repository; the directory of every new link, new directory, removed
 * file and renamed file is fsynced after the change and before the HTTP response is written;
 * index.json and oci-layout are written to a temp file that is fsynced before it is renamed
 * over them. Pull-through fetches are not acknowledged to anyone, so for them the same order
 * is checked up to the daemon's exit. Events are matched by path (`-yy`), never by an exact
 * sequence, and `-f` follows Bun's thread pool, where most file operations run.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { type Daemon, startDaemon, tempDir } from "../helpers/daemon";
import { type TraceEvent, between, calls, dirSyncsAfter, parseTrace, responses, syncsOf, twoPaths, writesTo } from "../helpers/strace";

const MAIN = resolve(import.meta.dir, "../../daemon/main.ts");
const TRACED = "fsync,fdatasync,sync_file_range,link,linkat,rename,renameat,renameat2,openat,unlink,unlinkat,mkdir,mkdirat,write,writev,pwrite64,pwritev,sendto,sendmsg";

const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const hexOf = (digest: string) => digest.slice("sha256:".length);

/** The image pushed to berth. */
const layer = randomBytes(200_000);
const config = new TextEncoder().encode(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
const manifestOf = (cfg: Uint8Array, lay: Uint8Array) =>
  new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(cfg), size: cfg.byteLength },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha(lay), size: lay.byteLength }],
    }),
  );
const manifest = manifestOf(config, layer);

/** The image the fake upstream serves for pull-through. */
const upLayer = randomBytes(300_000);
const upConfig = new TextEncoder().encode(JSON.stringify({ architecture: "arm64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
const upManifest = manifestOf(upConfig, upLayer);

const work = tempDir("berth-durability-");
const tracePath = join(work.path, "trace.txt");
let fake: ReturnType<typeof Bun.serve>;
let berth: Daemon;
let daemonPid = 0;
/** What each request was, in order; the k-th HTTP response in the trace answers the k-th. */
const requests: string[] = [];
let events: TraceEvent[] = [];

async function call(label: string, url: string, init: RequestInit = {}): Promise<Response> {
  requests.push(label);
  const res = await fetch(url, init);
  await res.arrayBuffer().then((b) => Object.defineProperty(res, "bytes", { value: new Uint8Array(b) }));
  return res;
}
const bodyOf = (res: Response) => (res as unknown as { bytes: Uint8Array }).bytes;

async function pushBlob(repo: string, bytes: Uint8Array): Promise<void> {
  const post = await call(`POST upload ${repo}`, `${berth.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  expect(post.status).toBe(202);
  const loc = new URL(post.headers.get("location")!, berth.url);
  loc.searchParams.set("digest", sha(bytes));
  const put = await call(`PUT blob ${sha(bytes)}`, loc.href, { method: "PUT", body: bytes, headers: { "content-type": "application/octet-stream" } });
  expect(put.status).toBe(201);
}

beforeAll(async () => {
  if (!Bun.which("strace")) throw new Error("strace is not installed: run scripts/setup --test-peers (Debian package strace)");
  fake = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === "/v2/") return new Response("{}");
      const blobs = new Map([
        [sha(upLayer), upLayer],
        [sha(upConfig), upConfig],
      ]);
      const blob = /^\/v2\/lib\/img\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path)?.[1];
      if (blob && blobs.has(blob)) return new Response(blobs.get(blob)!, { headers: { "content-type": "application/octet-stream" } });
      if (path === "/v2/lib/img/manifests/v1" || path === `/v2/lib/img/manifests/${sha(upManifest)}`) {
        const headers = { "content-type": "application/vnd.oci.image.manifest.v1+json", "docker-content-digest": sha(upManifest) };
        return new Response(req.method === "HEAD" ? null : upManifest, { headers: { ...headers, "content-length": String(upManifest.byteLength) } });
      }
      return Response.json({ errors: [{ code: "MANIFEST_UNKNOWN", message: "not here" }] }, { status: 404 });
    },
  });
  berth = await startDaemon({
    command: ["strace", "-f", "-yy", "-s", "64", "-e", `trace=${TRACED}`, "-o", tracePath, process.execPath, MAIN],
    extra: `[[sync.registries]]\nname = "fake"\nurls = ["http://127.0.0.1:${fake.port}"]\nrepos = ["lib/**"]\n`,
  });
  // strace is the child; the daemon is its tracee and holds the root lock with its PID in it
  daemonPid = Number(readFileSync(join(berth.root, ".berth", "lock"), "utf8").trim());
  expect(daemonPid).toBeGreaterThan(0);

  await pushBlob("app", config);
  await pushBlob("app", layer);
  const put = await call("PUT manifest app:v1", `${berth.url}/v2/app/manifests/v1`, { method: "PUT", body: manifest, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
  expect(put.status).toBe(201);
  const delTag = await call("DELETE tag app:v1", `${berth.url}/v2/app/manifests/v1`, { method: "DELETE" });
  expect(delTag.status).toBe(202);
  const delBlob = await call("DELETE blob layer", `${berth.url}/v2/app/blobs/${sha(layer)}`, { method: "DELETE" });
  expect(delBlob.status).toBe(202);

  const pulled = await call("GET pull-through manifest", `${berth.url}/v2/lib/img/manifests/v1`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
  expect(pulled.status).toBe(200);
  expect(sha(bodyOf(pulled))).toBe(sha(upManifest));
  for (const b of [upConfig, upLayer]) {
    const res = await call(`GET pull-through blob ${sha(b)}`, `${berth.url}/v2/lib/img/blobs/${sha(b)}`);
    expect(res.status).toBe(200);
    expect(sha(bodyOf(res))).toBe(sha(b));
  }
  // The fetched blobs (and then the manifest) are stored behind the stream, possibly after the
  // last response. No wait for files here: a file appears before its directory is fsynced, so
  // no file condition says publishing returned. The clean stop below lets pull-through work in
  // flight finish before the daemon exits (SyncService.drain), which is what this test relies on.
  // a clean stop drains pull-through work in flight; strace exits with its tracee and flushes the trace
  process.kill(daemonPid, "SIGTERM");
  const exited = await Promise.race([berth.proc.exited, Bun.sleep(20_000).then(() => "timeout")]);
  if (exited === "timeout") throw new Error(`berth did not stop within 20 s:\n${berth.logs()}`);
  events = parseTrace(readFileSync(tracePath, "utf8"));
}, 60_000);

afterAll(async () => {
  try {
    if (daemonPid > 0) process.kill(daemonPid, "SIGKILL");
  } catch {
    // already gone
  }
  await berth?.[Symbol.asyncDispose]();
  fake?.stop(true);
  work[Symbol.dispose]();
});

/** Line of the HTTP response to the request labelled `label`. */
function responseTo(label: string): number {
  const all = responses(events);
  expect(all.length).toBe(requests.length);
  const k = requests.indexOf(label);
  expect(k).toBeGreaterThanOrEqual(0);
  return all[k]!.event.start;
}

/** The line of the response before the one to `label` (or -1 for the first). */
function responseBefore(label: string): number {
  const k = requests.indexOf(label);
  return k === 0 ? -1 : responses(events)[k - 1]!.event.end;
}

const inRoot = (path: string) => path.startsWith(`${berth.root}/`);
/** Upload scratch files and the derived database: nothing acknowledged depends on their entries. */
const isScratch = (path: string) => path.startsWith(join(berth.root, ".berth") + "/") && !path.startsWith(join(berth.root, ".berth", "pool"));

/** Files whose data was shown durable: synced after their last write, or links of such files. */
const durableData = new Set<string>();

/** Checks that `src` is durable data at line `at`: an earlier link of durable data, or synced on its own descriptor after its last write. */
function expectDataSynced(src: string, at: number, what: string): void {
  if (durableData.has(src)) return;
  const writes = writesTo(events, src).filter((w) => w.end < at);
  expect(writes.length, `${what}: no write to ${src} traced`).toBeGreaterThan(0);
  const lastWrite = Math.max(...writes.map((w) => w.end));
  const synced = between(syncsOf(events, src), lastWrite, at);
  expect(synced.length, `${what}: ${src} is not synced between its last write and being linked or renamed`).toBeGreaterThan(0);
}

/**
 * Checks every durability-relevant change between `after` and `before` (lines): links carry
 * synced data and have their directory synced; renames replace with a synced temp file and
 * have their directory synced; new directories and removed files have their parent synced.
 */
function expectDurable(after: number, before: number, what: string): TraceEvent[] {
  const window = between(events, after, before);
  const changes: TraceEvent[] = [];
  for (const e of calls(window, "link", "linkat")) {
    const { src, dst } = twoPaths(e);
    expectDataSynced(src, e.start, what);
    expect(dirSyncsAfter(events, dst, e.end, before).length, `${what}: ${dirname(dst)} is not synced after linking ${dst}`).toBeGreaterThan(0);
    durableData.add(dst);
    changes.push(e);
  }
  for (const e of calls(window, "rename", "renameat", "renameat2")) {
    const { src, dst } = twoPaths(e);
    if (!inRoot(dst) || dst.startsWith(join(berth.root, ".berth", "reserve"))) continue;
    const opened = calls(events, "openat").filter((o) => o.opened === src && o.end < e.start);
    expect(opened.length, `${what}: temp file ${src} not opened before its rename`).toBeGreaterThan(0);
    expectDataSynced(src, e.start, what);
    expect(dirSyncsAfter(events, dst, e.end, before).length, `${what}: ${dirname(dst)} is not synced after renaming onto ${dst}`).toBeGreaterThan(0);
    changes.push(e);
  }
  for (const e of calls(window, "mkdir", "mkdirat", "unlink", "unlinkat")) {
    const path = e.strings[0]!;
    if (!inRoot(path) || isScratch(path)) continue;
    expect(dirSyncsAfter(events, path, e.end, before).length, `${what}: ${dirname(path)} is not synced after ${e.name} of ${path}`).toBeGreaterThan(0);
    changes.push(e);
  }
  return changes;
}

const changed = (changes: TraceEvent[], name: RegExp, path: string) => changes.some((e) => name.test(e.name) && e.strings.includes(path));

test("every HTTP request got exactly one traced response", () => {
  expect(events.length).toBeGreaterThan(100);
  expect(responses(events).map((r) => r.status)).toEqual([202, 201, 202, 201, 201, 202, 202, 200, 200, 200]);
});

test("a pushed blob is synced before it is linked, and its directories before the 201", () => {
  for (const b of [config, layer]) {
    const label = `PUT blob ${sha(b)}`;
    const changes = expectDurable(responseBefore(label), responseTo(label), label);
    expect(changed(changes, /^link/, join(berth.root, "app/blobs/sha256", hexOf(sha(b))))).toBe(true);
    expect(changed(changes, /^link/, join(berth.root, ".berth/pool/sha256", hexOf(sha(b))))).toBe(true);
  }
});

test("a pushed manifest is linked from a synced file and index.json replaced durably before the 201", () => {
  const label = "PUT manifest app:v1";
  const changes = expectDurable(responseBefore(label), responseTo(label), label);
  expect(changed(changes, /^link/, join(berth.root, "app/blobs/sha256", hexOf(sha(manifest))))).toBe(true);
  expect(changed(changes, /^rename/, join(berth.root, "app/index.json"))).toBe(true);
});

test("deleting a tag replaces index.json durably before the 202", () => {
  const label = "DELETE tag app:v1";
  const changes = expectDurable(responseBefore(label), responseTo(label), label);
  expect(changed(changes, /^rename/, join(berth.root, "app/index.json"))).toBe(true);
});

test("deleting a blob syncs its directory after the unlink, before the 202", () => {
  const label = "DELETE blob layer";
  const changes = expectDurable(responseBefore(label), responseTo(label), label);
  expect(changed(changes, /^unlink/, join(berth.root, "app/blobs/sha256", hexOf(sha(layer))))).toBe(true);
});

test("pull-through fetches store synced data, linked with their directories synced", () => {
  const label = "GET pull-through manifest";
  const changes = expectDurable(responseBefore(label), Number.MAX_SAFE_INTEGER, label);
  for (const digest of [sha(upManifest), sha(upConfig), sha(upLayer)]) {
    expect(changed(changes, /^link/, join(berth.root, "lib/img/blobs/sha256", hexOf(digest))), digest).toBe(true);
  }
  expect(changed(changes, /^rename/, join(berth.root, "lib/img/index.json"))).toBe(true);
});
