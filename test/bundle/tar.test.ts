/**
 * The bundle's tar (daemon/bundle/tar.ts) against GNU tar: what it writes GNU tar lists and
 * extracts byte-exact (long names through pax headers included); what GNU tar writes it
 * reads (./ prefixes, GNU long names); a truncated archive, a damaged header and a missing
 * end are errors naming the place; an entry's size is enforced while writing.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync, openSync, writeSync, closeSync, statSync } from "node:fs";
import { join } from "node:path";
import { makeTemp, runOk } from "../helpers/clients";
import { entryChunks, readEntry, scanTar, TarError, TarWriter } from "../../daemon/bundle/tar";

const work = makeTemp("berth-tar-");
afterAll(() => rmSync(work, { recursive: true, force: true }));

const LONG = `blobs/sha512/${"ab".repeat(64)}`;
const bytes = (n: number, seed = 7) => Uint8Array.from({ length: n }, (_, i) => (i * seed + 3) & 0xff);

async function sample(path: string): Promise<void> {
  const tar = await TarWriter.create(path);
  await tar.file("oci-layout", 5, [new TextEncoder().encode("hello")]);
  await tar.directory("blobs/");
  await tar.file(LONG, 3000, [bytes(1000), bytes(2000, 11)]);
  await tar.file("empty", 0, []);
  await tar.close();
}

describe("bundle tar", () => {
  test("GNU tar extracts what it writes, a pax long name included; scanTar reads it back by offset", async () => {
    const path = join(work, "a.tar");
    await sample(path);
    const out = join(work, "a");
    mkdirSync(out);
    await runOk(["tar", "-C", out, "-xf", path]);
    expect(readFileSync(join(out, "oci-layout"), "utf8")).toBe("hello");
    expect(new Uint8Array(readFileSync(join(out, LONG)))).toEqual(new Uint8Array([...bytes(1000), ...bytes(2000, 11)]));
    const entries = await scanTar(path);
    expect([...entries.keys()].sort()).toEqual(["empty", LONG, "oci-layout"].sort());
    expect(await readEntry(path, entries.get(LONG)!)).toEqual(new Uint8Array(readFileSync(join(out, LONG))));
    const chunks: Uint8Array[] = [];
    for await (const c of entryChunks(path, entries.get(LONG)!, 512)) chunks.push(c);
    expect(chunks.length).toBe(6);
    expect(Buffer.concat(chunks)).toEqual(readFileSync(join(out, LONG)));
  });

  test("reads GNU tar's own archives: ./ prefixes and GNU long names", async () => {
    const dir = join(work, "src");
    mkdirSync(join(dir, "blobs", "sha512"), { recursive: true });
    writeFileSync(join(dir, LONG), "long one");
    writeFileSync(join(dir, "index.json"), "{}");
    for (const format of ["gnu", "posix"]) {
      const path = join(work, `gnu-${format}.tar`);
      await runOk(["tar", `--format=${format}`, "-C", dir, "-cf", path, "."]);
      const entries = await scanTar(path);
      expect(new TextDecoder().decode(await readEntry(path, entries.get(LONG)!))).toBe("long one");
      expect(entries.has("index.json")).toBe(true);
    }
  });

  test("truncated, damaged or unterminated archives are errors that say where", async () => {
    const path = join(work, "b.tar");
    await sample(path);
    const size = statSync(path).size;
    const cut = join(work, "cut.tar");
    for (const [at, text] of [[515, /truncated: "oci-layout" needs 5 bytes/], [1000, /truncated/], [size - 1024, /end-of-archive/], [2600, /inside the header at byte 2560/], [4000, /truncated: "blobs\/sha512\/ab/]] as const) {
      copyFileSync(path, cut);
      truncateSync(cut, at);
      const err = await scanTar(cut).catch((e) => e);
      expect(err).toBeInstanceOf(TarError);
      expect(String(err.message)).toMatch(text);
    }
    const damaged = join(work, "damaged.tar");
    copyFileSync(path, damaged);
    const fd = openSync(damaged, "r+");
    writeSync(fd, Buffer.from("X"), 0, 1, 3);
    closeSync(fd);
    expect(String((await scanTar(damaged).catch((e) => e)).message)).toContain("wrong checksum");
  });

  test("an entry with more or fewer bytes than announced is refused", async () => {
    for (const [size, chunks] of [[4, [bytes(5)]], [6, [bytes(5)]]] as const) {
      const tar = await TarWriter.create(join(work, "bad.tar"));
      await expect(tar.file("x", size, chunks)).rejects.toThrow(/announced/);
      await tar.abort();
    }
  });
});
