/**
 * A disk filled to the last byte, with the real daemon on a small tmpfs (mounted here; the
 * test fails, never skips, when it cannot mount): pushes get 507, a DELETE works (202), GC
 * frees the deleted image's blobs at once (the default one-hour grace does not hold back
 * what a deleted manifest referenced), and a restart on the full disk serves pulls, with
 * meta.db as it was (opened without a write) and without it (rebuilt in memory, degraded).
 */
import { expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";
import { startDaemon } from "../helpers/daemon";
import { sha256 as sha, uploadBlob } from "../helpers/clients";


/** A tmpfs of `size` mounted on a fresh directory; unmounted and removed on dispose. */
function mountTmpfs(size: string): { path: string; [Symbol.dispose](): void } {
  const path = mkdtempSync(join(tmpdir(), "berth-fulldisk-"));
  const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${size}`, "tmpfs", path]);
  if (r.exitCode !== 0) {
    rmSync(path, { recursive: true, force: true });
    throw new Error(`this test needs a tmpfs (run as root): mount failed: ${r.stderr.toString()}`);
  }
  return {
    path,
    [Symbol.dispose]() {
      Bun.spawnSync(["umount", "-l", path]);
      rmSync(path, { recursive: true, force: true });
    },
  };
}

const free = (path: string) => {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
};

/** Appends to `file` until not one more byte fits on its file system. */
function fillToTheLastByte(file: string): void {
  const fd = openSync(file, "a");
  try {
    for (const size of [1 << 20, 64 << 10, 4096, 1]) {
      const chunk = new Uint8Array(size);
      for (;;) {
        try {
          if (writeSync(fd, chunk) < size) break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  expect(free(file)).toBe(0);
}

function manifestOf(config: Uint8Array, layer: Uint8Array): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.byteLength },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha(layer), size: layer.byteLength }],
  });
}

async function pushImage(base: string, repo: string, tag: string, layerBytes: number) {
  const layer = randomBytes(layerBytes);
  const config = new TextEncoder().encode(JSON.stringify({ architecture: "amd64", os: "linux", tag }));
  for (const b of [layer, config]) expect((await uploadBlob(base, repo, b, "session")).status).toBe(201);
  const manifest = manifestOf(config, layer);
  const put = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: manifest, headers: { "Content-Type": OCI_MANIFEST } });
  expect(put.status).toBe(201);
  return { layer, config, manifest, digest: sha(manifest) };
}

async function expectPull(base: string, repo: string, tag: string, image: { layer: Uint8Array; digest: string }) {
  const m = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { headers: { Accept: OCI_MANIFEST } });
  expect(m.status).toBe(200);
  expect(sha(new Uint8Array(await m.arrayBuffer()))).toBe(image.digest);
  const b = await fetch(`${base}/v2/${repo}/blobs/${sha(image.layer)}`);
  expect(b.status).toBe(200);
  expect(sha(new Uint8Array(await b.arrayBuffer()))).toBe(sha(image.layer));
}

test("a disk full to the last byte: 507 for pushes, DELETE and GC free space, a restart serves pulls", async () => {
  using fs = mountTmpfs("8m");
  const root = join(fs.path, "root");
  const filler = join(fs.path, "filler");
  mkdirSync(root);
  let kept: Awaited<ReturnType<typeof pushImage>>;
  let gone: Awaited<ReturnType<typeof pushImage>>;
  {
    await using d = await startDaemon({ root });
    kept = await pushImage(d.url, "apps/kept", "1", 1024 * 1024);
    gone = await pushImage(d.url, "apps/gone", "1", 2 * 1024 * 1024);
    fillToTheLastByte(filler);

    // pushes are refused with 507, a blob (admitted against the reserve) and a manifest (a raw ENOSPC)
    const blob = await uploadBlob(d.url, "apps/new", randomBytes(64 * 1024), "session");
    expect(blob.status).toBe(507);
    expect(((await blob.json()) as { errors: { code: string }[] }).errors[0]!.code).toBeString();
    const other = manifestOf(kept.config, kept.layer).replace('"schemaVersion":2', '"schemaVersion":2,"annotations":{"x":"y"}');
    const put = await fetch(`${d.url}/v2/apps/kept/manifests/2`, { method: "PUT", body: other, headers: { "Content-Type": OCI_MANIFEST } });
    expect(put.status).toBe(507);
    await expectPull(d.url, "apps/kept", "1", kept);

    // a tag, then the manifest by digest: both 202 on the full disk
    expect((await fetch(`${d.url}/v2/apps/gone/manifests/1`, { method: "DELETE" })).status).toBe(202);
    expect((await fetch(`${d.url}/v2/apps/gone/manifests/${gone.digest}`, { method: "DELETE" })).status).toBe(202);

    const before = free(root);
    const gc = await fetch(`${d.url}/api/v1/storage/gc`, { method: "POST" });
    expect(gc.status).toBe(200);
    const report = (await gc.json()) as { bytesFreed: number };
    expect(report.bytesFreed).toBeGreaterThanOrEqual(gone.layer.byteLength);
    expect(free(root) - before).toBeGreaterThanOrEqual(gone.layer.byteLength);
    expect((await fetch(`${d.url}/v2/apps/gone/blobs/${sha(gone.layer)}`)).status).toBe(404);
    await expectPull(d.url, "apps/kept", "1", kept);
    expect(await d.stop()).toBe(0);
  }

  // full again, then a restart: meta.db is current and is opened without a write
  fillToTheLastByte(filler);
  {
    await using d = await startDaemon({ root });
    expect(d.logs()).not.toContain("kept in memory");
    // the root lock needed no space: its PID was written over the old one in place
    expect(readFileSync(join(root, ".berth", "lock"), "utf8").trim()).toBe(String(d.proc.pid));
    await expectPull(d.url, "apps/kept", "1", kept);
    expect((await fetch(`${d.url}/v2/_catalog`)).status).toBe(200);
    expect((await uploadBlob(d.url, "apps/new", randomBytes(64 * 1024), "session")).status).toBe(507);
    expect(await d.stop()).toBe(0);
  }

  // without meta.db, on a full disk: the index is rebuilt in memory, reads are served
  for (const f of ["meta.db", "meta.db-wal", "meta.db-shm"]) rmSync(join(root, ".berth", f), { force: true });
  fillToTheLastByte(filler);
  {
    await using d = await startDaemon({ root });
    expect(d.logs()).toContain("kept in memory");
    await expectPull(d.url, "apps/kept", "1", kept);
    expect((await fetch(`${d.url}/v2/apps/kept/tags/list`)).status).toBe(200);
    expect((await uploadBlob(d.url, "apps/new", randomBytes(64 * 1024), "session")).status).toBe(507);
  }
  expect(existsSync(join(root, ".berth", "lock"))).toBe(true);
}, 90_000);
