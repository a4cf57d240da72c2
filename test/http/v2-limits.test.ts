/**
 * Socketless tests of the /v2 bounds (issue 9, items 3 and 4): the cap on open upload
 * sessions, in total and per client (429 TOOMANYREQUESTS with Retry-After), the byte budget
 * of manifest bodies in flight (429), the manifest body deadline (408), and errno faults
 * from storage answered 503/507 rather than 500.
 */
import { expect, test } from "bun:test";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";
import type { RequestPeer } from "../../daemon/platform/serve";
import { createTestRegistry, imageManifest, pushBlob } from "../helpers/registry";

const peer = (address: string): RequestPeer => ({ requestIP: () => ({ address }) });

async function errorOf(res: Response): Promise<{ code: string; detail: string }> {
  return ((await res.json()) as { errors: { code: string; detail: string }[] }).errors[0]!;
}

test("upload sessions are capped per client and in total; a finished or cancelled one frees its slot", async () => {
  await using r = await createTestRegistry({ uploadLimits: { maxSessions: 3, maxPerClient: 2, expiryMs: 600_000 } });
  const post = (address: string) => r.handle(new Request("http://registry.test/v2/cap/blobs/uploads/", { method: "POST" }), peer(address));
  const a1 = await post("10.0.0.1");
  expect(a1.status).toBe(202);
  expect((await post("10.0.0.1")).status).toBe(202);
  const third = await post("10.0.0.1");
  expect(third.status).toBe(429);
  expect(third.headers.get("retry-after")).toBe("5");
  const err = await errorOf(third);
  expect(err.code).toBe("TOOMANYREQUESTS");
  expect(err.detail).toContain("this client has 2 upload sessions open");
  // another client still gets one, up to the total
  expect((await post("10.0.0.2")).status).toBe(202);
  const full = await post("10.0.0.3");
  expect(full.status).toBe(429);
  expect((await errorOf(full)).detail).toContain("3 upload sessions are open");
  // cancelling frees the slot for that client
  expect((await r.call("DELETE", a1.headers.get("location")!)).status).toBe(204);
  expect((await post("10.0.0.1")).status).toBe(202);
  expect(r.store.uploads.count()).toBe(3);
});

test("a monolithic push counts only while it runs", async () => {
  await using r = await createTestRegistry({ uploadLimits: { maxSessions: 1, maxPerClient: 1, expiryMs: 600_000 } });
  for (let i = 0; i < 3; i++) await pushBlob(r, "mono", `blob ${i}`);
  expect(r.store.uploads.count()).toBe(0);
});

test("manifest bodies beyond the byte budget are 429 with Retry-After; the budget comes back afterwards", async () => {
  await using r = await createTestRegistry({ manifestBudgetBytes: 100_000 });
  await pushBlob(r, "m", "{}");
  // two bodies that arrive slowly (chunked, no Content-Length) hold 60 KB each
  const gates: (() => void)[] = [];
  const slowBody = (bytes: number) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array(bytes).fill(0x20));
        gates.push(() => {
          try {
            c.enqueue(new TextEncoder().encode(imageManifest("{}", [])));
            c.close();
          } catch {
            // the refused request cancelled its body
          }
        });
      },
    });
  const put = (body: ReadableStream<Uint8Array> | string, headers: Record<string, string> = {}) =>
    r.call("PUT", "/v2/m/manifests/t", { headers: { "Content-Type": OCI_MANIFEST, ...headers }, body });
  const settled: Response[] = [];
  const first = put(slowBody(60_000));
  const second = put(slowBody(60_000));
  for (const p of [first, second]) void p.then((res) => settled.push(res));
  // one of them does not fit once its bytes arrive; the other cannot end before its gate opens
  for (let i = 0; i < 200 && settled.length === 0; i++) await Bun.sleep(5);
  const refused = [...settled];
  expect(refused).toHaveLength(1);
  expect(refused[0]!.status).toBe(429);
  expect(refused[0]!.headers.get("retry-after")).toBe("1");
  expect((await errorOf(refused[0]!)).code).toBe("TOOMANYREQUESTS");
  // with Content-Length the reservation is made before any byte is read
  const declared = await put("x".repeat(50_000), { "Content-Length": "50000" });
  expect(declared.status).toBe(429);
  for (const open of gates) open();
  const done = await Promise.all([first, second]);
  expect(done.map((res) => res.status).sort()).toEqual([201, 429]);
  // everything was released: a body of nearly the whole budget fits now
  const big = imageManifest("{}", []).replace("{", `{"pad":"${"p".repeat(90_000)}",`);
  expect((await put(big)).status).toBe(201);
});

test("a manifest body that does not arrive before the deadline is 408, and the budget is given back", async () => {
  await using r = await createTestRegistry({ manifestBudgetBytes: 10_000, bodyTimeoutMs: 100 });
  await pushBlob(r, "m", "{}");
  const stalled = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new Uint8Array(9_000).fill(0x20)); // and never the rest
    },
  });
  const res = await r.call("PUT", "/v2/m/manifests/t", { headers: { "Content-Type": OCI_MANIFEST }, body: stalled });
  expect(res.status).toBe(408);
  const err = await errorOf(res);
  expect(err.code).toBe("MANIFEST_INVALID");
  expect(err.detail).toContain("did not arrive within 0.1 s");
  expect(res.headers.get("connection")).toBe("close");
  expect((await r.call("PUT", "/v2/m/manifests/t", { headers: { "Content-Type": OCI_MANIFEST }, body: imageManifest("{}", []) })).status).toBe(201);
});

test("errno faults from storage are 503 with Retry-After (EMFILE) and 507 (ENOSPC), never 500", async () => {
  await using r = await createTestRegistry();
  await pushBlob(r, "m", "{}");
  const fail = (code: string) => {
    r.store.uploads.start = () => Promise.reject(Object.assign(new Error(`${code}: simulated`), { code }));
  };
  fail("EMFILE");
  let res = await r.call("POST", "/v2/m/blobs/uploads/");
  expect(res.status).toBe(503);
  expect(res.headers.get("retry-after")).toBe("5");
  expect((await errorOf(res)).detail).toContain("EMFILE");
  fail("ENOSPC");
  res = await r.call("POST", "/v2/m/blobs/uploads/");
  expect(res.status).toBe(507);
  // a fault that reaches the handler untranslated (a manifest read) is mapped there too
  await r.call("PUT", "/v2/m/manifests/t", { headers: { "Content-Type": OCI_MANIFEST }, body: imageManifest("{}", []) });
  const reopened = await r.reopen();
  reopened.store.blobs.read = () => Promise.reject(Object.assign(new Error("ENFILE: simulated"), { code: "ENFILE" }));
  res = await reopened.call("GET", "/v2/m/manifests/t");
  expect(res.status).toBe(503);
  await reopened[Symbol.asyncDispose]();
});
