/**
 * The real daemon over real sockets, for what only a socket shows: a client that vanishes
 * mid-upload, a blob far larger than Bun's default body limit streaming through without
 * being held in memory, and limits enforced from Content-Length alone.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { type Daemon, startDaemon } from "../helpers/daemon";

let d: Daemon;
beforeAll(async () => {
  d = await startDaemon();
});
afterAll(async () => {
  await d[Symbol.asyncDispose]();
});

/** Peak resident memory of the daemon so far, in MiB. */
function peakRssMiB(): number {
  const status = readFileSync(`/proc/${d.proc.pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** Sends raw bytes on a fresh connection and closes it without waiting for an answer. */
function sendAndDrop(raw: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = connect(d.port, "127.0.0.1", () => {
      sock.write(raw, () => {
        sock.destroy();
        resolve();
      });
    });
    sock.on("error", reject);
  });
}

test("a client that disconnects mid-PATCH loses only that chunk; the session resumes", async () => {
  const post = await fetch(`${d.url}/v2/wire/app/blobs/uploads/`, { method: "POST" });
  const loc = post.headers.get("location")!;
  expect((await fetch(`${d.url}${loc}`, { method: "PATCH", body: "kept-" })).status).toBe(202);
  const half = "x".repeat(32 * 1024);
  await sendAndDrop(`PATCH ${loc} HTTP/1.1\r\nHost: ${d.host}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n${half}`);
  // Until the server has noticed the disconnect, the session is busy (409); then it is back
  // at the last good offset and takes the next chunk.
  let next = 0;
  for (let i = 0; i < 200 && next !== 202; i++) {
    next = (await fetch(`${d.url}${loc}`, { method: "PATCH", body: "more" })).status;
    if (next === 409) await Bun.sleep(10);
  }
  expect(next).toBe(202);
  const digest = `sha256:${createHash("sha256").update("kept-more").digest("hex")}`;
  const put = await fetch(`${d.url}${loc}?digest=${digest}`, { method: "PUT" });
  expect(put.status).toBe(201);
  expect(await (await fetch(`${d.url}/v2/wire/app/blobs/${digest}`)).text()).toBe("kept-more");
});

test("a 300 MiB blob streams in and out without being held in memory", async () => {
  const size = 300 * 1024 * 1024;
  const chunk = new Uint8Array(1024 * 1024);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31) & 0xff;
  const hash = createHash("sha256");
  for (let i = 0; i < size / chunk.length; i++) hash.update(chunk);
  const digest = `sha256:${hash.digest("hex")}`;
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent >= size) return c.close();
      sent += chunk.length;
      c.enqueue(chunk);
    },
  });
  const post = await fetch(`${d.url}/v2/wire/big/blobs/uploads/`, { method: "POST" });
  const patch = await fetch(`${d.url}${post.headers.get("location")}`, { method: "PATCH", body, duplex: "half" } as RequestInit);
  expect(patch.status).toBe(202);
  expect(patch.headers.get("range")).toBe(`0-${size - 1}`);
  const put = await fetch(`${d.url}${patch.headers.get("location")}?digest=${digest}`, { method: "PUT" });
  expect(put.status).toBe(201);

  const res = await fetch(`${d.url}/v2/wire/big/blobs/${digest}`);
  expect(res.headers.get("content-length")).toBe(String(size));
  const check = createHash("sha256");
  let received = 0;
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    check.update(part);
    received += part.byteLength;
  }
  expect(received).toBe(size);
  expect(`sha256:${check.digest("hex")}`).toBe(digest);
  // A blob held whole would push the peak past 300 MiB; streaming stays far below.
  expect(peakRssMiB()).toBeLessThan(200);
}, 120_000);

test("a manifest announced larger than the limit is refused with 413 from Content-Length alone", async () => {
  const res = await new Promise<string>((resolve, reject) => {
    const sock = connect(d.port, "127.0.0.1", () => {
      sock.write(`PUT /v2/wire/app/manifests/big HTTP/1.1\r\nHost: ${d.host}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 104857600\r\n\r\n{`);
    });
    let data = "";
    sock.on("data", (b) => {
      data += b.toString();
      if (data.includes("\r\n\r\n") && data.includes("}]}")) {
        sock.destroy();
        resolve(data);
      }
    });
    sock.on("error", reject);
  });
  expect(res).toStartWith("HTTP/1.1 413");
  expect(res).toContain('"code":"SIZE_INVALID"');
});

test("HEAD on the wire carries Content-Length and no body", async () => {
  const digest = `sha256:${createHash("sha256").update("head me").digest("hex")}`;
  await fetch(`${d.url}/v2/wire/app/blobs/uploads/?digest=${digest}`, { method: "POST", body: "head me" });
  const res = await fetch(`${d.url}/v2/wire/app/blobs/${digest}`, { method: "HEAD" });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-length")).toBe("7");
  expect(await res.text()).toBe("");
});

test("the daemon keeps serving when nobody reads its log any more (EPIPE)", async () => {
  using dir = (await import("../helpers/daemon")).tempDir();
  const config = (await import("../helpers/daemon")).writeConfig(dir.path, `[http]\nport = 0\n[storage]\nroot = "${dir.path}/root"\n`);
  const proc = Bun.spawn([process.execPath, `${import.meta.dir}/../../daemon/main.ts`, "serve", "--config", config], { stderr: "pipe" });
  try {
    let log = "";
    const reader = (proc.stderr as ReadableStream<Uint8Array>).getReader();
    while (!/"port":(\d+)/.test(log)) {
      const { done, value } = await reader.read();
      if (done) throw new Error(`exited: ${log}`);
      log += new TextDecoder().decode(value);
    }
    await reader.cancel(); // closes the read end of the pipe: the next log line gets EPIPE
    const base = `http://127.0.0.1:${/"port":(\d+)/.exec(log)![1]}`;
    const digest = `sha256:${createHash("sha256").update("after the pipe").digest("hex")}`;
    for (const repo of ["first/repo", "second/repo"]) {
      const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: "POST", body: "after the pipe" });
      expect(res.status).toBe(201);
    }
    expect((await fetch(`${base}/v2/`)).status).toBe(200);
    expect(proc.exitCode).toBeNull();
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
  }
});
