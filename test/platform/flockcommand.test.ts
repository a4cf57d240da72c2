import { afterAll, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { flockCommand, lockRoot, RootInUseError } from "../../daemon/platform/rootlock";

// The Node.js build has no bun:ffi: the root lock is taken through flock(1) on our own
// descriptor, and must exclude other holders exactly like flock(2) does.
const dir = mkdtempSync(join(tmpdir(), "berth-flockcmd-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("flock(1) locks our descriptor for as long as we keep it open", () => {
  const flock = flockCommand();
  if (!flock) throw new Error("flock(1) (util-linux) is not installed");
  const path = join(dir, "a");
  const first = openSync(path, "w");
  const second = openSync(path, "r");
  try {
    expect(flock(first)).toBe("locked");
    // Another open file description of the same file cannot take it.
    expect(flock(second)).toBe("busy");
    // Nor can another process.
    expect(spawnSync("flock", ["--nonblock", "--conflict-exit-code", "75", path, "true"]).status).toBe(75);
  } finally {
    closeSync(first);
  }
  // Closing the holder frees it.
  expect(flock(second)).toBe("locked");
  closeSync(second);
});

test("a root locked through flock(1) refuses a second holder, and is free after release", async () => {
  const flock = flockCommand()!;
  const root = join(dir, "root");
  const lock = await lockRoot(root, flock);
  await expect(lockRoot(root, flock)).rejects.toBeInstanceOf(RootInUseError);
  lock.release();
  (await lockRoot(root, flock)).release();
});

test("a missing flock command is reported as none", () => {
  expect(flockCommand("/nonexistent/flock")).toBeNull();
});
