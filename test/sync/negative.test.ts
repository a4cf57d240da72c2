/**
 * Pull-through misses and lying upstreams, against the real daemon and a small scripted
 * upstream (test/helpers/fakeupstream.ts: counts every request it gets and serves wrong
 * bytes for chosen digests): identical misses cost one upstream request per negative-cache TTL,
 * however many clients ask and whether they ask at once or one after another; a blob whose
 * upstream bytes fail their digest is logged and counted, trips nothing (the breaker stays
 * up even at `breaker_failures = 1`), gives a small blob's client a 502 and a large blob's
 * client a broken connection (never a clean end), and every later client a 502 at once.
 * The cache itself (TTL, LRU bound) is tested with a fake clock.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fakeupstream";
import { NegativeCache } from "../../daemon/sync/negative";
import { parseConfig } from "../../daemon/config/load";
import { UpstreamError } from "../../daemon/sync/errors";
import { sha256 as sha } from "../helpers/clients";


/** Blobs the fake upstream lies about: it serves other bytes of the same length. */
const small = randomBytes(1000);
const large = randomBytes(3 * 1024 * 1024);
const good = randomBytes(2000);
const SMALL = sha(small);
const LARGE = sha(large);
const GOOD = sha(good);
/** A blob the fake upstream sends without a length (chunked), with wrong bytes. */
const unsized = randomBytes(2 * 1024 * 1024);
const UNSIZED = sha(unsized);
const MISSING = `sha256:${"e".repeat(64)}`;

let fake: FakeUpstream;
const count = (path: string) => fake.hits(path);
let berth: Daemon;

beforeAll(async () => {
  fake = startFakeUpstream((_req, path) => {
    const blob = /^\/v2\/lib\/[a-z]+\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path)?.[1];
    const lie = (b: Uint8Array) => new Response(randomBytes(b.byteLength), { headers: { "content-type": "application/octet-stream" } });
    if (blob === SMALL) return lie(small);
    if (blob === LARGE) return lie(large);
    if (blob === GOOD) return new Response(good);
    if (blob === UNSIZED) {
      const wrong = randomBytes(unsized.byteLength);
      let at = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (at >= wrong.byteLength) return c.close();
          c.enqueue(wrong.subarray(at, at + 256 * 1024));
          at += 256 * 1024;
        },
      });
      return new Response(body);
    }
    return undefined;
  });
  berth = await startDaemon({
    extra: `[[sync.registries]]\nname = "fake"\nurls = ["http://127.0.0.1:${fake.port}"]\nrepos = ["lib/**"]\nbreaker_failures = 1\nnegative_cache_ttl = 600\n`,
  });
}, 30_000);

afterAll(async () => {
  await berth?.[Symbol.asyncDispose]();
  await fake?.[Symbol.asyncDispose]();
});

async function errorOf(res: Response): Promise<{ code: string; detail: string }> {
  const body = (await res.json()) as { errors: { code: string; detail: string }[] };
  return body.errors[0]!;
}

async function syncInfo(): Promise<{ state: string; corruptBlobs: number; negativeCache: { hits: number } }> {
  const res = await fetch(`${berth.url}/api/v1/sync`);
  return ((await res.json()) as { registries: { state: string; corruptBlobs: number; negativeCache: { hits: number } }[] }).registries[0]!;
}

describe("negative cache", () => {
  test("300 identical manifest misses, at once and one after another, cost one upstream request", async () => {
    const url = `${berth.url}/v2/lib/miss/manifests/v1`;
    const statuses: number[] = [];
    for (let round = 0; round < 6; round++) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => fetch(url).then(async (r) => (await r.arrayBuffer(), r.status))));
      statuses.push(...batch);
    }
    expect(statuses.length).toBe(300);
    expect(statuses.every((s) => s === 404)).toBe(true);
    expect(count("/v2/lib/miss/manifests/v1")).toBe(1);
    const last = await fetch(url);
    const err = await errorOf(last);
    expect(err.code).toBe("MANIFEST_UNKNOWN");
    expect(err.detail).toContain("upstream fake");
    expect(err.detail).toContain("a recent answer");
    expect((await syncInfo()).negativeCache.hits).toBeGreaterThanOrEqual(250);
  });

  test("blob misses by GET and HEAD share one upstream request", async () => {
    const url = `${berth.url}/v2/lib/miss/blobs/${MISSING}`;
    const results = await Promise.all([
      ...Array.from({ length: 20 }, () => fetch(url).then(async (r) => (await r.arrayBuffer(), r.status))),
      ...Array.from({ length: 20 }, () => fetch(url, { method: "HEAD" }).then((r) => r.status)),
    ]);
    expect(results.every((s) => s === 404)).toBe(true);
    for (let i = 0; i < 20; i++) expect((await fetch(url, { method: "HEAD" })).status).toBe(404);
    expect(count(`/v2/lib/miss/blobs/${MISSING}`)).toBeLessThanOrEqual(2);
    const again = await fetch(url);
    expect((await errorOf(again)).code).toBe("BLOB_UNKNOWN");
    expect(count(`/v2/lib/miss/blobs/${MISSING}`)).toBeLessThanOrEqual(2);
  });
});

