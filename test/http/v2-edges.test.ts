/**
 * /v2 handler edges the table tests missed (issue 15, killing mutants that survived them):
 * open-ended and over-long `Range` requests are answered up to the blob's last byte with
 * the right Content-Range and Content-Length, and an exception that is neither an OCI error
 * nor a resource shortage (a bug, say) becomes 500 UNKNOWN in the OCI shape with nothing
 * internal in the body.
 */
import { describe, expect, test } from "bun:test";
import { realDisk } from "../../daemon/platform/disk";
import { createTestRegistry, pushBlob, sha256 } from "../helpers/registry";

const BLOB = "0123456789abcdefghij"; // 20 bytes

describe("/v2 edges", () => {
  for (const [range, start, end] of [["bytes=5-", 5, 19], ["bytes=5-999999", 5, 19], ["bytes=19-", 19, 19], ["bytes=0-19", 0, 19]] as const) {
    test(`Range ${range} is served up to the last byte`, async () => {
      await using r = await createTestRegistry();
      const digest = await pushBlob(r, "app", BLOB);
      const res = await r.call("GET", `/v2/app/blobs/${digest}`, { headers: { Range: range } });
      expect(res.status).toBe(206);
      expect(res.headers.get("content-range")).toBe(`bytes ${start}-${end}/20`);
      expect(res.headers.get("content-length")).toBe(String(end - start + 1));
      expect(await res.text()).toBe(BLOB.slice(start, end + 1));
    });
  }

  test("an unexpected exception is 500 UNKNOWN with nothing internal in the body", async () => {
    const disk = {
      ...realDisk,
      stat(path: string) {
        if (path.includes("/boom/blobs/")) throw new TypeError("internal detail: cannot read properties of undefined");
        return realDisk.stat(path);
      },
    };
    await using r = await createTestRegistry({ disk });
    const res = await r.call("GET", `/v2/boom/blobs/${sha256("x")}`);
    expect(res.status).toBe(500);
    const text = await res.text();
    expect((JSON.parse(text) as { errors: { code: string }[] }).errors[0]!.code).toBe("UNKNOWN");
    expect(text).not.toContain("internal detail");
    expect((await r.call("GET", "/v2/")).status).toBe(200); // and the handler goes on
  });
});
