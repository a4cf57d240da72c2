/**
 * The vulnerability database as an OCI artifact: a manifest pushed to the configured
 * `[cve] db_repository` (as `oras push` would, here over the distribution API) is imported
 * in the background from its layer (a tar.zst as Grype publishes it); a refused artifact
 * leaves the database in service alone.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { makeTemp, runOk, sha256, waitFor } from "../helpers/clients";
import { ADVISORIES } from "./advisories";
import { writeGrypeV6 } from "./grypedb";

setDefaultTimeout(60_000);

let work: string;
let daemon: Daemon;

beforeAll(async () => {
  work = makeTemp("berth-cve-artifact-");
  daemon = await startDaemon({ extra: `[cve]\nenabled = true\ndb_repository = "security/grype-db"\n[scheduler]\njitter_ms = 0\n` });
});
afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function putBlob(repo: string, bytes: Uint8Array): Promise<{ digest: string; size: number }> {
  const digest = sha256(bytes);
  const start = await fetch(`${daemon.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  expect(start.status).toBe(202);
  const location = new URL(start.headers.get("location")!, daemon.url);
  location.searchParams.set("digest", digest);
  const done = await fetch(location, { method: "PUT", body: bytes, headers: { "Content-Type": "application/octet-stream" } });
  expect(done.status).toBe(201);
  return { digest, size: bytes.byteLength };
}

async function pushArtifact(tag: string, layer: Uint8Array, title: string): Promise<void> {
  const repo = "security/grype-db";
  const config = await putBlob(repo, new TextEncoder().encode("{}"));
  const l = await putBlob(repo, layer);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    artifactType: "application/vnd.berth.grype.db",
    config: { mediaType: "application/vnd.oci.empty.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.berth.grype.db.layer.v1+zstd", ...l, annotations: { "org.opencontainers.image.title": title } }],
  });
  const res = await fetch(`${daemon.url}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: manifest, headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
  expect(res.status).toBe(201);
}

const status = async () => (await (await fetch(`${daemon.url}/api/v1/cve/db`)).json()) as { present: boolean; built?: string; checksum?: string };

test("a database pushed as an artifact is imported; a refused one keeps it", async () => {
  const dir = join(work, "db");
  mkdirSync(dir, { recursive: true });
  writeGrypeV6(join(dir, "vulnerability.db"), ADVISORIES, "2026-11-28T00:00:00Z");
  writeFileSync(join(dir, "import.json"), JSON.stringify({ digest: `xxh64:${Bun.hash.xxHash64(readFileSync(join(dir, "vulnerability.db"))).toString(16).padStart(16, "0")}` }));
  await runOk(["tar", "-C", dir, "--zstd", "-cf", join(work, "db.tar.zst"), "vulnerability.db", "import.json"]);
  await pushArtifact("v6", new Uint8Array(readFileSync(join(work, "db.tar.zst"))), "vulnerability-db_v6.0.2.tar.zst");
  await waitFor("the artifact imported", async () => (await status()).present, 30_000);
  expect(await status()).toMatchObject({ present: true, built: "2026-11-28T00:00:00.000Z", checksum: "verified" });

  await pushArtifact("broken", new Uint8Array(4096).fill(1), "junk.tar.zst");
  await waitFor("the refusal logged", () => daemon.logs().includes("a vulnerability database artifact was refused"), 30_000);
  expect(await status()).toMatchObject({ present: true, built: "2026-11-28T00:00:00.000Z" });
});
