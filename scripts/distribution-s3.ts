/**
 * Debian's `docker-registry` (CNCF distribution 2.8) with its S3 storage driver, for the
 * benchmark that compares berth-on-S3 with distribution-on-S3 in the same run and on the same
 * cluster. `startDistributionS3(peer)` writes a config (path-style requests to the peer's
 * endpoint with SigV4, a bucket of its own created first since distribution does not create
 * one, redirects off so blob bytes flow through the registry as berth's do, access log off),
 * starts it on 127.0.0.1 at a free port, waits for /v2/ to answer and stops it by PID on
 * dispose. AWS_* variables of this process are not passed on.
 *
 * Run directly (`bun scripts/distribution-s3.ts`) it starts the test helper's Ceph cluster (or
 * uses BERTH_S3_ENDPOINT and its keys), starts distribution on it and prints the URL until
 * interrupted, for trying things by hand with curl or skopeo.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { S3Client } from "../daemon/storage/s3/client";
import type { S3Peer } from "../test/helpers/ceph";

/** A running distribution on S3. */
export interface DistributionS3 extends AsyncDisposable {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** 127.0.0.1:PORT, as clients name the registry. */
  readonly host: string;
  readonly pid: number;
  readonly bucket: string;
  /** Everything it logged so far. */
  logs(): string;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Starts docker-registry on `peer` in `bucket` (created if missing). */
export async function startDistributionS3(peer: S3Peer, bucket = `distribution-${crypto.randomUUID().slice(0, 8)}`): Promise<DistributionS3> {
  await new S3Client({ ...peer, bucket }).createBucket();
  const dir = mkdtempSync(join(tmpdir(), "berth-distribution-s3-"));
  const port = await freePort();
  const config = join(dir, "config.yml");
  writeFileSync(
    config,
    `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  s3:
    accesskey: ${peer.accessKey}
    secretkey: ${peer.secretKey}
    region: ${peer.region}
    regionendpoint: ${peer.endpoint}
    bucket: ${bucket}
    secure: ${peer.endpoint.startsWith("https:")}
    v4auth: true
    chunksize: 8388608
    rootdirectory: /registry
  delete:
    enabled: true
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
health:
  storagedriver:
    enabled: false
`,
  );
  // The AWS SDK inside reads AWS_* variables; an inherited AWS_CA_BUNDLE alone makes it refuse
  // to start ("unsupported transport"), and the keys must come from the config, not the env.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("AWS_")));
  const proc = Bun.spawn(["docker-registry", "serve", config], { stdin: "ignore", stdout: "ignore", stderr: "pipe", env });
  let logs = "";
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) logs += decoder.decode(chunk, { stream: true });
  })();
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null) proc.kill("SIGTERM");
    const killer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await proc.exited;
    clearTimeout(killer);
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) {
      await stop();
      throw new Error(`docker-registry exited with ${proc.exitCode} before answering:\n${logs.slice(-3000)}`);
    }
    const status = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status, () => 0);
    if (status === 200) break;
    if (i >= 150) {
      await stop();
      throw new Error(`docker-registry did not answer on ${url}/v2/ within 30 s (last status ${status}):\n${logs.slice(-3000)}`);
    }
    await Bun.sleep(200);
  }
  return { url, host: `127.0.0.1:${port}`, pid: proc.pid, bucket, logs: () => logs, [Symbol.asyncDispose]: stop };
}

if (import.meta.main) {
  const { s3Peer } = await import("../test/helpers/ceph");
  const peer = await s3Peer();
  const d = await startDistributionS3(peer);
  console.log(`distribution on S3 at ${d.url} (bucket ${d.bucket} on ${peer.endpoint}); Ctrl-C stops it`);
  await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
  await d[Symbol.asyncDispose]();
}
