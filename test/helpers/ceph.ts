/**
 * A real, minimal Ceph cluster for the S3 tests, built from Debian's packages (`scripts/setup
 * --test-peers`): cephx on, one monitor, one manager (with an empty module directory, so it
 * loads no Python modules), one OSD on memstore (pool size 1, a raised `memstore device bytes`)
 * and radosgw on `beast endpoint=127.0.0.1:PORT`, everything under one temp directory with its
 * own ceph.conf, no system config and no systemd. All keys are made offline with
 * ceph-authtool into one keyring the monitor imports at mkfs, so the only CLI call on the way
 * up is `ceph osd new`; an S3 user is then made with radosgw-admin.
 *
 * Each daemon is started through `setpriv --pdeathsig SIGTERM`, so should this process die
 * (even by SIGKILL) the kernel stops its daemons and a test run never leaves a cluster behind.
 * Only PIDs started here are signalled.
 *
 * `s3Peer()` is what tests use: when BERTH_S3_ENDPOINT, BERTH_S3_ACCESS_KEY and
 * BERTH_S3_SECRET_KEY (and optionally BERTH_S3_REGION) are set it answers that endpoint and
 * starts nothing; otherwise it starts one cluster per test process, shared by every test file
 * (the start-up is paid once) and stopped when the process exits. `startCephCluster()` starts
 * a private one that `await using` tears down completely. A cluster that cannot start throws
 * with the tail of every daemon's log, so the test fails and says why.
 */
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { S3Client } from "../../daemon/storage/s3/client";

/** Where and how to reach an S3 endpoint. */
export interface S3Peer {
  /** http://127.0.0.1:PORT (path-style addressing). */
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
  /** True when this is the helper's own Ceph cluster (RGW 16), false for a BERTH_S3_ENDPOINT. */
  readonly ceph: boolean;
}

/** A running cluster; disposing it stops every daemon and removes its directory. */
export interface CephCluster extends S3Peer, AsyncDisposable {
  /** The cluster's directory (ceph.conf, keyring, daemon data and logs). */
  readonly dir: string;
  /** Milliseconds from an empty directory to S3 answering with the user made. */
  readonly startMs: number;
  /** PIDs of the daemons. */
  pids(): Record<string, number>;
  /** The last `bytes` of every daemon's log, headed by its name. */
  logTail(bytes?: number): string;
  /** Stops every daemon (SIGTERM, SIGKILL after 10 s) and waits; the directory goes too. */
  stop(): Promise<void>;
}

const DAEMONS = ["mon.a", "mgr.x", "osd.0", "client.rgw.gw"] as const;

/** A port that was free a moment ago. */
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

