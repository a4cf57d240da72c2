/**
 * One process per storage root and per port, with real daemon processes: a second daemon on
 * a held root exits 1 naming the holder's PID and touches nothing (the first one's upload in
 * flight still completes byte-exact); the lock dies with its holder (SIGKILL); a second
 * daemon on a taken port exits 1 while the first keeps serving; the offline `berth gc` and
 * `berth scrub` refuse a live root. Plus the lock primitive in-process.
 */
import { expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { lockRoot, RootInUseError } from "../../daemon/platform/rootlock";
import { startDaemon, tempDir } from "../helpers/daemon";
import { sha256 as sha } from "../helpers/clients";

const MAIN = resolve(import.meta.dir, "../../daemon/main.ts");

/** Runs `berth <args>` to completion with a generated config; returns its exit code and stderr. */
async function runBerth(dir: string, args: string[], root: string, port = 0): Promise<{ code: number; stderr: string }> {
  const configPath = join(dir, `berth-${Math.random().toString(36).slice(2)}.toml`);
  writeFileSync(configPath, `[http]\naddress = "127.0.0.1"\nport = ${port}\n[storage]\nroot = "${root}"\n`);
  const proc = Bun.spawn([process.execPath, MAIN, ...args, "--config", configPath], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  // a second daemon that wrongly starts would serve forever: bound the wait, then kill it
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  clearTimeout(timer);
  return { code, stderr };
}

test("a second daemon on a held root exits 1 naming the holder, and the first one's upload completes", async () => {
  using work = tempDir();
  await using first = await startDaemon();
  const data = randomBytes(3 * 1024 * 1024);
  const post = await fetch(`${first.url}/v2/lock/test/blobs/uploads/`, { method: "POST" });
  expect(post.status).toBe(202);
  const half = data.byteLength / 2;
  const patch1 = await fetch(new URL(post.headers.get("location")!, first.url), { method: "PATCH", body: data.subarray(0, half), headers: { "Content-Range": `0-${half - 1}` } });
  expect(patch1.status).toBe(202);
  const sessions = readdirSync(join(first.root, ".berth", "uploads"));
  expect(sessions.length).toBe(1);

  const second = await runBerth(work.path, ["serve"], first.root);
  expect(second.code).toBe(1);
  expect(second.stderr).toContain(`in use by berth process ${first.proc.pid}`);
  expect(second.stderr).not.toContain("    at "); // a message, not a stack trace
  expect(readdirSync(join(first.root, ".berth", "uploads"))).toEqual(sessions);

  const patch2 = await fetch(new URL(patch1.headers.get("location")!, first.url), { method: "PATCH", body: data.subarray(half), headers: { "Content-Range": `${half}-${data.byteLength - 1}` } });
  expect(patch2.status).toBe(202);
  const put = await fetch(`${new URL(patch2.headers.get("location")!, first.url)}?digest=${sha(data)}`, { method: "PUT" });
  expect(put.status).toBe(201);
  const got = new Uint8Array(await (await fetch(`${first.url}/v2/lock/test/blobs/${sha(data)}`)).arrayBuffer());
  expect(got.byteLength).toBe(data.byteLength);
  expect(sha(got)).toBe(sha(data));
}, 60_000);

test("the lock dies with its holder: after SIGKILL a new daemon starts on the root", async () => {
  await using first = await startDaemon();
  await first.kill();
  await using next = await startDaemon({ root: first.root });
  expect((await fetch(`${next.url}/v2/`)).status).toBe(200);
}, 60_000);

test("a second daemon on a taken port exits 1 with a clear message; the first keeps serving", async () => {
  using work = tempDir();
  await using first = await startDaemon();
  const second = await runBerth(work.path, ["serve"], join(work.path, "other-root"), first.port);
  expect(second.code).toBe(1);
  expect(second.stderr).toContain(`Cannot listen on 127.0.0.1:${first.port}: the address is in use`);
  expect(second.stderr).not.toContain("    at ");
  expect((await fetch(`${first.url}/v2/`)).status).toBe(200);
  // and the refused daemon let go of its own root
  expect((await runBerth(work.path, ["gc"], join(work.path, "other-root"))).code).toBe(0);
}, 60_000);

test("offline gc and scrub refuse a live root, naming the daemon; they run once it has stopped", async () => {
  using work = tempDir();
  await using daemon = await startDaemon();
  for (const args of [["gc"], ["gc", "--dry-run"], ["scrub"]]) {
    const r = await runBerth(work.path, args, daemon.root);
    expect(`${args.join(" ")}: ${r.code}`).toBe(`${args.join(" ")}: 1`);
    expect(r.stderr).toContain(`in use by berth process ${daemon.proc.pid}`);
  }
  expect(await daemon.stop()).toBe(0);
  expect((await runBerth(work.path, ["gc"], daemon.root)).code).toBe(0);
}, 60_000);

test("lockRoot: a second holder is refused; without a readable PID the message says another process", async () => {
  const root = mkdtempSync(join(tmpdir(), "berth-lock-"));
  try {
    const held = await lockRoot(root);
    expect(existsSync(join(root, ".berth", "lock"))).toBe(true);
    const refused = await lockRoot(root).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RootInUseError);
    expect((refused as RootInUseError).holder).toBe(process.pid);
    truncateSync(join(root, ".berth", "lock"), 0); // as after a PID write failed on a full disk
    const again = (await lockRoot(root).catch((e: unknown) => e)) as Error;
    expect(again.message).toContain("in use by another process");
    held.release();
    (await lockRoot(root)).release();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
