/**
 * The CLI client through its real process against the real daemon (issue 12): --json
 * shapes, exit codes (0 ok, 2 usage, 3 not found, 5 unreachable, 6 unsupported), rm's
 * confirmation, the online gc/scrub followed as tasks (quiet in a pipe), the task API, and
 * `berth bench` with a small workload (counts and shapes, never timings).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDaemon, type Daemon } from "../helpers/daemon";
import { berth, shown } from "../helpers/cli";
import { listTags, waitFor } from "../helpers/clients";
import { startFakeUpstream } from "../helpers/fakeupstream";
import type { TaskView } from "../../daemon/tasks/tasks";

let daemon: Daemon;
let home: string;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "berth-cli-"));
  daemon = await startDaemon();
});
afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
  rmSync(home, { recursive: true, force: true });
});

const run = (...args: string[]) => berth(home, args);

describe("berth bench", () => {
  test("push: counts and JSON shape", async () => {
    const r = await run("bench", daemon.url, "--count", "5", "--size", "3KiB", "--concurrency", "2", "--repo", "bench/push", "--seed", "7", "--json");
    expect(r.code, shown(r)).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.options).toMatchObject({ workload: "push", count: 5, size: 3072, concurrency: 2, repo: "bench/push", seed: 7 });
    expect(j.results).toHaveLength(1);
    const [res] = j.results;
    expect(res).toMatchObject({ registry: daemon.url, workload: "push", count: 5, errors: [] });
    expect(res.ops).toHaveLength(1);
    expect(res.ops[0]).toMatchObject({ op: "push", count: 5, errors: 0 });
    expect(Object.keys(res.ops[0].latencyMs).sort()).toEqual(["max", "mean", "p50", "p90", "p99"]);
    expect(res.ops[0].bytes).toBeGreaterThan(5 * 3072);
    expect((await listTags(daemon.url, "bench/push")).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `bench-7-${i}`));
    // nothing of a progress bar in a pipe
    expect(r.stderr).toBe("");
  });

  test("mixed: the share of pushes, every pull checked; --compare gives two results", async () => {
    const r = await run("bench", daemon.url, "--compare", daemon.url, "--workload", "mixed", "--count", "10", "--push-ratio", "0.3", "--images", "2", "--size", "2MiB", "--repo", "bench/mixed", "--seed", "9", "--json");
    expect(r.code, shown(r)).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.results).toHaveLength(2);
    for (const res of j.results) {
      const byOp = Object.fromEntries(res.ops.map((o: { op: string; count: number; errors: number }) => [o.op, o]));
      expect(byOp.push).toMatchObject({ count: 3, errors: 0 });
      expect(byOp.pull).toMatchObject({ count: 7, errors: 0 });
    }
    const human = await run("bench", daemon.url, "--compare", daemon.url, "--workload", "pull", "--count", "2", "--size", "1KiB", "--repo", "bench/human");
    expect(human.code, shown(human)).toBe(0);
    expect(human.stdout).toContain("P99 MS");
    expect(human.stdout).toContain("B/A");
  });

  test("bad sizes and workloads are usage errors", async () => {
    for (const [flag, value] of [["--size", "lots"], ["--workload", "dance"], ["--count", "0"]] as const) {
      const r = await run("bench", daemon.url, flag, value);
      expect(r.code, shown(r)).toBe(2);
      expect(r.stderr).toStartWith(`berth: ${flag} "${value}"`);
      expect(r.stderr).toContain("usage: berth bench");
    }
  });
});

describe("content commands", () => {
  test("repos, images, inspect: --json shapes and tables", async () => {
    const repos = await run("repos", "-r", daemon.url, "--json");
    expect(repos.code, shown(repos)).toBe(0);
    expect(JSON.parse(repos.stdout).repositories).toContain("bench/push");
    const images = await run("images", "bench/push", "-r", daemon.url, "--json");
    expect(images.code, shown(images)).toBe(0);
    const rows = JSON.parse(images.stdout).images;
    expect(rows).toHaveLength(5);
    expect(rows[0]).toMatchObject({ repo: "bench/push", mediaType: "application/vnd.oci.image.manifest.v1+json", platforms: [] });
    expect(rows[0].digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const table = await run("images", "bench/push", "-r", daemon.url);
    expect(table.stdout.split("\n")[0]).toMatch(/^REPOSITORY\s+TAG\s+DIGEST\s+SIZE\s+PLATFORMS$/);
    const inspect = await run("inspect", "bench/push:bench-7-0", "-r", daemon.url, "--json");
    expect(inspect.code, shown(inspect)).toBe(0);
    const doc = JSON.parse(inspect.stdout);
    expect(doc).toMatchObject({ repo: "bench/push", reference: "bench-7-0", os: "linux", architecture: "amd64", labels: { "org.berth.bench": "7-0" } });
    expect(doc.layers).toHaveLength(1);
    expect(doc.layers[0].size).toBe(3072);
  });

  test("not found exits 3; a bad reference or flag exits 2", async () => {
    const missing = await run("inspect", "bench/push:nope", "-r", daemon.url);
    expect(missing.code, shown(missing)).toBe(3);
    expect(missing.stderr).toContain("nope");
    expect((await run("inspect", "Bad..Ref", "-r", daemon.url)).code).toBe(2);
    expect((await run("repos", "-r", daemon.url, "--frobnicate")).code).toBe(2);
    const none = await run("repos");
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("no registry given");
  });

  test("rm: refused without --yes off a terminal (nothing deleted), done with it", async () => {
    const refused = await run("rm", "bench/push:bench-7-1", "-r", daemon.url);
    expect(refused.code, shown(refused)).toBe(2);
    expect(await listTags(daemon.url, "bench/push")).toContain("bench-7-1");
    const done = await run("rm", "bench/push:bench-7-1", "-r", daemon.url, "--yes", "--json");
    expect(done.code, shown(done)).toBe(0);
    expect(JSON.parse(done.stdout)).toEqual({ deleted: "bench/push:bench-7-1" });
    expect(await listTags(daemon.url, "bench/push")).not.toContain("bench-7-1");
  });

  test("an unreachable registry exits 5", async () => {
    const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    const url = `http://127.0.0.1:${closed.port}`;
    await closed.stop(true);
    const r = await run("repos", "-r", url);
    expect(r.code, shown(r)).toBe(5);
    expect(r.stderr).toContain("cannot reach");
  });
});

describe("search", () => {
  test("GlobalSearch on berth's own search API; off in config, exit 6", async () => {
    const r = await run("search", "push", "-r", daemon.url, "--json");
    expect(r.code, shown(r)).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.repositories.map((x: { Name: string }) => x.Name)).toContain("bench/push");
    const tagsFound = await run("search", "bench/push:", "-r", daemon.url, "--json");
    expect(tagsFound.code, shown(tagsFound)).toBe(0);
    expect(JSON.parse(tagsFound.stdout).images.map((i: { Tag: string }) => i.Tag).sort()).toEqual((await listTags(daemon.url, "bench/push")).sort());
    await using off = await startDaemon({ extra: "[search]\nenabled = false\n" });
    const none = await run("search", "push", "-r", off.url);
    expect(none.code, shown(none)).toBe(6);
    expect(none.stderr).toContain("has no search API");
  });

  test("a registry without the search API exits 6 and says so", async () => {
    await using fake = startFakeUpstream((_req, path) => (path === "/v2/" ? new Response("{}") : new Response('{"errors":[{"code":"NOT_FOUND","message":"no"}]}', { status: 404 })));
    const r = await run("search", "app", "-r", fake.url);
    expect(r.code, shown(r)).toBe(6);
    expect(r.stderr).toContain("has no search API");
  });

  test("GlobalSearch answers become a table and --json", async () => {
    let asked = "";
    await using fake = startFakeUpstream(async (req, path) => {
      if (path !== "/v2/_zot/ext/search") return undefined;
      asked = JSON.stringify(await req.json());
      return Response.json({ data: { GlobalSearch: { Repos: [{ Name: "team/app", LastUpdated: "2026-01-01T00:00:00Z", Size: "2048", NewestImage: { Tag: "v1", Digest: "sha256:" + "a".repeat(64) } }], Images: [] } } });
    });
    const r = await run("search", "app", "-r", fake.url, "--json");
    expect(r.code, shown(r)).toBe(0);
    expect(asked).toContain("GlobalSearch");
    expect(JSON.parse(asked).variables).toEqual({ q: "app" });
    expect(JSON.parse(r.stdout).repositories[0].Name).toBe("team/app");
    const human = await run("search", "app", "-r", fake.url);
    expect(human.stdout).toMatch(/team\/app\s+v1\s+2\.0 KiB/);
  });
});

describe("admin commands and tasks", () => {
  test("gc and scrub --registry: tasks followed, quiet in a pipe; --registry with --config refused", async () => {
    const gc = await run("gc", "--registry", daemon.url, "--dry-run", "--json");
    expect(gc.code, shown(gc)).toBe(0);
    const task = JSON.parse(gc.stdout);
    expect(task).toMatchObject({ kind: "gc", state: "succeeded", error: null, result: { dryRun: true } });
    expect(gc.stderr).toBe("");
    const scrub = await run("scrub", "-r", daemon.url);
    expect(scrub.code, shown(scrub)).toBe(0);
    expect(scrub.stdout).toMatch(/^scrub: \d+ blobs \(.+\) checked, 0 quarantined\n$/);
    expect(scrub.stderr).not.toContain("\r");
    const both = await run("gc", "--registry", daemon.url, "--config", daemon.configPath);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("not both");
  });

  test("on a terminal the progress line is drawn (script(1) gives the command a pty)", async () => {
    const cmd = [process.execPath, join(import.meta.dir, "../../daemon/main.ts"), "scrub", "-r", daemon.url].map((a) => `'${a}'`).join(" ");
    const proc = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, XDG_CONFIG_HOME: home } });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    expect(code, out).toBe(0);
    // the bar: redrawn in place, with the blob count, bytes and a rate
    expect(out).toMatch(/\r\x1b\[Kscrub \[[#.]{24}\] 100% \d+\/\d+ [\d.]+ [KMG]?i?B\/[\d.]+ [KMG]?i?B [\d.]+ [KMG]?i?B\/s/);
    expect(out).toMatch(/scrub: \d+ blobs/);
  });

  test("the task API: 202 + Location, progress to done/total, result; synchronous answer kept", async () => {
    const res = await fetch(`${daemon.url}/api/v1/storage/scrub?async=true`, { method: "POST" });
    expect(res.status).toBe(202);
    const location = res.headers.get("Location")!;
    const started = (await res.json()) as TaskView;
    expect(location).toBe(`/api/v1/tasks/${started.id}`);
    expect(started).toMatchObject({ kind: "scrub", state: "running" });
    let task = started;
    await waitFor("the scrub task to end", async () => (task = (await (await fetch(daemon.url + location)).json()) as TaskView).state !== "running", 20_000);
    expect(task.state).toBe("succeeded");
    expect(task.total).toBeGreaterThan(0);
    const result = task.result as { blobsChecked: number; bytesChecked: number };
    expect(task.done).toBe(result.blobsChecked);
    expect(task.bytes).toBe(result.bytesChecked);
    expect(task.finished).not.toBeNull();
    const list = (await (await fetch(`${daemon.url}/api/v1/tasks`)).json()) as { tasks: TaskView[] };
    expect(list.tasks.map((t) => t.id)).toContain(started.id);
    expect((await fetch(`${daemon.url}/api/v1/tasks/nope`)).status).toBe(404);
    const prefer = await fetch(`${daemon.url}/api/v1/storage/gc?dry_run=true`, { method: "POST", headers: { Prefer: "respond-async" } });
    expect(prefer.status).toBe(202);
    const sync = await fetch(`${daemon.url}/api/v1/storage/gc?dry_run=true`, { method: "POST" });
    expect(sync.status).toBe(200);
    expect(await sync.json()).toMatchObject({ dryRun: true });
  });

  test("status and sync status: --json shapes; an unknown upstream exits 3", async () => {
    const status = await run("status", "-r", daemon.url, "--json");
    expect(status.code, shown(status)).toBe(0);
    const j = JSON.parse(status.stdout);
    expect(j).toMatchObject({ url: daemon.url, info: { ready: true } });
    expect(typeof j.storage.quota.usedBytes).toBe("number");
    const sync = await run("sync", "status", "-r", daemon.url, "--json");
    expect(sync.code, shown(sync)).toBe(0);
    expect(JSON.parse(sync.stdout)).toMatchObject({ registries: [], fetches: [] });
    const unknown = await run("sync", "run", "nowhere", "-r", daemon.url);
    expect(unknown.code, shown(unknown)).toBe(3);
  });

  test("sync run --wait follows the run as a task to its end; sync status shows the last run", async () => {
    await using mirror = await startDaemon({ extra: `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "up"\nurls = ["${daemon.url}"]\nrepos = ["bench/push"]\n` });
    const r = await run("sync", "run", "up", "--wait", "-r", mirror.url, "--json");
    expect(r.code, shown(r)).toBe(0);
    const upstreamTags = await listTags(daemon.url, "bench/push");
    expect(JSON.parse(r.stdout)).toMatchObject({ kind: "sync", state: "succeeded", result: { upstream: "up", report: { images: upstreamTags.length, failed: 0 } } });
    expect(r.stderr).toBe("");
    // the run is over when the task is: the mirror holds the upstream's tags now
    expect((await listTags(mirror.url, "bench/push")).sort()).toEqual((await listTags(daemon.url, "bench/push")).sort());
    const status = await run("sync", "status", "-r", mirror.url, "--json");
    const view = JSON.parse(status.stdout);
    expect(view.registries[0].name).toBe("up");
    expect(view.registries[0].lastRun.at).toBeString();
    const human = await run("sync", "status", "-r", mirror.url);
    expect(human.stdout).toMatch(/^UPSTREAM\s+URL\s+STATE\s+LAST RUN\nup\s+http/);
  });

  test("a sync task stays running while the upstream holds the run, and ends with it", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    await using fake = startFakeUpstream(async (_req, path) => {
      if (path !== "/v2/lib/app/tags/list") return undefined;
      await gate;
      return Response.json({ name: "lib/app", tags: [] });
    });
    await using mirror = await startDaemon({ extra: `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "held"\nurls = ["${fake.url}"]\nrepos = ["lib/app"]\non_demand = false\n` });
    const res = await fetch(`${mirror.url}/api/v1/sync/held/run?async=true`, { method: "POST" });
    expect(res.status).toBe(202);
    const location = res.headers.get("Location")!;
    await waitFor("the sync run to ask the upstream", () => fake.hits("/v2/lib/app/tags/list") > 0);
    const held = (await (await fetch(mirror.url + location)).json()) as TaskView;
    expect(held).toMatchObject({ kind: "sync", state: "running", finished: null });
    release();
    let task = held;
    await waitFor("the sync task to end", async () => (task = (await (await fetch(mirror.url + location)).json()) as TaskView).state !== "running");
    expect(task).toMatchObject({ state: "succeeded", result: { upstream: "held", report: { images: 0, failed: 0 } } });
  });

  test("--help on every client command exits 0 with its usage", async () => {
    for (const cmd of ["login", "logout", "repos", "images", "inspect", "rm", "search", "sync", "status", "bench", "gc", "scrub"]) {
      const r = await run(cmd, "--help");
      expect(r.code, `${cmd}: ${shown(r)}`).toBe(0);
      expect(r.stdout).toStartWith(`usage: berth ${cmd}`);
    }
  });
});