async function run(cmd: string[], what: string): Promise<string> {
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${what} failed (exit ${code}): ${err.trim() || out.trim()}`);
  return out;
}

function conf(dir: string, monPort: number, rgwPort: number, fsid: string, deviceBytes: number): string {
  return `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
public addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = ${dir}/keyring
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
pid file = ${dir}/run/$name.pid
log file = ${dir}/log/$name.log
log to stderr = false
err to stderr = false
mon cluster log file = ${dir}/log/cluster.log
crash dir = ${dir}/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
paxos propose interval = 0.01
paxos min wait = 0.001
auth allow insecure global id reclaim = false
mon data avail warn = 1
mon data avail crit = 0
mgr module path = ${dir}/mgr-modules
mgr initial modules =
[mon]
mon data = ${dir}/mon.$id
[mgr]
mgr data = ${dir}/mgr.$id
[osd]
osd data = ${dir}/osd.$id
osd objectstore = memstore
memstore device bytes = ${deviceBytes}
osd op num shards = 1
osd op num threads per shard = 2
[client.rgw.gw]
# without tcp_nodelay every response with a body waits ~40 ms (Nagle against the client's delayed ACK)
rgw frontends = beast endpoint=127.0.0.1:${rgwPort} tcp_nodelay=1
rgw data = ${dir}/rgw
rgw thread pool size = 32
rgw dynamic resharding = false
rgw enable usage log = false
`;
}

/** sh script: on SIGTERM wait up to 5 s for the daemons listed in "$1"/pids, SIGKILL the rest, remove "$1". */
const JANITOR = `d="$1"
cleanup() {
  kill "$s" 2>/dev/null
  i=0
  while [ $i -lt 50 ]; do
    live=""
    for p in $(cat "$d/pids" 2>/dev/null); do kill -0 "$p" 2>/dev/null && live=1; done
    [ -z "$live" ] && break
    i=$((i + 1)); sleep 0.1
  done
  for p in $(cat "$d/pids" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$d"
  exit 0
}
trap cleanup TERM
while :; do sleep 3600 & s=$!; wait $s; done`;

/** Options for {@link startCephCluster}. */
export interface CephOptions {
  /** The OSD's memstore capacity (default 4 GiB; only what is stored takes memory). */
  deviceBytes?: number;
  /** radosgw's port (default: one found free); for tests of the helper's failure path. */
  rgwPort?: number;
  /** More ceph.conf lines for [global] (e.g. full ratios). */
  extraConf?: string;
  /** How long to wait for S3 to answer, ms (default 120,000). */
  waitMs?: number;
}

/** Starts a private cluster; `await using` stops it and removes its directory. */
export async function startCephCluster(options: CephOptions = {}): Promise<CephCluster> {
  const t0 = performance.now();
  for (const bin of ["ceph-mon", "ceph-mgr", "ceph-osd", "radosgw", "radosgw-admin", "ceph-authtool", "monmaptool", "ceph"]) {
    if (!Bun.which(bin, { PATH: `${process.env.PATH}:/usr/sbin:/usr/bin` })) throw new Error(`Ceph test peer "${bin}" is missing: run scripts/setup --test-peers (or set BERTH_S3_ENDPOINT, BERTH_S3_ACCESS_KEY and BERTH_S3_SECRET_KEY)`);
  }
  const dir = mkdtempSync(join(tmpdir(), "berth-ceph-"));
  for (const d of ["run", "log", "crash", "mon.a", "mgr.x", "osd.0", "rgw", "mgr-modules"]) mkdirSync(join(dir, d));
  const [monPort, rgwPort] = [await freePort(), options.rgwPort ?? (await freePort())];
  const fsid = crypto.randomUUID();
  const cfg = join(dir, "ceph.conf");
  const keyring = join(dir, "keyring");
  writeFileSync(cfg, conf(dir, monPort, rgwPort, fsid, options.deviceBytes ?? 4 * 1024 ** 3).replace("[mon]\n", `${options.extraConf ?? ""}\n[mon]\n`));
  const procs: { name: string; proc: Subprocess }[] = [];
  const logTail = (bytes = 3000) =>
    DAEMONS.map((n) => {
      const f = join(dir, "log", `${n}.log`);
      const text = existsSync(f) ? readFileSync(f, "utf8") : "(no log)";
      return `--- ${n} ---\n${text.slice(-bytes)}`;
    }).join("\n");
  const stop = async (keep = false) => {
    janitor.kill(keep ? "SIGKILL" : "SIGTERM");
    const all = procs.splice(0);
    for (const { proc } of all) if (proc.exitCode === null) proc.kill("SIGTERM");
    await Promise.all(
      [...all, { proc: janitor }].map(async ({ proc }) => {
        const killer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
        await proc.exited;
        clearTimeout(killer);
      }),
    );
  };
  const fail = async (e: unknown): Promise<never> => {
    const msg = `Ceph cluster did not start: ${(e as Error).message}\n${logTail()}`;
    const keep = Boolean(process.env.BERTH_CEPH_KEEP);
    await stop(keep);
    if (!keep) rmSync(dir, { recursive: true, force: true });
    throw new Error(msg);
  };
  // The janitor outlives this process: when it dies (or on dispose) the janitor gets SIGTERM,
  // waits (bounded) for the daemons listed in pids to exit, SIGKILLs the rest (radosgw may
  // hang on SIGTERM once the monitor is gone) and removes the cluster's directory.
  const janitor = Bun.spawn(["setpriv", "--pdeathsig", "SIGTERM", "--", "sh", "-c", JANITOR, "janitor", dir], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  // setpriv makes the kernel SIGTERM the daemon should this process die without stopping it.
  const spawn = (name: string, cmd: string[]) => {
    const proc = Bun.spawn(["setpriv", "--pdeathsig", "SIGTERM", "--", ...cmd], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    procs.push({ name, proc });
    appendFileSync(join(dir, "pids"), `${proc.pid}\n`);
  };
  try {
    const tool = (args: string[]) => run(["ceph-authtool", keyring, ...args], "ceph-authtool");
    await tool(["--create-keyring", "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"]);
    await tool(["--gen-key", "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mgr", "allow *", "--cap", "mds", "allow *"]);
    await tool(["--gen-key", "-n", "mgr.x", "--cap", "mon", "allow profile mgr", "--cap", "osd", "allow *", "--cap", "mds", "allow *"]);
    await tool(["--gen-key", "-n", "osd.0", "--cap", "mon", "allow profile osd", "--cap", "mgr", "allow profile osd", "--cap", "osd", "allow *"]);
    await tool(["--gen-key", "-n", "client.rgw.gw", "--cap", "mon", "allow rw", "--cap", "osd", "allow rwx", "--cap", "mgr", "allow rw"]);
    await run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a", `[v2:127.0.0.1:${monPort}]`, join(dir, "monmap")], "monmaptool");
    await run(["ceph-mon", "-c", cfg, "--mkfs", "-i", "a", "--monmap", join(dir, "monmap"), "--keyring", keyring], "ceph-mon --mkfs");
    spawn("mon.a", ["ceph-mon", "-f", "-c", cfg, "-i", "a"]);
    spawn("mgr.x", ["ceph-mgr", "-f", "-c", cfg, "-i", "x"]);
    const uuid = crypto.randomUUID();
    const [id] = await Promise.all([
      run(["ceph", "-c", cfg, "--connect-timeout", "30", "osd", "new", uuid], "ceph osd new"),
      run(["ceph-osd", "-c", cfg, "-i", "0", "--mkfs", "--osd-uuid", uuid], "ceph-osd --mkfs"),
    ]);
    if (id.trim() !== "0") throw new Error(`ceph osd new answered id "${id.trim()}", expected "0"`);
    spawn("osd.0", ["ceph-osd", "-f", "-c", cfg, "-i", "0"]);
    spawn("client.rgw.gw", ["radosgw", "-f", "-c", cfg, "-n", "client.rgw.gw"]);
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    for (let i = 0; ; i++) {
      const dead = await Promise.race([Promise.any(procs.map((p) => p.proc.exited.then(() => p.name))), Bun.sleep(0).then(() => "")]);
      if (dead) throw new Error(`${dead} exited`);
      // RGW answers an anonymous GET / with an empty bucket listing; anything else is not it.
      const ok = await fetch(endpoint, { signal: AbortSignal.timeout(2000) }).then(
        async (r) => r.status === 200 && (await r.text()).includes("ListAllMyBucketsResult"),
        () => false,
      );
      if (ok) break;
      if (i * 200 >= (options.waitMs ?? 120_000)) throw new Error(`radosgw did not answer on ${endpoint} within ${options.waitMs ?? 120_000} ms`);
      await Bun.sleep(200);
    }
    const accessKey = `BERTH${crypto.randomUUID().replaceAll("-", "").slice(0, 15).toUpperCase()}`;
    const secretKey = crypto.randomUUID().replaceAll("-", "") + crypto.randomUUID().replaceAll("-", "").slice(0, 8);
    await run(["radosgw-admin", "-c", cfg, "user", "create", "--uid", "berth", "--display-name", "berth tests", "--access-key", accessKey, "--secret-key", secretKey], "radosgw-admin user create");
    const startMs = Math.round(performance.now() - t0);
    return {
      dir,
      endpoint,
      accessKey,
      secretKey,
      region: "default",
      ceph: true,
      startMs,
      pids: () => Object.fromEntries(procs.map((p) => [p.name, p.proc.pid])),
      logTail,
      stop: () => stop(),
      async [Symbol.asyncDispose]() {
        await stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    return fail(e);
  }
}

/** Removes every object, unfinished upload and then the bucket itself (for runs on a BERTH_S3_ENDPOINT). */
export async function dropBucket(s3: S3Client): Promise<void> {
  for (const u of await s3.listMultipartUploads()) await s3.abortMultipart(u.key, u.uploadId);
  for (;;) {
    const page = await s3.list({ maxKeys: 1000 });
    if (page.objects.length === 0) break;
    const failed = await s3.deleteMany(page.objects.map((o) => o.key));
    if (failed.length) throw new Error(`Could not empty bucket "${s3.bucket}": ${failed[0]!.key}: ${failed[0]!.code}`);
  }
  await s3.deleteBucket();
}

let shared: Promise<CephCluster> | undefined;

/**
 * The S3 endpoint for tests: the one named by BERTH_S3_ENDPOINT / BERTH_S3_ACCESS_KEY /
 * BERTH_S3_SECRET_KEY (BERTH_S3_REGION, default "us-east-1") when set, else this process's
 * shared Ceph cluster, started on first use and stopped when the process exits.
 */
export async function s3Peer(): Promise<S3Peer> {
  const { BERTH_S3_ENDPOINT: endpoint, BERTH_S3_ACCESS_KEY: accessKey, BERTH_S3_SECRET_KEY: secretKey } = process.env;
  if (endpoint) {
    if (!accessKey || !secretKey) throw new Error("BERTH_S3_ENDPOINT is set but BERTH_S3_ACCESS_KEY or BERTH_S3_SECRET_KEY is not");
    return { endpoint, accessKey, secretKey, region: process.env.BERTH_S3_REGION ?? "us-east-1", ceph: false };
  }
  if (!shared) {
    shared = startCephCluster(); // stopped and removed by its janitor when this process exits
  }
  return shared;
}

/** Writes `peer`'s keys into a 0600 credentials file `dir/s3.credentials` (berth's key names) and returns its path. */
export function writeS3Credentials(dir: string, peer: S3Peer): string {
  const path = join(dir, "s3.credentials");
  writeFileSync(path, `access_key = ${peer.accessKey}\nsecret_key = ${peer.secretKey}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}

/**
 * The `[storage]` config text (for test/helpers/daemon.ts `storage`) of a daemon on `peer`'s
 * `bucket` under `prefix` ("" for none), with `credentials`; `more` adds `[storage.s3]` lines.
 */
export function s3StorageToml(peer: S3Peer, bucket: string, prefix: string, credentials: string, more = ""): string {
  return `backend = "s3"\n[storage.s3]\nendpoint = "${peer.endpoint}"\nbucket = "${bucket}"\n${prefix ? `prefix = "${prefix}"\n` : ""}region = "${peer.region}"\ncredentials_file = "${credentials}"\n${more}`;
}

/** Bytes of the files under a daemon's local root beside its bucket (meta.db and its journal aside: the derived index, not upload data). */
export function localBytes(dir: string): number {
  let sum = 0;
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    if (name.includes("meta.db")) continue;
    const st = statSync(join(dir, name), { throwIfNoEntry: false });
    if (st?.isFile()) sum += st.size;
  }
  return sum;
}
