/**
 * Which index.json writes may spend the reserve (storage/layouts.ts): on a full disk, only a
 * write that makes index.json smaller (a delete, GC; by however few bytes) releases the
 * reserve and tries again; a write of the same length (an entry pointed at another digest of
 * the same length) or a longer one (a new tag) fails with the disk-full error and leaves the
 * reserve alone.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../daemon/log";
import { tagOf, withManifest, withoutTag } from "../../daemon/oci/layoutindex";
import { realDisk } from "../../daemon/platform/disk";
import { Layouts } from "../../daemon/storage/layouts";
import { Paths } from "../../daemon/storage/paths";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";

const desc = (hex: string) => ({ mediaType: OCI_MANIFEST, digest: `sha256:${hex.repeat(64)}`, size: 100 });

/** Layouts over a temp root whose next index.json write finds the disk full; counts reserve releases. */
async function fullDisk() {
  const root = mkdtempSync(join(tmpdir(), "berth-reserve-"));
  let full = false;
  const disk = {
    ...realDisk,
    async writeAtomic(path: string, data: string | Uint8Array) {
      if (full && path.endsWith("index.json")) {
        full = false;
        throw Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
      }
      return realDisk.writeAtomic(path, data);
    },
  };
  let released = 0;
  const layouts = new Layouts(new Paths(root), disk, silentLogger, async () => (released++, true));
  await layouts.ensure("app");
  await layouts.update("app", (e) => withManifest(withManifest(e, desc("a"), ["cur"]), desc("b"), ["old"]));
  return { layouts, released: () => released, fill: () => (full = true), [Symbol.dispose]: () => rmSync(root, { recursive: true, force: true }) };
}

describe("index.json writes on a full disk", () => {
  test("a write of the same length fails with ENOSPC and does not spend the reserve", async () => {
    using f = await fullDisk();
    f.fill();
    const repoint = (e: ReturnType<typeof desc>[]) => e.map((d) => (d.digest === desc("a").digest ? { ...d, digest: desc("c").digest } : d));
    await expect(f.layouts.update("app", repoint)).rejects.toMatchObject({ code: "ENOSPC" });
    expect(f.released()).toBe(0);
    expect((await f.layouts.index("app"))!.tags.get("cur")!.digest).toBe(desc("a").digest);
  });

  test("a new tag (longer) fails and does not spend the reserve; a tag delete (shorter) spends it and succeeds", async () => {
    using f = await fullDisk();
    f.fill();
    await expect(f.layouts.update("app", (e) => withManifest(e, desc("d"), ["new"]))).rejects.toMatchObject({ code: "ENOSPC" });
    expect(f.released()).toBe(0);
    f.fill();
    await f.layouts.update("app", (e) => withoutTag(e, "old"));
    expect(f.released()).toBe(1);
    expect([...(await f.layouts.index("app"))!.tags.keys()]).toEqual(["cur"]);
  });

  test("a write shorter by two bytes counts as shrinking: it spends the reserve and succeeds", async () => {
    using f = await fullDisk();
    f.fill();
    const rename = (e: ReturnType<typeof desc>[]) => e.map((d) => (tagOf(d) === "old" ? { ...d, annotations: { "org.opencontainers.image.ref.name": "o" } } : d));
    await f.layouts.update("app", rename);
    expect(f.released()).toBe(1);
    expect([...(await f.layouts.index("app"))!.tags.keys()].sort()).toEqual(["cur", "o"]);
  });
});
