/**
 * A pull-through fetch is bytes entering the store like a push, and goes through the same
 * ingest path (storage/api.ts, BlobIngest): the store's quota and the free-space floor refuse
 * it as they refuse a push, with the same 507 DENIED and a message saying which limit, and
 * nothing of the refused blob is stored. Real daemons, a scripted upstream.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fakeupstream";

const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
/** Larger than the quota below; the upstream serves it as lib/app's layer. */
const layer = randomBytes(300_000);
const small = randomBytes(2_000);

let fake: FakeUpstream;
let quota: Daemon;
let floor: Daemon;

const upstream = () => `[scheduler]\njitter_ms = 0\n[[sync.registries]]\nname = "up"\nurls = ["${fake.url}"]\nrepos = ["lib/**"]\nretries = 0\n`;

beforeAll(async () => {
  fake = startFakeUpstream((_req, path) => {
    if (path === `/v2/lib/app/blobs/${sha(layer)}`) return new Response(layer);
    if (path === `/v2/lib/app/blobs/${sha(small)}`) return new Response(small);
    return undefined;
  });
  quota = await startDaemon({ extra: `[quota]\nmax_bytes = 100000\nmin_free = "0%"\n${upstream()}` });
  floor = await startDaemon({ extra: `[quota]\nmin_free = "100%"\n${upstream()}` });
}, 30_000);

afterAll(async () => {
  await quota?.[Symbol.asyncDispose]();
  await floor?.[Symbol.asyncDispose]();
  await fake?.[Symbol.asyncDispose]();
});

/** Files under the root's pool and the repository's blobs (what a refused fetch must not leave). */
function storedBlobs(root: string, repo: string): string[] {
  const out: string[] = [];
  for (const dir of [join(root, ".berth", "pool", "sha256"), join(root, repo, "blobs", "sha256")]) if (existsSync(dir)) out.push(...readdirSync(dir));
  return out;
}

async function errorOf(res: Response): Promise<{ code: string; message: string; detail: unknown }> {
  const body = (await res.json()) as { errors: { code: string; message: string; detail: unknown }[] };
  return body.errors[0]!;
}

describe("sync fetches are admitted like pushes", () => {
  test("a pull-through fetch over the store's quota is refused as a push of the same blob is, and stores nothing", async () => {
    const pulled = await fetch(`${quota.url}/v2/lib/app/blobs/${sha(layer)}`);
    expect(pulled.status).toBe(507);
    const pullErr = await errorOf(pulled);
    expect(pullErr.code).toBe("DENIED");
    expect(JSON.stringify(pullErr.detail)).toContain("quota");
    expect(fake.hits(`/v2/lib/app/blobs/${sha(layer)}`)).toBe(1);
    expect(storedBlobs(quota.root, "lib/app")).not.toContain(sha(layer).slice(7));

    const pushed = await fetch(`${quota.url}/v2/local/blobs/uploads/?digest=${sha(layer)}`, { method: "POST", body: layer, headers: { "Content-Length": String(layer.byteLength) } });
    expect(pushed.status).toBe(507);
    const pushErr = await errorOf(pushed);
    expect(pushErr.code).toBe(pullErr.code);
    expect(pushErr.detail).toEqual(pullErr.detail);

    // what fits is still fetched and stored
    const ok = await fetch(`${quota.url}/v2/lib/app/blobs/${sha(small)}`);
    expect(ok.status).toBe(200);
    expect(new Uint8Array(await ok.arrayBuffer())).toEqual(new Uint8Array(small));
  });

  test("a pull-through fetch that would go below min_free is refused as a push is", async () => {
    const pulled = await fetch(`${floor.url}/v2/lib/app/blobs/${sha(small)}`);
    expect(pulled.status).toBe(507);
    const pullErr = await errorOf(pulled);
    expect(pullErr.code).toBe("DENIED");
    expect(JSON.stringify(pullErr.detail)).toContain("free");
    expect(storedBlobs(floor.root, "lib/app")).toEqual([]);
    const pushed = await fetch(`${floor.url}/v2/local/blobs/uploads/?digest=${sha(small)}`, { method: "POST", body: small, headers: { "Content-Length": String(small.byteLength) } });
    expect(pushed.status).toBe(507);
    expect((await errorOf(pushed)).code).toBe("DENIED");
  });
});
