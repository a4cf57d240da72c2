/**
 * Package inventory from image layers: images built with umoci from this machine's own
 * dpkg status, an apk installed database and an rpm sqlite database made here; whiteouts and
 * opaque directories across layers; GNU long names and PAX headers; gzip, zstd and plain
 * layers; and refusals for what is not a tar or is larger than the bound.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { inventoryOf } from "../../daemon/cve/inventory";
import { readTar, TarError } from "../../daemon/cve/tar";
import { makeTemp, runOk } from "../helpers/clients";
import { APK_INSTALLED, buildImage, layerStreams, rpmSqlite } from "./images";

setDefaultTimeout(60_000);

let work: string;
const dpkgStatus = readFileSync("/var/lib/dpkg/status");
const installed = dpkgStatus.toString().split("\n\n").filter((p) => /^Status: install ok installed$/m.test(p));
const DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n';

beforeAll(() => {
  work = makeTemp("berth-cve-inv-");
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("package inventory from umoci-built layers", () => {
  test("dpkg: this machine's status file, every installed package with its version", async () => {
    const layout = join(work, "deb");
    await buildImage(join(work, "deb-src"), layout, [{ files: { "etc/os-release": DEBIAN, "var/lib/dpkg/status": dpkgStatus } }]);
    const inv = await inventoryOf(layerStreams(layout));
    expect(inv.os).toMatchObject({ id: "debian", versionId: "12", codename: "bookworm" });
    expect(inv.packages.length).toBe(installed.length);
    const dpkg = installed.find((p) => /^Package: dpkg$/m.test(p))!;
    const version = /^Version: (.+)$/m.exec(dpkg)![1];
    expect(inv.packages.find((p) => p.name === "dpkg")).toMatchObject({ version, format: "dpkg" });
  });

  test("dpkg status.d (distroless) and a whiteout of the status file in an upper layer", async () => {
    const layout = join(work, "wh");
    const one = "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n";
    await buildImage(join(work, "wh-src"), layout, [
      { files: { "etc/os-release": DEBIAN, "var/lib/dpkg/status": dpkgStatus, "var/lib/dpkg/status.d/tzdata": one, "var/lib/dpkg/status.d/tzdata.md5sums": "x" } },
      { whiteout: "/var/lib/dpkg/status" },
    ]);
    const inv = await inventoryOf(layerStreams(layout));
    expect(inv.packages.map((p) => `${p.name}=${p.version}`)).toEqual(["tzdata=2024a-0+deb12u1"]);
  });

  test("a whiteout of a directory removes what lies under it", async () => {
    const layout = join(work, "whdir");
    await buildImage(join(work, "whdir-src"), layout, [
      { files: { "etc/os-release": DEBIAN, "var/lib/dpkg/status": dpkgStatus } },
      { whiteout: "/var/lib/dpkg" },
    ]);
    expect((await inventoryOf(layerStreams(layout))).packages).toEqual([]);
  });

  test("an opaque directory hides the layers below but keeps its own files", async () => {
    const layout = join(work, "opq");
    await buildImage(join(work, "opq-src"), layout, [
      { files: { "etc/os-release": DEBIAN, "var/lib/dpkg/status": dpkgStatus, "var/lib/dpkg/status.d/old": "Package: old\nVersion: 1\n" } },
      { opaque: "var/lib/dpkg", files: { "status.d/new": "Package: new\nVersion: 2.0-1\n" } },
    ]);
    const inv = await inventoryOf(layerStreams(layout));
    expect(inv.packages.map((p) => p.name)).toEqual(["new"]);
    expect(inv.os?.id).toBe("debian");
  });

  test("apk: the installed database with origins", async () => {
    const layout = join(work, "apk");
    await buildImage(join(work, "apk-src"), layout, [
      { files: { "etc/os-release": 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n', "lib/apk/db/installed": APK_INSTALLED } },
    ]);
    const inv = await inventoryOf(layerStreams(layout));
    expect(inv.os).toMatchObject({ id: "alpine", versionId: "3.19.1" });
    expect(inv.packages).toEqual([
      { name: "musl", version: "1.2.4-r2", format: "apk", arch: "x86_64" },
      { name: "libssl3", version: "3.1.4-r0", format: "apk", arch: "x86_64", source: "openssl" },
      { name: "busybox", version: "1.36.1-r5", format: "apk", arch: "x86_64" },
    ]);
  });

  test("rpm: the sqlite database, header blobs with epoch and source rpm; os-release under usr/lib", async () => {
    const layout = join(work, "rpm");
    const db = rpmSqlite([
      { name: "openssl-libs", version: "3.0.7", release: "24.el9", epoch: 1, srpm: "openssl-3.0.7-24.el9.src.rpm" },
      { name: "bash", version: "5.1.8", release: "6.el9_1", srpm: "bash-5.1.8-6.el9_1.src.rpm", arch: "aarch64" },
    ]);
    await buildImage(join(work, "rpm-src"), layout, [
      { files: { "usr/lib/os-release": 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n', "var/lib/rpm/rpmdb.sqlite": db } },
    ]);
    const inv = await inventoryOf(layerStreams(layout));
    expect(inv.os).toMatchObject({ id: "rocky", versionId: "9.3", idLike: ["rhel", "centos", "fedora"] });
    expect(inv.packages).toEqual([
      { name: "openssl-libs", version: "1:3.0.7-24.el9", format: "rpm", arch: "x86_64", source: "openssl" },
      { name: "bash", version: "5.1.8-6.el9_1", format: "rpm", arch: "aarch64" },
    ]);
  });
});

describe("the tar reader", () => {
  // 112 characters: GNU and PAX carry it whole, ustar splits it into prefix and name
  const longName = `var/lib/dpkg/status.d/${"x".repeat(90)}`;

  async function tarOf(format: string, compress?: "gzip" | "zstd"): Promise<string> {
    const dir = join(work, `t-${format}-${compress ?? "plain"}`);
    mkdirSync(join(dir, "var/lib/dpkg/status.d"), { recursive: true });
    writeFileSync(join(dir, longName), "Package: long\nVersion: 9\n");
    const out = join(work, `t-${format}.tar`);
    await runOk(["tar", "-C", dir, `--format=${format}`, "-cf", out, "var"]);
    if (!compress) return out;
    await runOk([compress, "-f", "-q", out]);
    return `${out}.${compress === "gzip" ? "gz" : "zst"}`;
  }

  for (const [format, compress] of [["gnu", undefined], ["pax", undefined], ["ustar", "gzip"], ["gnu", "zstd"]] as const) {
    test(`${format} names over 100 characters${compress ? `, ${compress}` : ""}`, async () => {
      const file = await tarOf(format, compress);
      const inv = await inventoryOf([async () => Bun.file(file).stream() as ReadableStream<Uint8Array>]);
      expect(inv.packages.map((p) => p.name)).toEqual(["long"]);
    });
  }

  test("a layer that is not a tar archive is refused with a clear error", async () => {
    const junk = new Blob([new Uint8Array(4096).fill(7)]).stream() as ReadableStream<Uint8Array>;
    await expect(inventoryOf([async () => junk])).rejects.toThrow(/not a tar archive/);
  });

  test("a kept file over its bound is refused, not read into memory", async () => {
    const file = await tarOf("gnu");
    const err = await readTar(Bun.file(file).stream() as ReadableStream<Uint8Array>, (e) => (e.type === "file" ? 4 : false), () => {}).catch((e) => e);
    expect(err).toBeInstanceOf(TarError);
    expect(String(err)).toContain("more than the 4 the scanner reads");
  });
});
