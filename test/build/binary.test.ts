/**
 * The single-file binaries from scripts/build: the x64 one natively, the arm64 one under
 * qemu-aarch64-static (user-mode emulation with Debian's arm64 libc). Each starts, accepts a
 * push from skopeo (the upload is hashed in the worker thread, which must be embedded in the
 * binary) and serves it back byte-exact, and reports the stamped version. The x64 one also
 * serves its embedded assets: the API docs and the web UI.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Fixtures, Skopeo, buildFixtures, makeTemp, runOk } from "../helpers/clients";
import { roundTrip } from "../helpers/roundtrip";

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

describe("scripts/build binaries", () => {
  test("linux-x64 binary: version stamped, push and pull byte-exact, docs assets and /metrics served", async () => {
    await roundTrip({ work, fx, skopeo, stamp: STAMP }, [join(work, "dist/berth-linux-x64")], true);
  });

  test("linux-arm64 binary under qemu-aarch64-static: version stamped, push and pull byte-exact", async () => {
    await roundTrip({ work, fx, skopeo, stamp: STAMP }, [...QEMU, join(work, "dist/berth-linux-arm64")]);
  });
});
