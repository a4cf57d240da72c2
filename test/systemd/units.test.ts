/**
 * The systemd side, offline (PID 1 here is not systemd): scripts/install --root lays out the
 * tree, creates the user with systemd-sysusers and enables the unit; `systemd-analyze verify`
 * accepts the installed unit (with ExecStart pointing at the installed binary, as it would be
 * on the target); `systemd-analyze security --offline` rates it 2.0 or lower; and the
 * installed example configuration validates with the installed binary.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, lstatSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { makeTemp, run, runOk } from "../helpers/clients";

setDefaultTimeout(60_000);

const REPO = resolve(import.meta.dir, "../..");
let work: string;
let root: string;

beforeAll(async () => {
  work = makeTemp("berth-install-");
  root = join(work, "root");
  await runOk(["mkdir", "-p", root]);
  // A stand-in binary is enough for the tree: the real daemon through bun.
  const bin = join(work, "berth");
  writeFileSync(bin, `#!/bin/sh\nexec ${process.execPath} ${join(REPO, "daemon/main.ts")} "$@"\n`, { mode: 0o755 });
  await runOk([join(REPO, "scripts/install"), "--root", root, "--binary", bin]);
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test("install --root lays out binary, unit, sysusers, tmpfiles, config, profiles and enables the unit", () => {
  for (const f of ["usr/bin/berth", "etc/systemd/system/berth.service", "usr/lib/sysusers.d/berth.conf", "usr/lib/tmpfiles.d/berth.conf",
    "etc/berth/berth.toml", "usr/share/berth/board/rpi4.toml", "usr/share/berth/board/rpi5.toml", "usr/share/berth/board/arm64-emmc.toml",
    "usr/share/berth/board/x64-server.toml", "usr/share/doc/berth/README.md"]) {
    expect(existsSync(join(root, f))).toBe(true);
  }
  expect(statSync(join(root, "usr/bin/berth")).mode & 0o777).toBe(0o755);
  expect(readFileSync(join(root, "etc/passwd"), "utf8")).toMatch(/^berth:x:\d+:\d+:berth OCI registry:\/var\/lib\/berth:\/usr\/sbin\/nologin$/m);
  const state = statSync(join(root, "var/lib/berth"));
  expect(state.isDirectory()).toBe(true);
  expect(state.mode & 0o777).toBe(0o750);
  const wants = join(root, "etc/systemd/system/multi-user.target.wants/berth.service");
  expect(lstatSync(wants).isSymbolicLink()).toBe(true);
  expect(readlinkSync(wants)).toBe("/etc/systemd/system/berth.service");
});

test("a second install keeps the operator's configuration", async () => {
  writeFileSync(join(root, "etc/berth/berth.toml"), "[log]\nlevel = \"debug\"\n");
  await runOk([join(REPO, "scripts/install"), "--root", root, "--binary", join(work, "berth")]);
  expect(readFileSync(join(root, "etc/berth/berth.toml"), "utf8")).toBe("[log]\nlevel = \"debug\"\n");
  expect(readFileSync(join(root, "etc/berth/berth.toml.new"), "utf8")).toBe(readFileSync(join(REPO, "systemd/berth.toml"), "utf8"));
});

test("the example configuration validates", async () => {
  const r = await runOk([join(root, "usr/bin/berth"), "verify", join(REPO, "systemd/berth.toml")]);
  expect(r.stdout).toContain("valid");
});

test("systemd-analyze verify accepts the unit; security exposure is at most 2.0", async () => {
  const unit = join(work, "verify", "berth.service");
  await runOk(["mkdir", "-p", join(work, "verify")]);
  writeFileSync(unit, readFileSync(join(root, "etc/systemd/system/berth.service"), "utf8").replaceAll("/usr/bin/berth", join(root, "usr/bin/berth")));
  const verify = await run(["systemd-analyze", "verify", unit]);
  expect(`${verify.stdout}${verify.stderr}`).toBe("");
  expect(verify.code).toBe(0);
  const security = await run(["systemd-analyze", "security", "--offline=true", "--threshold=20", unit]);
  const m = /Overall exposure level for berth\.service: (\d+\.\d+)/.exec(security.stdout);
  expect(m).not.toBeNull();
  console.log(`systemd-analyze security: exposure ${m![1]}`);
  expect(Number(m![1])).toBeLessThanOrEqual(2.0);
  expect(security.code).toBe(0); // --threshold=20 means 2.0 on systemd's 0..100 scale
});
