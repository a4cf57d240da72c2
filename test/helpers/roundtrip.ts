/**
 * The round trip every build of berth must pass, whatever runs it (the x64 and arm64
 * binaries, the Node.js bundle natively and under qemu-arm-static): the stamped version,
 * a push from skopeo (hashed in the upload thread) served back byte-exact, and optionally
 * the embedded API docs' assets, /metrics and the web UI.
 */
import { expect } from "bun:test";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Fixtures, type Skopeo, layoutBlobs, layoutTag, runOk } from "./clients";
import { type Daemon, type DaemonOptions, startDaemon } from "./daemon";
import { buildUi } from "../../ui/build";

const REPO = resolve(import.meta.dir, "../..");

/** What a round trip needs: a scratch directory, the fixtures, a skopeo and the stamped version. */
export interface RoundTripContext {
  work: string;
  fx: Fixtures;
  skopeo: Skopeo;
  stamp: string;
}

/**
 * Runs `command` (the program, before its arguments): `version`, then `serve`, a push and a
 * byte-exact pull; with `checkDocs`, the docs' assets and /metrics. `before` may look at the
 * running daemon before it is stopped (e.g. start a second one on its root).
 */
export async function roundTrip(
  ctx: RoundTripContext,
  command: string[],
  checkDocs = false,
  options: Partial<DaemonOptions> & { before?: (daemon: Daemon) => Promise<void> } = {},
): Promise<void> {
  const { work, fx, skopeo } = ctx;
  const version = await runOk([...command, "version"], { timeoutMs: 60_000 });
  expect(version.stdout.trim()).toBe(`berth ${ctx.stamp}`);
  await using daemon = await startDaemon({ ...options, command });
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
    // The docs' assets are embedded in the build, byte for byte.
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
  await options.before?.(daemon);
  expect(daemon.logs()).not.toContain('"level":"error"');
  expect(await daemon.stop()).toBe(0);
}
