/**
 * Imports in process: offline on a stopped daemon's root (`--config`, under the root lock,
 * refused while a daemon holds the root), and through the admin API from a path on the
 * device (`[bundle] import_dirs`, off by default; a path outside is refused; run as a task
 * with progress, its bytes counted as background IO of the scheduler's budget).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { getManifest, headBlob, makeTemp, sha256 } from "../helpers/clients";
import { berth, shown } from "../helpers/cli";
import { bundle, pushImage } from "./helpers";

setDefaultTimeout(90_000);

let source: Daemon;
let work: string;
let img: { digest: string; layer: string };
let file: string;

beforeAll(async () => {
  work = makeTemp("berth-bundle-local-");
  source = await startDaemon();
  img = await pushImage(source.url, "plant/hmi", "3.1", 2 << 20);
  mkdirSync(join(work, "stick"));
  file = join(work, "stick", "hmi.tar");
  const r = await bundle(work, source.url, ["export", "-o", file, "plant/hmi:3.1"]);
  if (r.code !== 0) throw new Error(shown(r));
});

afterAll(async () => {
  await source?.[Symbol.asyncDispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("offline, on a stopped daemon's root", () => {
  test("imports under the root lock; refused while a daemon runs there; the daemon then serves the image", async () => {
    const root = join(work, "offline-root");
    mkdirSync(root);
    const config = join(work, "offline.toml");
    writeFileSync(config, `[storage]\nroot = "${root}"\n[log]\nlevel = "warn"\n`);
    {
      await using running = await startDaemon({ root });
      const refused = await berth(work, ["bundle", "import", file, "--config", config]);
      expect(refused.code, shown(refused)).toBe(1);
      expect(refused.stderr).toMatch(/in use|lock|running/i);
      expect(await headBlob(running.url, "plant/hmi", img.layer)).toBe(404);
    }
    const dry = await berth(work, ["bundle", "import", file, "--config", config, "--dry-run", "--json"]);
    expect(dry.code, shown(dry)).toBe(0);
    expect((JSON.parse(dry.stdout) as { entries: { state: string }[] }).entries.map((e) => e.state)).toEqual(["new"]);
    const r = await berth(work, ["bundle", "import", file, "--config", config, "--json"]);
    expect(r.code, shown(r)).toBe(0);
    expect((JSON.parse(r.stdout) as { blobsUploaded: number }).blobsUploaded).toBe(2);
    const again = await berth(work, ["bundle", "import", file, "--config", config, "--json"]);
    expect((JSON.parse(again.stdout) as { entries: { state: string }[] }).entries.map((e) => e.state)).toEqual(["unchanged"]);
    await using daemon = await startDaemon({ root });
    const m = await getManifest(daemon.url, "plant/hmi", "3.1");
    expect(sha256(m.bytes)).toBe(img.digest);
    const layer = await fetch(`${daemon.url}/v2/plant/hmi/blobs/${img.layer}`);
    expect(sha256(new Uint8Array(await layer.arrayBuffer()))).toBe(img.layer);
  });
});

describe("offline, several roots", () => {
  test("a repository under a [[storage.subpaths]] prefix lands in that root", async () => {
    const main = join(work, "main-root");
    const ssd = join(work, "ssd-root");
    mkdirSync(main);
    mkdirSync(ssd);
    const config = join(work, "roots.toml");
    writeFileSync(config, `[storage]\nroot = "${main}"\n[[storage.subpaths]]\nprefix = "plant/"\nroot = "${ssd}"\n[log]\nlevel = "warn"\n`);
    const r = await berth(work, ["bundle", "import", file, "--config", config]);
    expect(r.code, shown(r)).toBe(0);
    expect(existsSync(join(ssd, "plant", "hmi", "blobs", "sha256", img.layer.slice(7)))).toBe(true);
    expect(existsSync(join(main, "plant"))).toBe(false);
  });
});

describe("the admin API, from a path on the device", () => {
  test("off by default: 404", async () => {
    await using daemon = await startDaemon();
    const res = await fetch(`${daemon.url}/api/v1/bundle/import?path=${encodeURIComponent(file)}`, { method: "POST" });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toContain("import_dirs");
  });

  test("imports from import_dirs as a task with progress under the IO budget; a path outside (or a link out) is refused", async () => {
    await using daemon = await startDaemon({ extra: `[bundle]\nimport_dirs = ["${join(work, "stick")}"]\n` });
    const outside = join(work, "outside.tar");
    writeFileSync(outside, "not a bundle");
    symlinkSync(outside, join(work, "stick", "link.tar"));
    for (const path of [outside, join(work, "stick", "link.tar"), join(work, "stick", "..", "outside.tar")]) {
      const res = await fetch(`${daemon.url}/api/v1/bundle/import?path=${encodeURIComponent(path)}`, { method: "POST" });
      expect(res.status).toBe(403);
    }
    const missing = await fetch(`${daemon.url}/api/v1/bundle/import?path=${encodeURIComponent(join(work, "stick", "nope.tar"))}`, { method: "POST" });
    expect(missing.status).toBe(404);

    const dry = await fetch(`${daemon.url}/api/v1/bundle/import?path=${encodeURIComponent(file)}&dry_run=true`, { method: "POST" });
    expect(dry.status).toBe(200);
    expect(((await dry.json()) as { entries: { state: string; bytes: number }[] }).entries[0]!.state).toBe("new");
    expect(await headBlob(daemon.url, "plant/hmi", img.layer)).toBe(404);

    const before = await scheduled(daemon.url);
    const r = await berth(work, ["bundle", "import", "--on-device", file, "--registry", daemon.url, "--json"]);
    expect(r.code, shown(r)).toBe(0);
    expect((JSON.parse(r.stdout) as { blobsUploaded: number }).blobsUploaded).toBe(2);
    const tasks = (await (await fetch(`${daemon.url}/api/v1/tasks`)).json()) as { tasks: { kind: string; state: string; bytes: number; totalBytes: number }[] };
    const task = tasks.tasks.find((t) => t.kind === "bundle-import")!;
    expect(task.state).toBe("succeeded");
    expect(task.bytes).toBe(task.totalBytes);
    expect(task.bytes).toBeGreaterThanOrEqual(2 << 20);
    const after = await scheduled(daemon.url);
    expect(after.write - before.write).toBeGreaterThanOrEqual(2 << 20);
    expect(after.read - before.read).toBeGreaterThanOrEqual(2 << 20);
    expect(sha256((await getManifest(daemon.url, "plant/hmi", "3.1")).bytes)).toBe(img.digest);
  });
});

/** Background bytes the scheduler's IO budget has counted (read, write). */
async function scheduled(url: string): Promise<{ read: number; write: number }> {
  const s = (await (await fetch(`${url}/api/v1/scheduler`)).json()) as { budget?: { background?: { read: { bytes: number }; write: { bytes: number } } } };
  const bg = s.budget?.background;
  if (!bg) throw new Error(`no budget in the scheduler's state: ${JSON.stringify(s).slice(0, 300)}`);
  return { read: bg.read.bytes, write: bg.write.bytes };
}
