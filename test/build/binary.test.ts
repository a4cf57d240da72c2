/**
 * The single-file binaries from scripts/build: the x64 one natively, the arm64 one under
 * qemu-aarch64-static (user-mode emulation with Debian's arm64 libc). Each starts, accepts a
 * push from skopeo (the upload is hashed in the worker thread, which must be embedded in the
 * binary) and serves it back byte-exact, and reports the stamped version. The x64 one also
 * serves its embedded assets: the API docs and the web UI.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { startDaemon } from "../helpers/daemon";
import { buildUi } from "../../ui/build";
import { type Fixtures, Skopeo, buildFixtures, layoutBlobs, layoutTag, makeTemp, runOk } from "../helpers/clients";

setDefaultTimeout(180_000);

const REPO = resolve(import.meta.dir, "../..");
const QEMU = ["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"];
const STAMP = "9.8.7-test";

let work: string;
let fx: Fixtures;
let skopeo: Skopeo;

beforeAll(async () => {
  work = makeTemp("berth-binary-");
  skopeo = new Skopeo();
  const [fixtures] = await Promise.all([
    buildFixtures(join(work, "fixtures")),
    runOk([join(REPO, "scripts/build"), "--out", join(work, "dist"), "--version", STAMP, "linux-x64", "linux-arm64"], { timeoutMs: 170_000 }),
  ]);
  fx = fixtures;
});

afterAll(() => {
  skopeo?.[Symbol.dispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function roundTrip(command: string[], checkDocs = false) {
  const version = await runOk([...command, "version"], { timeoutMs: 60_000 });
  expect(version.stdout.trim()).toBe(`berth ${STAMP}`);
  await using daemon = await startDaemon({ command });
  const flags = ["--src-tls-verify=false", "--dest-tls-verify=false"];
  await skopeo.ok(["copy", "-q", ...flags, `oci:${fx.single}:v1`, `docker://${daemon.host}/edge/app:v1`]);
  const out = join(work, `out-${Math.random().toString(36).slice(2)}`);
  await skopeo.ok(["copy", "-q", ...flags, `docker://${daemon.host}/edge/app:v1`, `oci:${out}:v1`]);
  expect(layoutTag(out, "v1").digest).toBe(layoutTag(fx.single, "v1").digest);
  const before = layoutBlobs(fx.single);
  const after = layoutBlobs(out);
  expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
  for (const [digest, content] of after) expect(content).toBe(digest); // every file hashes to its name
  if (checkDocs) {
    // The UI's assets are embedded in the binary, byte for byte.
    const js = await fetch(`${daemon.url}/api/docs/assets/swagger-ui-bundle.js`);
    expect(js.status).toBe(200);
    expect(new Uint8Array(await js.arrayBuffer())).toEqual(new Uint8Array(readFileSync(join(REPO, "node_modules/swagger-ui-dist/swagger-ui-bundle.js"))));
    expect((await fetch(`${daemon.url}/metrics`)).status).toBe(200);
    // the web UI is embedded too: the page, and its script as ui/build.ts builds it from these sources
    const page = await (await fetch(`${daemon.url}/`)).text();
    const script = /src="(\/ui\/app\.[0-9a-f]{16}\.js)"/.exec(page)?.[1];
    expect(script).toBeDefined();
    const served = await fetch(`${daemon.url}${script}`, { headers: { "Accept-Encoding": "identity" } });
    expect(served.status).toBe(200);
    expect(await served.text()).toBe((await buildUi()).js);
  }
  expect(daemon.logs()).not.toContain('"level":"error"');
  expect(await daemon.stop()).toBe(0);
}

describe("scripts/build binaries", () => {
  test("linux-x64 binary: version stamped, push and pull byte-exact, docs assets and /metrics served", async () => {
    await roundTrip([join(work, "dist/berth-linux-x64")], true);
  });

  test("linux-arm64 binary under qemu-aarch64-static: version stamped, push and pull byte-exact", async () => {
    await roundTrip([...QEMU, join(work, "dist/berth-linux-arm64")]);
  });
});
