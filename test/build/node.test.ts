/**
 * The Node.js build (scripts/build-node.ts, for armv7 boards where Bun does not run): the
 * tarball's launcher under this machine's Node.js, and the bundle under Debian's armhf
 * Node.js 18 run by qemu-arm-static from the sysroot scripts/armhf-sysroot unpacks. Each
 * passes the round trip the compiled binaries pass (version, skopeo push and byte-exact pull
 * through the hashing thread; the docs' assets and /metrics natively), keeps what it stored
 * across a restart (the WebAssembly SQLite reopens its file), and holds the storage root
 * against a second process (flock(1), as the Node.js build has no bun:ffi).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Fixtures, Skopeo, buildFixtures, makeTemp, run, runOk } from "../helpers/clients";
import { startDaemon } from "../helpers/daemon";
import { roundTrip } from "../helpers/roundtrip";

setDefaultTimeout(240_000);

const REPO = resolve(import.meta.dir, "../..");
const STAMP = "9.8.7-node";

let work: string;
let fx: Fixtures;
let skopeo: Skopeo;
let sysroot: string;
let launcher: string;
let bundle: string;

beforeAll(async () => {
  work = makeTemp("berth-node-build-");
  skopeo = new Skopeo();
  const [fixtures, root] = await Promise.all([
    buildFixtures(join(work, "fixtures")),
    runOk([join(REPO, "scripts/armhf-sysroot")], { timeoutMs: 120_000 }),
    runOk([process.execPath, join(REPO, "scripts/build-node.ts"), "--out", join(work, "dist"), "--version", STAMP], { timeoutMs: 120_000 }),
  ]);
  fx = fixtures;
  sysroot = root.stdout.trim();
  if (!existsSync(join(sysroot, "usr/bin/node"))) throw new Error(`scripts/armhf-sysroot made no armhf Node.js in ${sysroot}`);
  await runOk(["tar", "-xzf", join(work, "dist/berth-linux-armv7.tar.gz"), "-C", work]);
  launcher = join(work, "berth/bin/berth");
  bundle = join(work, "berth/lib/berth.mjs");
});

afterAll(() => {
  skopeo?.[Symbol.dispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("scripts/build-node.ts (berth-linux-armv7.tar.gz)", () => {
  test("the tarball holds the launcher, the bundle, SQLite's wasm, the hashing thread and the systemd unit with its Node.js drop-in", async () => {
    for (const file of ["bin/berth", "lib/berth.mjs", "lib/uploadhash-thread.mjs", "lib/node-sqlite3-wasm.wasm", "systemd/berth.service", "systemd/berth.service.d/node.conf", "VERSION"]) {
      expect(existsSync(join(work, "berth", file))).toBe(true);
    }
  });

  test("./install from the tarball lays out the Node.js build with the unit's drop-in; systemd-analyze verify accepts both", async () => {
    const root = join(work, "sysroot-install");
    await runOk(["mkdir", "-p", root]);
    await runOk([join(work, "berth/install"), "--root", root]);
    expect(readlinkSync(join(root, "usr/bin/berth"))).toBe("/usr/lib/berth/bin/berth");
    for (const f of ["usr/lib/berth/bin/berth", "usr/lib/berth/lib/berth.mjs", "usr/lib/berth/lib/node-sqlite3-wasm.wasm", "etc/systemd/system/berth.service",
      "etc/systemd/system/berth.service.d/node.conf", "etc/berth/berth.toml", "usr/share/berth/board/rpi4.toml"]) {
      expect(existsSync(join(root, f))).toBe(true);
    }
    const installed = join(root, "usr/lib/berth/bin/berth");
    expect((await runOk([installed, "verify", join(root, "etc/berth/berth.toml")])).stdout).toContain("valid");
    // The unit with its drop-in, ExecStart pointing at the installed launcher.
    const dir = join(work, "verify-node");
    mkdirSync(join(dir, "berth.service.d"), { recursive: true });
    writeFileSync(join(dir, "berth.service"), readFileSync(join(root, "etc/systemd/system/berth.service"), "utf8").replaceAll("/usr/bin/berth", installed));
    copyFileSync(join(root, "etc/systemd/system/berth.service.d/node.conf"), join(dir, "berth.service.d/node.conf"));
    const verify = await run(["systemd-analyze", "verify", join(dir, "berth.service")]);
    expect(`${verify.stdout}${verify.stderr}`).toBe("");
    expect(verify.code).toBe(0);
    const show = await run(["systemd-analyze", "security", "--offline=true", "--threshold=20", join(dir, "berth.service")]);
    expect(show.code).toBe(0);
  });

  test("under this machine's Node.js: round trip with docs and /metrics, a second process refused, data kept across a restart", async () => {
    const node = await runOk(["node", "--version"]);
    expect(node.stdout).toMatch(/^v\d+\./);
    const root = join(work, "native-root");
    await roundTrip({ work, fx, skopeo, stamp: STAMP }, [launcher], true, {
      root,
      env: { BERTH_NODE: "node" },
      before: async () => {
        // The root is held through flock(1): a second daemon on it exits 1 naming the holder.
        await Bun.write(join(work, "second.toml"), `[http]\naddress = "127.0.0.1"\nport = 0\n[storage]\nroot = "${root}"\n`);
        const second = Bun.spawn([launcher, "serve", "--config", join(work, "second.toml")], { stdout: "pipe", stderr: "pipe" });
        expect(await second.exited).toBe(1);
        expect(await new Response(second.stderr).text()).toContain("is in use by berth process");
      },
    });
    // Restarted on the same root, the WebAssembly SQLite index and the layout still serve the image.
    await using again = await startDaemon({ command: [launcher], root });
    const res = await fetch(`${again.url}/v2/edge/app/manifests/v1`, { method: "HEAD", headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
    expect(res.status).toBe(200);
    expect((await fetch(`${again.url}/v2/edge/app/tags/list`)).json()).resolves.toEqual({ name: "edge/app", tags: ["v1"] });
    expect(await again.stop()).toBe(0);
  });

  test("under Debian's armhf Node.js 18 (qemu-arm-static): round trip byte-exact", async () => {
    const qemu = ["qemu-arm-static", "-L", sysroot, join(sysroot, "usr/bin/node")];
    const version = await runOk([...qemu, "--version"], { timeoutMs: 60_000 });
    expect(version.stdout.trim()).toMatch(/^v18\./);
    // Emulated, and on a machine shared with other work: Node.js takes seconds to start here.
    await roundTrip({ work, fx, skopeo, stamp: STAMP }, [...qemu, bundle], false, { startTimeoutMs: 150_000 });
  });
});