describe("a blob whose upstream bytes fail their digest", () => {
  test("a small blob: 502 for its client and the next, logged, counted, the breaker untouched", async () => {
    const url = `${berth.url}/v2/lib/bad/blobs/${SMALL}`;
    const first = await fetch(url);
    expect(first.status).toBe(502);
    const err = await errorOf(first);
    expect(err.code).toBe("UNKNOWN");
    expect(err.detail).toContain("upstream fake");
    expect(err.detail).toContain(SMALL);
    const second = await fetch(url);
    expect(second.status).toBe(502);
    expect((await errorOf(second)).detail).toContain("a recent answer");
    expect(count(`/v2/lib/bad/blobs/${SMALL}`)).toBe(1);
    expect(existsSync(join(berth.root, "lib/bad/blobs/sha256", SMALL.slice(7)))).toBe(false);
    const warn = berth.logs().split("\n").find((l) => l.includes('"level":"warn"') && l.includes(SMALL));
    expect(warn).toBeDefined();
    expect(JSON.parse(warn!)).toMatchObject({ repo: "lib/bad", digest: SMALL, upstream: "fake" });
    const info = await syncInfo();
    expect(info.state).toBe("up");
    expect(info.corruptBlobs).toBe(1);
    const metrics = await (await fetch(`${berth.url}/metrics`)).text();
    expect(metrics).toContain('berth_sync_corrupt_blobs_total{upstream="fake"} 1');
    // the upstream still serves good content through berth
    const ok = await fetch(`${berth.url}/v2/lib/bad/blobs/${GOOD}`);
    expect(ok.status).toBe(200);
    expect(sha(new Uint8Array(await ok.arrayBuffer()))).toBe(GOOD);
  });

  test("a large blob: its client's transfer breaks off; the next client gets 502", async () => {
    const url = `${berth.url}/v2/lib/big/blobs/${LARGE}`;
    const first = await fetch(url);
    expect(first.status).toBe(200);
    // the status went out before the digest could be checked: the body must not end cleanly
    let error: unknown;
    try {
      await first.arrayBuffer();
    } catch (err) {
      error = err;
    }
    expect(error).toBeDefined();
    const second = await fetch(url);
    expect(second.status).toBe(502);
    expect((await errorOf(second)).detail).toContain(LARGE);
    expect(count(`/v2/lib/big/blobs/${LARGE}`)).toBe(1);
    const info = await syncInfo();
    expect(info.state).toBe("up");
    expect(info.corruptBlobs).toBe(2);
  });

  test("a blob sent without a length: the transfer errors rather than ending cleanly", async () => {
    const url = `${berth.url}/v2/lib/chunked/blobs/${UNSIZED}`;
    const first = await fetch(url);
    expect(first.status).toBe(200);
    let error: unknown;
    try {
      await first.arrayBuffer();
    } catch (err) {
      error = err;
    }
    expect(error).toBeDefined();
    const second = await fetch(url);
    expect(second.status).toBe(502);
    expect(count(`/v2/lib/chunked/blobs/${UNSIZED}`)).toBe(1);
  });
});

describe("NegativeCache", () => {
  test("configured per registry: defaults 30 s and 1024 entries; bad values name the key", () => {
    const reg = (extra: string) => `[[sync.registries]]\nurls = ["http://127.0.0.1:1"]\n${extra}`;
    const c = parseConfig(reg(""), "t").sync.registries[0]!;
    expect([c.negativeCacheTtl, c.negativeCacheEntries]).toEqual([30, 1024]);
    expect(() => parseConfig(reg("negative_cache_ttl = -1\n"), "t")).toThrow("sync.registries[0].negative_cache_ttl: -1 is outside 0..86400");
    expect(() => parseConfig(reg("negative_cache_entries = 0\n"), "t")).toThrow("sync.registries[0].negative_cache_entries: 0 is outside 1..1000000");
  });

  const notFound = new UpstreamError("not-found", "u", "x was not found");
  test("keeps 404s and digest failures for the TTL, not outages", () => {
    let now = 0;
    const c = new NegativeCache({ ttlMs: 30_000, entries: 10, now: () => now });
    c.remember("a", notFound);
    c.remember("b", new UpstreamError("digest", "u", "bad bytes"));
    c.remember("c", new UpstreamError("unreachable", "u", "refused"));
    c.remember("d", new Error("other"));
    expect(c.get("a")).toBe(notFound);
    expect(c.get("b")?.fault).toBe("digest");
    expect(c.get("c")).toBeUndefined();
    expect(c.get("d")).toBeUndefined();
    now = 29_999;
    expect(c.get("a")).toBe(notFound);
    now = 30_000;
    expect(c.get("a")).toBeUndefined();
    expect(c.hits).toBe(3);
  });

  test("holds at most `entries`, dropping the least recently used", () => {
    const c = new NegativeCache({ ttlMs: 1000, entries: 3, now: () => 0 });
    for (const k of ["a", "b", "c"]) c.remember(k, notFound);
    c.get("a");
    c.remember("d", notFound);
    expect(c.size).toBe(3);
    expect(c.get("b")).toBeUndefined();
    for (const k of ["a", "c", "d"]) expect(c.get(k)).toBe(notFound);
  });

  test("a TTL of 0 keeps nothing", () => {
    const c = new NegativeCache({ ttlMs: 0, entries: 3 });
    c.remember("a", notFound);
    expect(c.get("a")).toBeUndefined();
  });
});
