/**
 * Configuration keys that change how the daemon runs and had no test (issue 15), each
 * against the real daemon: `[log] format = "text"` (every line plain text, none JSON, and
 * the daemon serves), `[http] idle_timeout` (the server closes an idle keep-alive
 * connection by itself; one in use is not closed), and `[storage] hash_thread = false`
 * (uploads are verified without a hashing thread: no "Worker" thread appears in the
 * process, where the default starts one on the first large upload).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, readdirSync } from "node:fs";
import { pushBlobTo, sha256, waitFor } from "../helpers/clients";
import { startDaemon } from "../helpers/daemon";

/** Names of the daemon's threads (Linux /proc). */
const threads = (pid: number) => readdirSync(`/proc/${pid}/task`).map((t) => readFileSync(`/proc/${pid}/task/${t}/comm`, "utf8").trim());

describe("daemon options", () => {
  test('log.format = "text": every line is "<time> <LEVEL> <message> key=value", none is JSON, and a push is logged', async () => {
    await using d = await startDaemon({ extra: 'format = "text"\n' }); // extra follows the generated [log] level line
    const { digest } = await pushBlobTo(d.url, "fmt/app", "text log");
    const bad = await fetch(`${d.url}/v2/fmt/app/blobs/uploads/?digest=sha256:${"0".repeat(64)}`, { method: "POST", body: "not that" });
    expect(bad.status).toBe(400);
    expect(await (await fetch(`${d.url}/v2/fmt/app/blobs/${digest}`)).text()).toBe("text log");
    await waitFor("a line about the refused upload", () => d.logs().split("\n").some((l) => / (WARN|INFO|DEBUG) /.test(l) && l.includes("fmt/app")), 4_000);
    const lines = d.logs().split("\n").filter((l) => l !== "");
    expect(lines.length).toBeGreaterThan(1);
    for (const l of lines) {
      expect(l.startsWith("{")).toBe(false);
      expect(l).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARN|ERROR) \S/);
    }
    expect(lines.some((l) => / INFO berth listening .*port=\d+/.test(l))).toBe(true);
  });

  test("idle_timeout: an idle keep-alive connection is closed by the server; the default keeps it open meanwhile", async () => {
    const open = async (http: string) => {
      const d = await startDaemon({ http });
      let closed = false;
      let answers = "";
      const socket = await Bun.connect({
        hostname: "127.0.0.1",
        port: d.port,
        socket: { data: (_s, b) => void (answers += b.toString()), close: () => void (closed = true) },
      });
      socket.write(`GET /v2/ HTTP/1.1\r\nHost: ${d.host}\r\nConnection: keep-alive\r\n\r\n`);
      await waitFor("the answer", () => answers.includes("\r\n\r\n"), 4_000);
      expect(answers.startsWith("HTTP/1.1 200")).toBe(true);
      return { d, socket, isClosed: () => closed };
    };
    const short = await open("idle_timeout = 2\nbody_timeout = 1\n");
    const long = await open("");
    try {
      await waitFor("the idle connection to be closed by the server", () => short.isClosed(), 15_000);
      // the same idle time on a daemon with the default (120 s): still open
      expect(long.isClosed()).toBe(false);
    } finally {
      short.socket.end();
      long.socket.end();
      await short.d[Symbol.asyncDispose]();
      await long.d[Symbol.asyncDispose]();
    }
  }, 20_000);

  test("hash_thread = false: a large chunked upload is verified on the event loop, no hashing thread is started", async () => {
    const big = new Uint8Array(8 << 20).map((_, i) => (i * 31) & 255);
    for (const thread of [false, true]) {
      await using d = await startDaemon({ storage: `hash_thread = ${thread}` });
      const { digest } = await pushBlobTo(d.url, "hash/app", big, "session");
      expect(digest).toBe(sha256(big));
      const res = await fetch(`${d.url}/v2/hash/app/blobs/${digest}`);
      expect(sha256(new Uint8Array(await res.arrayBuffer()))).toBe(digest);
      // a wrong digest is still refused
      const start = await fetch(`${d.url}/v2/hash/app/blobs/uploads/`, { method: "POST" });
      const location = new URL(start.headers.get("location")!, d.url).href;
      const wrong = await fetch(`${location}${location.includes("?") ? "&" : "?"}digest=sha256:${"1".repeat(64)}`, { method: "PUT", body: big });
      expect(wrong.status).toBe(400);
      expect(((await wrong.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("DIGEST_INVALID");
      expect(threads(d.proc.pid).includes("Worker")).toBe(thread);
    }
  }, 20_000);
});
