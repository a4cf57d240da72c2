/**
 * Bundles that go wrong: a flipped byte in a layer or a manifest, a truncated archive (a
 * clear error, and no tag pointing at a partial image), the daemon SIGKILLed in the middle
 * of an import (the rerun resumes: what was committed is skipped, the rest completes), and
 * access: an export never carries a repository the caller may not pull, an import never
 * writes a repository the caller may not push to.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, copyFileSync, mkdirSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync, closeSync, statSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { catalog, getManifest, headBlob, makeTemp, runOk, sha256, waitFor } from "../helpers/clients";
import { berth, shown } from "../helpers/cli";
import { scanTar } from "../../daemon/bundle/tar";
import { bundle, pushImage } from "./helpers";

setDefaultTimeout(90_000);

let source: Daemon;
let work: string;
let images: { digest: string; layer: string }[];
let file: string;

beforeAll(async () => {
  work = makeTemp("berth-bundle-fail-");
  source = await startDaemon();
  images = [];
  for (const n of [1, 2, 3]) images.push(await pushImage(source.url, "big/app", `v${n}`, 6 << 20));
  file = join(work, "big.tar");
  const r = await bundle(work, source.url, ["export", "-o", file, "big/app:v1", "big/app:v2", "big/app:v3"]);
  if (r.code !== 0) throw new Error(shown(r));
});

afterAll(async () => {
  await source?.[Symbol.asyncDispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A copy of the bundle with the byte at `offset` flipped. */
function flipped(name: string, offset: number): string {
  const out = join(work, name);
  copyFileSync(file, out);
  const fd = openSync(out, "r+");
  const b = Buffer.alloc(1);
  const data = readFileSync(out).subarray(offset, offset + 1);
  b[0] = data[0]! ^ 0xff;
  writeSync(fd, b, 0, 1, offset);
  closeSync(fd);
  return out;
}

async function tagsOf(url: string, repo: string): Promise<string[]> {
  const res = await fetch(`${url}/v2/${repo}/tags/list`);
  if (res.status === 404) return [];
  return ((await res.json()) as { tags: string[] | null }).tags ?? [];
}

