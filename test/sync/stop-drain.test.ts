/**
 * A clean stop (SIGTERM) while a pull-through fetch is still being stored: the daemon lets the
 * fetch finish (its data fsynced, linked into the pool and the repository, their directories
 * fsynced) before it exits, instead of abandoning it half-published. The upstream holds back
 * the tail of the blob until the daemon has logged that it is shutting down, and the client
 * that started the fetch has gone away by then, so no request in flight keeps the daemon up:
 * only the drain of pull-through work does (found by test/e2e/durability.test.ts under load).
 */
import { expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startDaemon } from "../helpers/daemon";

const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

test("SIGTERM waits for a pull-through fetch in flight to be stored", async () => {
  const blob = randomBytes(3 * 1024 * 1024);
  const digest = sha(blob);
  const head = blob.subarray(0, 1024 * 1024);
  const tail = blob.subarray(head.byteLength);
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let asked = 0;
  await using fake = (() => {
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        const path = new URL(req.url).pathname;
        if (path === "/v2/") return new Response("{}");
        if (path !== `/v2/lib/img/blobs/${digest}`) return Response.json({ errors: [{ code: "BLOB_UNKNOWN", message: "not here" }] }, { status: 404 });
        asked++;
        const body = new ReadableStream<Uint8Array>({
          async start(c) {
            c.enqueue(head);
            await released;
            c.enqueue(tail);
            c.close();
          },
        });
        return new Response(body, { headers: { "content-type": "application/octet-stream", "content-length": String(blob.byteLength) } });
      },
    });
    return { port: server.port, [Symbol.asyncDispose]: async () => void server.stop(true) };
  })();
  await using berth = await startDaemon({ extra: `[[sync.registries]]\nname = "fake"\nurls = ["http://127.0.0.1:${fake.port}"]\nrepos = ["lib/**"]\n` });

  // a client starts the fetch, reads the first bytes and goes away; the fetch carries on
  const res = await fetch(`${berth.url}/v2/lib/img/blobs/${digest}`);
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const first = await reader.read();
  expect(first.done).toBe(false);
  await reader.cancel();
  expect(asked).toBe(1);

  berth.proc.kill("SIGTERM");
  for (let i = 0; i < 500 && !berth.logs().includes("shutting down"); i++) await Bun.sleep(10);
  expect(berth.logs()).toContain("shutting down");
  release();
  const code = await Promise.race([berth.proc.exited, Bun.sleep(20_000).then(() => "timeout")]);
  expect(code, berth.logs()).toBe(0);

  const stored = join(berth.root, "lib/img/blobs/sha256", digest.slice("sha256:".length));
  expect(existsSync(stored), `the fetched blob is not stored:\n${berth.logs()}`).toBe(true);
  expect(sha(readFileSync(stored))).toBe(digest);
  expect(existsSync(join(berth.root, ".berth/pool/sha256", digest.slice("sha256:".length)))).toBe(true);
  expect(berth.logs()).not.toContain("pull-through fetches unfinished");
}, 30_000);
