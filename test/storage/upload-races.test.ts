/**
 * Upload sessions that another request, the expiry timer or a failed open could pull out
 * from under a request in progress (found by the review of issue 9): a DELETE while the
 * PUT that completes the upload is hashing, an expiry pass while the completed bytes are
 * being published, and a PATCH whose file cannot be opened (EMFILE).
 */
import { expect, test } from "bun:test";
import { realDisk } from "../../daemon/platform/disk";
import { inlineHashing, type UploadHashing } from "../../daemon/platform/uploadhash";
import { createTestRegistry, sha256 } from "../helpers/registry";

/** A promise and the function that resolves it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

async function startSession(r: Awaited<ReturnType<typeof createTestRegistry>>, repo: string, data: string): Promise<string> {
  const post = await r.call("POST", `/v2/${repo}/blobs/uploads/`);
  expect(post.status).toBe(202);
  const patch = await r.call("PATCH", post.headers.get("location")!, { body: data, headers: { "Content-Length": String(data.length) } });
  expect(patch.status).toBe(202);
  return patch.headers.get("location")!;
}

test("a DELETE while the completing PUT hashes is refused, and the blob published is the bytes uploaded", async () => {
  const hashing = gate();
  let digestAsked = false;
  // inline hashing whose digest waits for the test: the PUT is held inside completion
  const held: UploadHashing = {
    create(algorithm, path) {
      const h = inlineHashing.create(algorithm, path);
      return { ...h, digest: async () => ((digestAsked = true), await hashing.wait, h.digest()) };
    },
    release() {},
    shutdown: () => Promise.resolve(),
  };
  await using r = await createTestRegistry({ hashing: held });
  const data = "the layer's bytes ".repeat(100);
  const location = await startSession(r, "race", data);
  const put = r.call("PUT", `${location}${location.includes("?") ? "&" : "?"}digest=${sha256(data)}`);
  for (let i = 0; i < 200 && !digestAsked; i++) await Bun.sleep(5);
  expect(digestAsked).toBe(true);
  const del = await r.call("DELETE", location);
  expect(del.status).toBe(409);
  hashing.open();
  expect((await put).status).toBe(201);
  const blob = await r.call("GET", `/v2/race/blobs/${sha256(data)}`);
  expect(blob.status).toBe(200);
  expect(await blob.text()).toBe(data);
  expect(r.store.uploads.count()).toBe(0);
});

test("an expiry pass while a completed upload is being published leaves its bytes alone", async () => {
  await using r = await createTestRegistry({ uploadLimits: { maxSessions: 10, maxPerClient: 10, expiryMs: 30 } });
  const data = "published late ".repeat(50);
  const location = await startSession(r, "slow", data);
  // publishing waits until an expiry pass has run after the session became old enough
  const publishing = gate();
  let publishStarted = false;
  const ensure = r.store.indexes.ensure.bind(r.store.indexes);
  r.store.indexes.ensure = async (repo) => {
    publishStarted = true;
    await publishing.wait;
    return ensure(repo);
  };
  const put = r.call("PUT", `${location}${location.includes("?") ? "&" : "?"}digest=${sha256(data)}`);
  for (let i = 0; i < 200 && !publishStarted; i++) await Bun.sleep(5);
  expect(publishStarted).toBe(true);
  // a witness session opened after that one expires once a pass has found both old enough
  expect((await r.call("POST", "/v2/slow/blobs/uploads/")).status).toBe(202);
  for (let i = 0; i < 400 && r.store.uploads.list().some((s) => s.size === 0); i++) await Bun.sleep(5);
  expect(r.store.uploads.list().some((s) => s.size === 0)).toBe(false);
  publishing.open();
  expect((await put).status).toBe(201);
  const blob = await r.call("GET", `/v2/slow/blobs/${sha256(data)}`);
  expect(await blob.text()).toBe(data);
});

test("a PATCH whose file cannot be opened (EMFILE) is 503 and leaves the session usable and expirable", async () => {
  let failOpen = false;
  const disk = {
    ...realDisk,
    openAppend: (path: string) => (failOpen ? Promise.reject(Object.assign(new Error(`EMFILE: too many open files, open '${path}'`), { code: "EMFILE" })) : realDisk.openAppend(path)),
  };
  await using r = await createTestRegistry({ disk, uploadLimits: { maxSessions: 10, maxPerClient: 10, expiryMs: 600_000 } });
  const location = await startSession(r, "fd", "first ");
  failOpen = true;
  const refused = await r.call("PATCH", location, { body: "second", headers: { "Content-Length": "6" } });
  expect(refused.status).toBe(503);
  failOpen = false;
  expect(r.store.uploads.list()[0]!.busy).toBe(false);
  const again = await r.call("PATCH", location, { body: "second", headers: { "Content-Length": "6" } });
  expect(again.status).toBe(202);
  const put = await r.call("PUT", `${location}${location.includes("?") ? "&" : "?"}digest=${sha256("first second")}`);
  expect(put.status).toBe(201);
});