describe("a damaged bundle", () => {
  test("a flipped byte in a layer: a clear error naming the blob; no tag on the image", async () => {
    await using target = await startDaemon();
    const layer = (await scanTar(file)).get(`blobs/sha256/${images[1]!.layer.slice(7)}`)!;
    const bad = flipped("flip-layer.tar", layer.offset + 1000);
    const r = await bundle(work, target.url, ["import", bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(images[1]!.layer);
    expect(r.stderr).toMatch(/corrupt|digest/i);
    // v1 (complete, before the bad one) may be in; v2 is not tagged, nor anything after it
    expect(await tagsOf(target.url, "big/app")).not.toContain("v2");
    expect(await tagsOf(target.url, "big/app")).not.toContain("v3");
    expect((await getManifest(target.url, "big/app", images[1]!.digest)).status).toBe(404);
    expect(await headBlob(target.url, "big/app", images[1]!.layer)).toBe(404);
  });

  test("a flipped byte in a manifest: refused before anything is written", async () => {
    await using target = await startDaemon();
    const m = (await scanTar(file)).get(`blobs/sha256/${images[2]!.digest.slice(7)}`)!;
    const bad = flipped("flip-manifest.tar", m.offset + 20);
    const r = await bundle(work, target.url, ["import", bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`corrupt: manifest ${images[2]!.digest}`);
    expect(await tagsOf(target.url, "big/app")).toEqual([]);
    expect(await headBlob(target.url, "big/app", images[0]!.layer)).toBe(404);
  });

  test("a truncated archive: refused before anything is written", async () => {
    await using target = await startDaemon();
    for (const cut of [Math.floor(statSync(file).size / 2), statSync(file).size - 1024]) {
      const bad = join(work, `cut-${cut}.tar`);
      copyFileSync(file, bad);
      truncateSync(bad, cut);
      const r = await bundle(work, target.url, ["import", bad]);
      expect(r.code, shown(r)).toBe(1);
      expect(r.stderr).toContain("truncated");
      expect(await tagsOf(target.url, "big/app")).toEqual([]);
      expect(await headBlob(target.url, "big/app", images[0]!.layer)).toBe(404);
    }
  });
});

describe("an interrupted import", () => {
  test("SIGKILL of the daemon mid-import: no partial image tagged; the rerun skips what was committed and completes", async () => {
    const root = join(work, "killed-root");
    let target = await startDaemon({ root });
    try {
      const MAIN = resolve(import.meta.dir, "../../daemon/main.ts");
      // a slow import (4 MiB/s over 18 MiB): the daemon is killed once the first image is in
      const proc = Bun.spawn([process.execPath, MAIN, "bundle", "import", file, "--rate", "4MiB", "--registry", target.url], { stdout: "pipe", stderr: "pipe", env: { ...process.env, XDG_CONFIG_HOME: work } });
      await waitFor("the first image imported", async () => (await tagsOf(target.url, "big/app")).includes("v1"), 30_000, 20);
      await target.kill();
      const code = await proc.exited;
      const stderr = await new Response(proc.stderr).text();
      expect(code, stderr).not.toBe(0);
      target = await startDaemon({ root });
      const tags = await tagsOf(target.url, "big/app");
      expect(tags).toContain("v1");
      // a tag is there only with its whole image
      for (const [i, img] of images.entries()) {
        if (!tags.includes(`v${i + 1}`)) continue;
        expect(await headBlob(target.url, "big/app", img.layer)).toBe(200);
      }
      const r = await bundle(work, target.url, ["import", file, "--json"]);
      expect(r.code, shown(r)).toBe(0);
      const report = JSON.parse(r.stdout) as { entries: { state: string }[]; blobsUploaded: number };
      expect(report.entries[0]!.state).toBe("unchanged");
      expect(report.blobsUploaded).toBeLessThan(images.length * 2);
      for (const [i, img] of images.entries()) {
        const m = await getManifest(target.url, "big/app", `v${i + 1}`);
        expect(m.status).toBe(200);
        expect(sha256(m.bytes)).toBe(img.digest);
        expect(await headBlob(target.url, "big/app", img.layer)).toBe(200);
      }
    } finally {
      await target[Symbol.asyncDispose]();
    }
  });
});

describe("access", () => {
  test("export carries only what the caller may pull; import writes only where the caller may push", async () => {
    const dir = join(work, "auth");
    mkdirSync(dir, { recursive: true });
    const htpasswd = join(dir, "htpasswd");
    await runOk(["htpasswd", "-B", "-b", "-c", htpasswd, "ops", "ops-pw"]);
    await runOk(["htpasswd", "-B", "-b", htpasswd, "admin", "admin-pw"]);
    chmodSync(htpasswd, 0o600);
    const extra = `[auth]\nhtpasswd = "${htpasswd}"\nadmins = ["admin"]\n[[access]]\nrepos = ["**"]\nusers = { admin = ["*"] }\n[[access]]\nrepos = ["open/**"]\nusers = { ops = ["pull", "push"] }\n`;
    await using guarded = await startDaemon({ extra });
    const adminAuth = { Authorization: `Basic ${btoa("admin:admin-pw")}` };
    // set up as admin: one open and one secret repository
    for (const repo of ["open/app", "secret/app"]) {
      const res = await fetch(`${guarded.url}/v2/${repo}/blobs/uploads/?digest=${sha256("{}")}`, { method: "POST", body: "{}", headers: adminAuth });
      expect(res.status).toBe(201);
      const doc = JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256("{}"), size: 2 }, layers: [] });
      const put = await fetch(`${guarded.url}/v2/${repo}/manifests/v1`, { method: "PUT", body: doc, headers: { ...adminAuth, "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
      expect(put.status).toBe(201);
    }
    const credentials = join(dir, "credentials.json");
    writeFileSync(credentials, JSON.stringify({ registries: { g: { url: guarded.url, username: "ops", password: "ops-pw" } } }), { mode: 0o600 });
    const asOps = (args: string[]) => berth(dir, ["bundle", ...args, "--registry", "g"], "", { BERTH_CREDENTIALS: credentials });

    // export: naming the secret repository is refused and writes no file; --all leaves it out
    const named = join(dir, "named.tar");
    const refused = await asOps(["export", "-o", named, "open/app:v1", "secret/app:v1"]);
    expect(refused.code, shown(refused)).toBe(4);
    expect(existsSync(named) || existsSync(`${named}.partial`)).toBe(false);
    const all = join(dir, "all.tar");
    const ok = await asOps(["export", "-o", all, "--all", "--json"]);
    expect(ok.code, shown(ok)).toBe(0);
    expect((JSON.parse(ok.stdout) as { entries: { repo: string }[] }).entries.map((e) => e.repo)).toEqual(["open/app"]);
    expect(readFileSync(all).includes("secret/")).toBe(false);

    // import: a bundle holding secret/x is refused before anything is written, open/x included
    const mixed = join(dir, "mixed.tar");
    const src = await bundle(work, source.url, ["export", "-o", mixed, "big/app:v1"]);
    expect(src.code).toBe(0);
    const rewritten = join(dir, "mixed2.tar");
    await runOk(["bash", "-c", `set -e; d=$(mktemp -d); tar -C "$d" -xf "${mixed}"; python3 - "$d/index.json" <<'PY'
import json,sys
p=sys.argv[1]; j=json.load(open(p)); e=j["manifests"][0]
a=dict(e); a["annotations"]={"io.berth.bundle.repository":"open/x","org.opencontainers.image.ref.name":"open/x:v1"}
b=dict(e); b["annotations"]={"io.berth.bundle.repository":"secret/x","org.opencontainers.image.ref.name":"secret/x:v1"}
j["manifests"]=[a,b]; json.dump(j,open(p,"w"))
PY
tar -C "$d" -cf "${rewritten}" oci-layout index.json blobs; rm -rf "$d"`]);
    const denied = await asOps(["import", rewritten]);
    expect(denied.code, shown(denied)).toBe(4);
    expect(denied.stderr).toContain("secret/x");
    const admin = { headers: adminAuth };
    for (const repo of ["open/x", "secret/x"]) expect((await fetch(`${guarded.url}/v2/${repo}/tags/list`, admin)).status).toBe(404);
    expect(await catalogAs(guarded.url, adminAuth)).toEqual(["open/app", "secret/app"]);
  });
});

async function catalogAs(url: string, headers: Record<string, string>): Promise<string[]> {
  return ((await (await fetch(`${url}/v2/_catalog`, { headers })).json()) as { repositories: string[] }).repositories;
}
void catalog;
