/**
 * Upload sessions against the real daemon under a low descriptor limit (issue 9, item 3):
 * idle sessions hold no descriptor, the session cap answers 429 with Retry-After,
 * descriptor exhaustion answers 503 (never 500) and never ends the process, and an
 * abandoned session expires on its own timer.
 */
import { expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { type Socket, connect } from "node:net";
import { join, resolve } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { sha256 } from "../helpers/clients";

const MAIN = resolve(import.meta.dir, "../../daemon/main.ts");
const FD_LIMIT = 256;

/** The daemon under `ulimit -n FD_LIMIT` (exec keeps the PID, so /proc/<pid>/fd is berth's). */
function lowFdDaemon(storage: string): Promise<Daemon> {
  return startDaemon({
    storage,
    command: ["sh", "-c", `ulimit -n ${FD_LIMIT} && exec "$0" "${MAIN}" "$@"`, process.execPath],
  });
}

function openFds(d: Daemon): number {
  return readdirSync(`/proc/${d.proc.pid}/fd`).length;
}


/** Pushes a one-layer image the ordinary way (POST, PATCH, PUT, manifest PUT); returns the statuses. */
async function push(d: Daemon, repo: string, seed: string): Promise<number[]> {
  const statuses: number[] = [];
  const blob = async (data: string) => {
    const post = await fetch(`${d.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    statuses.push(post.status);
    const loc = post.headers.get("location");
    if (!loc) return;
    statuses.push((await fetch(`${d.url}${loc}`, { method: "PATCH", body: data })).status);
    statuses.push((await fetch(`${d.url}${loc}?digest=${sha256(data)}`, { method: "PUT" })).status);
  };
  const config = JSON.stringify({ architecture: "amd64", os: "linux", seed });
  const layer = `layer of ${seed}`;
  await blob(config);
  await blob(layer);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(layer), size: layer.length }],
  });
  statuses.push((await fetch(`${d.url}/v2/${repo}/manifests/v1`, { method: "PUT", headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" }, body: manifest })).status);
  return statuses;
}

/** A raw connection to the daemon that collects what it answers. */
interface Conn {
  sock: Socket;
  text: string;
  /** Polls (bounded: `tries` x 10 ms) until the answers so far satisfy `ok`; returns whether they did. */
  until(ok: (text: string) => boolean, tries?: number): Promise<boolean>;
}

/** Opens a connection, sends GET /v2/ on it and resolves once answered (so the daemon has accepted it), or undefined if no answer came. */
async function accepted(d: Daemon, tries = 200): Promise<Conn | undefined> {
  const sock = connect(d.port, "127.0.0.1");
  const conn: Conn = {
    sock,
    text: "",
    async until(ok, n = 200) {
      for (let i = 0; i < n && !ok(conn.text); i++) await Bun.sleep(10);
      return ok(conn.text);
    },
  };
  sock.on("data", (b) => {
    conn.text += b.toString("latin1");
  });
  sock.on("error", () => {});
  sock.write(`GET /v2/ HTTP/1.1\r\nHost: ${d.host}\r\n\r\n`);
  if (!(await conn.until((t) => t.includes("{}"), tries))) {
    sock.destroy();
    return undefined;
  }
  conn.text = "";
  return conn;
}

test("sessions beyond the fd limit hold no descriptor; the cap is 429; fd exhaustion is 503; the daemon lives on", async () => {
  const cap = FD_LIMIT + 100; // more sessions than the process may have descriptors
  await using d = await lowFdDaemon(`max_uploads = ${cap}\nmax_uploads_per_client = 100000`);
  const baseline = openFds(d);

  // 1. More idle sessions than the descriptor limit: every one is opened (202) and none holds a descriptor.
  const locations: string[] = [];
  for (let i = 0; i < cap; i += 25) {
    const batch = await Promise.all(Array.from({ length: Math.min(25, cap - i) }, () => fetch(`${d.url}/v2/idle/app/blobs/uploads/`, { method: "POST" })));
    for (const res of batch) {
      expect(res.status).toBe(202);
      locations.push(res.headers.get("location")!);
    }
  }
  // a PATCH on some of them makes the hashing thread read their files; still nothing stays open
  for (const loc of locations.slice(0, 20)) expect((await fetch(`${d.url}${loc}`, { method: "PATCH", body: "some bytes" })).status).toBe(202);
  // what did grow: up to 25 kept-alive client connections and the hashing thread's own
  // handles, not one descriptor per session (that would be +356, past the limit)
  expect(openFds(d) - baseline).toBeLessThan(50);

  // 2. The cap: the next POSTs are 429 TOOMANYREQUESTS with Retry-After.
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${d.url}/v2/idle/app/blobs/uploads/`, { method: "POST" });
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("TOOMANYREQUESTS");
  }

  // 3. Descriptors run out: connections are accepted until none more can be, then each
  //    starts a PATCH (which needs the upload file). Refusals are 503, never 500.
  const blob = "served while descriptors are short";
  expect((await fetch(`${d.url}/v2/idle/app/blobs/uploads/?digest=${sha256(blob)}`, { method: "POST", body: blob })).status).toBe(429); // at the cap
  await fetch(`${d.url}${locations.pop()}`, { method: "DELETE" });
  expect((await fetch(`${d.url}/v2/idle/app/blobs/uploads/?digest=${sha256(blob)}`, { method: "POST", body: blob })).status).toBe(201);
  // a connection accepted now, to ask for the blob once descriptors are gone
  const probe = (await accepted(d))!;
  const conns: Conn[] = [];
  try {
    // accept connections until the daemon cannot accept more (each holds a descriptor)
    for (let i = 0; i < FD_LIMIT; i++) {
      const conn = await accepted(d, 100);
      if (!conn) break;
      conns.push(conn);
    }
    expect(conns.length).toBeLessThan(FD_LIMIT - 10);
    // a PATCH on each needs the upload file's descriptor, which is no longer there
    conns.forEach((c, i) => c.sock.write(`PATCH ${locations[i]} HTTP/1.1\r\nHost: ${d.host}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n`));
    const refused = () => conns.filter((c) => c.text.length > 0);
    for (let i = 0; i < 200 && refused().length === 0; i++) await Bun.sleep(25);
    expect(refused().length).toBeGreaterThan(0);
    for (const c of refused()) expect(c.text).toMatch(/^HTTP\/1\.1 503 /);
    expect(refused()[0]!.text).toMatch(/\r\nretry-after: \d+\r\n/i);
    expect(refused()[0]!.text).toContain("EMFILE");
    // a blob GET needs a descriptor to send the file: 503, not 500 (Bun opens it after the handler returned)
    probe.sock.write(`GET /v2/idle/app/blobs/${sha256(blob)} HTTP/1.1\r\nHost: ${d.host}\r\n\r\n`);
    await probe.until((t) => t.includes("\r\n\r\n"));
    expect(probe.text).toMatch(/^HTTP\/1\.1 503 /);
    expect(probe.text).toMatch(/\r\nretry-after: \d+\r\n/i);
  } finally {
    for (const c of [probe, ...conns]) c.sock.destroy();
  }
  expect(d.logs()).not.toContain("Failed to get memory usage");

  // 4. The daemon is still up and, once the connections are gone, serves a normal push.
  let statuses: number[] = [];
  for (let i = 0; i < 200; i++) {
    // sessions are at the cap: cancel a few so the push has room
    if (i === 0) for (const loc of locations.slice(-4)) await fetch(`${d.url}${loc}`, { method: "DELETE" });
    statuses = await push(d, "after/storm", "x").catch(() => [0]);
    if (statuses.every((s) => s === 201 || s === 202)) break;
    await Bun.sleep(25);
  }
  expect(statuses).toEqual([202, 202, 201, 202, 202, 201, 201]);
  expect(d.proc.exitCode).toBeNull();
  expect(d.logs()).not.toContain('"status":500');
}, 60_000);

test("an abandoned session expires on its own timer: its file goes, its location is 404", async () => {
  await using d = await startDaemon({ storage: "upload_expiry = 1", extra: "[gc]\ninterval = 0" });
  const post = await fetch(`${d.url}/v2/gone/app/blobs/uploads/`, { method: "POST" });
  const loc = post.headers.get("location")!;
  const id = post.headers.get("docker-upload-uuid")!;
  expect((await fetch(`${d.url}${loc}`, { method: "PATCH", body: "abandoned" })).status).toBe(202);
  const file = join(d.root, ".berth/uploads", id);
  expect(existsSync(file)).toBe(true);
  let status = 204;
  for (let i = 0; i < 100 && status !== 404; i++) {
    await Bun.sleep(50);
    status = (await fetch(`${d.url}${loc}`)).status;
  }
  expect(status).toBe(404);
  expect(existsSync(file)).toBe(false);
  expect(d.logs()).toContain("upload session expired");
});
