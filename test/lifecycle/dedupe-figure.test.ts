/**
 * Dedupe savings on GET /api/v1/storage (issue 12): a real daemon, blobs pushed through /v2
 * into several repositories. With dedupe on, a blob in three repositories is stored once and
 * saves two copies; a blob in one repository saves nothing; with `dedupe = false` every
 * repository holds its own copy and nothing is saved.
 */
import { describe, expect, test } from "bun:test";
import { sha256 } from "../helpers/clients";
import { startDaemon } from "../helpers/daemon";

async function pushBlob(url: string, repo: string, data: string): Promise<void> {
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { method: "POST", body: data, headers: { "Content-Type": "application/octet-stream" } });
  expect(res.status).toBe(201);
}

async function dedupeOf(url: string): Promise<{ savedBytes: number; sharedBlobs: number; at: number }> {
  const res = await fetch(`${url}/api/v1/storage`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { dedupe: { savedBytes: number; sharedBlobs: number; at: number } }).dedupe;
}

describe("dedupe savings in the storage figures", () => {
  const shared = "shared layer bytes ".repeat(500);
  const lone = "a layer only one repository has ".repeat(100);

  test("a blob in three repositories saves two copies; one in a single repository saves nothing", async () => {
    await using berth = await startDaemon();
    for (const repo of ["a/one", "b/two", "c/three"]) await pushBlob(berth.url, repo, shared);
    await pushBlob(berth.url, "a/one", lone);
    const before = Date.now();
    const d = await dedupeOf(berth.url);
    expect(d).toEqual({ savedBytes: 2 * Buffer.byteLength(shared), sharedBlobs: 1, at: d.at });
    expect(d.at).toBeLessThanOrEqual(Date.now());
    expect(d.at).toBeGreaterThanOrEqual(before - 60_000);
  });

  test("with dedupe off, every repository has its own copy: nothing saved", async () => {
    await using berth = await startDaemon({ storage: "dedupe = false" });
    for (const repo of ["a/one", "b/two", "c/three"]) await pushBlob(berth.url, repo, shared);
    expect(await dedupeOf(berth.url)).toMatchObject({ savedBytes: 0, sharedBlobs: 0 });
  });
});
