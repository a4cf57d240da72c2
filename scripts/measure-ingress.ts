/**
 * Resident memory under hostile manifest bodies (issue 9, item 4), for the daemon given
 * (default: this checkout's daemon/main.ts; pass another main.ts to compare, e.g. an older
 * checkout). Two loads, each on a fresh daemon with the default configuration:
 *   held   20 connections each announce a 4 MiB manifest and send all of it but the last byte
 *   nested 10 connections each send a complete 4 MiB body of "[" (one at a time, then together)
 * Prints VmRSS before, VmRSS while the load is on (after the daemon answered or after the
 * bytes were sent), and VmHWM (peak), in MiB.
 *
 *   bun scripts/measure-ingress.ts [path/to/main.ts]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type Socket, connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const main = resolve(process.argv[2] ?? join(import.meta.dir, "../daemon/main.ts"));
const MiB = 2 ** 20;

function mem(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

async function daemon(): Promise<{ port: number; pid: number; stop(): void }> {
  const work = mkdtempSync(join(tmpdir(), "berth-ingress-"));
  const config = join(work, "c.toml");
  writeFileSync(config, `[http]\naddress = "127.0.0.1"\nport = 0\n[storage]\nroot = "${join(work, "root")}"\n`);
  const proc = Bun.spawn([process.execPath, main, "serve", "--config", config], { stderr: "pipe", stdout: "ignore" });
  const reader = (proc.stderr as ReadableStream<Uint8Array>).getReader();
  let logs = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`exited before listening: ${logs}`);
    logs += new TextDecoder().decode(value);
    const m = /"msg":"berth listening".*?"port":(\d+)/.exec(logs);
    if (m) {
      void (async () => {
        while (!(await reader.read()).done);
      })();
      return { port: Number(m[1]), pid: proc.pid, stop: () => (proc.kill("SIGKILL"), rmSync(work, { recursive: true, force: true })) };
    }
  }
}

/** Sends `head` + `body` and resolves when it is written (the socket stays open); `answered` resolves on the first bytes back. */
function send(port: number, head: string, body: Uint8Array): { sent: Promise<Socket>; answered: Promise<string> } {
  const sock = connect(port, "127.0.0.1");
  const answered = new Promise<string>((res) => {
    sock.once("data", (b) => res(b.toString("latin1").split("\r\n")[0]!));
    sock.on("close", () => res("closed"));
  });
  sock.on("error", () => {});
  const sent = new Promise<Socket>((res) => sock.on("connect", () => sock.write(head, () => sock.write(body, () => res(sock)))));
  return { sent, answered };
}

const fmt = (n: number) => (n / MiB).toFixed(1);
const head = (port: number, length: number) => `PUT /v2/hostile/app/manifests/v1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: ${length}\r\n\r\n`;

{
  const d = await daemon();
  await fetch(`http://127.0.0.1:${d.port}/v2/`);
  const before = mem(d.pid).rss;
  const size = 4 * MiB;
  const body = new Uint8Array(size - 1).fill(0x20);
  const conns = Array.from({ length: 20 }, () => send(d.port, head(d.port, size), body));
  const sockets = await Promise.all(conns.map((c) => c.sent));
  // give the daemon the bytes: wait until its RSS stops growing for 500 ms, at most 10 s
  let last = 0;
  for (let i = 0; i < 40; i++) {
    await Bun.sleep(250);
    const now = mem(d.pid).rss;
    if (Math.abs(now - last) < MiB && i > 2) break;
    last = now;
  }
  const answers = await Promise.all(conns.map((c) => Promise.race([c.answered, Bun.sleep(100).then(() => "pending")])));
  const counts = answers.reduce<Record<string, number>>((m, a) => ((m[a] = (m[a] ?? 0) + 1), m), {});
  const during = mem(d.pid);
  console.log(`held:   20 x 4 MiB bodies without their last byte: RSS ${fmt(before)} -> ${fmt(during.rss)} MiB, peak ${fmt(during.hwm)} MiB; answers ${JSON.stringify(counts)}`);
  for (const s of sockets) s.destroy();
  d.stop();
}

{
  const d = await daemon();
  await fetch(`http://127.0.0.1:${d.port}/v2/`);
  const before = mem(d.pid).rss;
  const body = new Uint8Array(4 * MiB).fill(0x5b);
  const conns = Array.from({ length: 10 }, () => send(d.port, head(d.port, body.byteLength), body));
  const answers = await Promise.all(conns.map((c) => Promise.race([c.answered, Bun.sleep(60_000).then(() => "no answer in 60 s")])));
  const after = mem(d.pid);
  const counts = answers.reduce<Record<string, number>>((m, a) => ((m[a] = (m[a] ?? 0) + 1), m), {});
  console.log(`nested: 10 x 4 MiB of "[" at once: RSS ${fmt(before)} -> ${fmt(after.rss)} MiB, peak ${fmt(after.hwm)} MiB; answers ${JSON.stringify(counts)}`);
  for (const c of conns) (await c.sent).destroy();
  d.stop();
}
