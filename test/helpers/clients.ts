/**
 * Real OCI clients for the end-to-end tests: a command runner with a timeout, skopeo and
 * podman run through iso.sh (private /run and /var/lib/containers, so no global blob-info
 * cache makes request patterns depend on history), containerd started on a temp config and
 * stopped by PID, fixture building, and small helpers for reading OCI layouts and talking
 * to the registry over HTTP. See /work/notes/clients.md for how the tools were measured.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

const HELPERS = import.meta.dir;
const ISO = resolve(HELPERS, "iso.sh");
const FIXTURES = resolve(HELPERS, "fixtures.sh");

// ---- running commands ---------------------------------------------------------------

export interface RunResult {
  readonly cmd: readonly string[];
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export interface RunOptions {
  /** Kill the command (SIGKILL) after this many ms; default 60 s. */
  timeoutMs?: number;
  env?: Record<string, string | undefined>;
  cwd?: string;
}

/** Runs a command to completion and captures its output; never throws on a non-zero exit. */
export async function run(cmd: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const proc = Bun.spawn([...cmd], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: options.env ?? { ...process.env },
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, options.timeoutMs ?? 60_000);
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    return { cmd, code, stdout, stderr, timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/** Describes a finished command for assertion messages. */
export function describeRun(r: RunResult): string {
  return `$ ${r.cmd.join(" ")}\nexit ${r.code}${r.timedOut ? " (timed out)" : ""}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** Like {@link run}, but throws (with the command's output) unless it exits 0. */
export async function runOk(cmd: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, options);
  if (r.code !== 0) throw new Error(`command failed\n${describeRun(r)}`);
  return r;
}

/** Polls `check` until it returns true, at most `timeoutMs`; throws on timeout. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(intervalMs);
  }
}

// ---- temp dirs and the /var/lib/containers mountpoint -----------------------------------

/** Creates a temp dir; the caller removes it. */
export function makeTemp(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

const VARLIB = "/var/lib/containers";
/** Whether /var/lib/containers existed before this process first ran iso.sh. */
let varLibPreexisted: boolean | undefined;
let activeSandboxes = 0;

function sandboxOpened(): void {
  if (varLibPreexisted === undefined) varLibPreexisted = existsSync(VARLIB);
  activeSandboxes++;
}

function sandboxClosed(): void {
  activeSandboxes--;
  if (activeSandboxes > 0 || varLibPreexisted !== false) return;
  // iso.sh created the mountpoint; remove it if it is still the empty dir it left.
  try {
    if (existsSync(VARLIB) && readdirSync(VARLIB).length === 0) rmdirSync(VARLIB);
  } catch {
    // someone else started using it meanwhile: leave it
  }
  varLibPreexisted = undefined;
}

const POLICY = '{"default":[{"type":"insecureAcceptAnything"}]}\n';

// ---- skopeo ---------------------------------------------------------------------------

/** skopeo in its own iso.sh sandbox, with a permissive signature policy. */
export class Skopeo implements Disposable {
  readonly dir: string;
  private readonly policy: string;
  private readonly binary: string;
  private disposed = false;

  /** `policy`: the signature policy (policy.json text); default: accept anything. `binary`: which skopeo (default: the one on PATH). */
  constructor(policy: string = POLICY, binary = "skopeo") {
    this.binary = binary;
    this.dir = makeTemp("berth-skopeo-");
    this.policy = join(this.dir, "policy.json");
    writeFileSync(this.policy, policy);
    sandboxOpened();
  }

  /** Runs `skopeo --policy P <args>` isolated. */
  run(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return run([ISO, join(this.dir, "sandbox"), this.binary, "--policy", this.policy, ...args], {
      ...options,
      env: { ...process.env, TMPDIR: this.tmp(), ...options.env },
    });
  }

  /** Like {@link run}, but throws unless skopeo exits 0. */
  async ok(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const r = await this.run(args, options);
    if (r.code !== 0) throw new Error(`skopeo failed\n${describeRun(r)}`);
    return r;
  }

  /** `skopeo inspect --raw` of a docker:// reference, as bytes. */
  async rawManifest(ref: string): Promise<Uint8Array<ArrayBuffer>> {
    // stdout is text; raw manifests are JSON (UTF-8), so a round trip through a string is exact
    const r = await this.ok(["inspect", "--raw", "--tls-verify=false", `docker://${ref}`]);
    return new TextEncoder().encode(r.stdout);
  }

  private tmp(): string {
    const t = join(this.dir, "tmp");
    mkdirSync(t, { recursive: true });
    return t;
  }

  [Symbol.dispose](): void {
    if (this.disposed) return;
    this.disposed = true;
    rmSync(this.dir, { recursive: true, force: true });
    sandboxClosed();
  }
}

// ---- podman ---------------------------------------------------------------------------

/** podman (root, vfs, cgroupfs, no events) with all state in a temp dir, run via iso.sh. */
export class Podman implements Disposable {
  readonly dir: string;
  private readonly env: Record<string, string>;
  private readonly flags: string[];
  private readonly binary: string;
  private disposed = false;

  /** `registries` are host:port names podman should treat as plain-HTTP registries; `binary`: which podman (default: the one on PATH). */
  constructor(registries: readonly string[], binary = "podman") {
    this.binary = binary;
    this.dir = makeTemp("berth-podman-");
    const d = this.dir;
    for (const sub of ["root", "run", "tmp", "net"]) mkdirSync(join(d, sub), { recursive: true });
    writeFileSync(join(d, "storage.conf"), `[storage]\ndriver = "vfs"\nrunroot = "${d}/run"\ngraphroot = "${d}/root"\n`);
    writeFileSync(
      join(d, "containers.conf"),
      `[containers]\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\ntmp_dir = "${d}/tmp"\n` +
        `volume_path = "${d}/root/volumes"\nstatic_dir = "${d}/root/libpod"\n[network]\nnetwork_config_dir = "${d}/net"\n`,
    );
    writeFileSync(
      join(d, "registries.conf"),
      `unqualified-search-registries = []\nshort-name-mode = "disabled"\n` +
        registries.map((r) => `[[registry]]\nlocation = "${r}"\ninsecure = true\n`).join(""),
    );
    writeFileSync(join(d, "policy.json"), POLICY);
    this.env = {
      CONTAINERS_STORAGE_CONF: join(d, "storage.conf"),
      CONTAINERS_CONF: join(d, "containers.conf"),
      CONTAINERS_REGISTRIES_CONF: join(d, "registries.conf"),
      TMPDIR: join(d, "tmp"),
    };
    this.flags = [
      "--root", join(d, "root"),
      "--runroot", join(d, "run"),
      "--storage-driver", "vfs",
      "--cgroup-manager", "cgroupfs",
      "--events-backend", "none",
      "--tmpdir", join(d, "tmp"),
    ];
    sandboxOpened();
  }

  /** Path of the permissive signature policy (for `--signature-policy`). */
  get policy(): string {
    return join(this.dir, "policy.json");
  }

  run(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return run([ISO, join(this.dir, "sandbox"), this.binary, ...this.flags, ...args], {
      ...options,
      env: { ...process.env, ...this.env, ...options.env },
    });
  }

  async ok(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const r = await this.run(args, options);
    if (r.code !== 0) throw new Error(`podman failed\n${describeRun(r)}`);
    return r;
  }

  [Symbol.dispose](): void {
    if (this.disposed) return;
    this.disposed = true;
    rmSync(this.dir, { recursive: true, force: true });
    sandboxClosed();
  }
}

// ---- containerd -----------------------------------------------------------------------

/** A containerd started by the test, on a temp root/state/socket. */
export interface Containerd extends AsyncDisposable {
  readonly dir: string;
  readonly socket: string;
  readonly proc: Subprocess;
  /** Runs `ctr -a SOCKET <args>`. */
  ctr(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Like ctr, but throws unless it exits 0. */
  ctrOk(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  logs(): string;
}

/** Starts containerd with a config that keeps everything in a temp dir; resolves once ctr can talk to it. */
export async function startContainerd(): Promise<Containerd> {
  const dir = makeTemp("berth-ctd-");
  const socket = join(dir, "containerd.sock");
  const config = join(dir, "config.toml");
  writeFileSync(
    config,
    [
      "version = 2",
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]',
      "[grpc]",
      `  address = "${socket}"`,
      "[ttrpc]",
      `  address = "${socket}.ttrpc"`,
      "[debug]",
      '  address = ""',
      "[metrics]",
      '  address = ""',
      "",
    ].join("\n"),
  );
  const proc = Bun.spawn(["containerd", "--config", config], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  let logs = "";
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) logs += decoder.decode(chunk, { stream: true });
  })();
  const ctr = (args: readonly string[], options: RunOptions = {}) => run(["ctr", "-a", socket, ...args], options);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    try {
      await proc.exited;
    } finally {
      clearTimeout(timer);
    }
  };
  const handle: Containerd = {
    dir,
    socket,
    proc,
    ctr,
    async ctrOk(args, options) {
      const r = await ctr(args, options);
      if (r.code !== 0) throw new Error(`ctr failed\n${describeRun(r)}`);
      return r;
    },
    logs: () => logs,
    async [Symbol.asyncDispose]() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(
      "containerd to answer on its socket",
      async () => {
        if (proc.exitCode !== null) throw new Error(`containerd exited with ${proc.exitCode}:\n${logs}`);
        return existsSync(socket) && (await ctr(["version"], { timeoutMs: 5_000 })).code === 0;
      },
      15_000,
    );
  } catch (err) {
    await handle[Symbol.asyncDispose]();
    throw err;
  }
  return handle;
}

// ---- fixtures -------------------------------------------------------------------------

export interface Fixtures {
  readonly dir: string;
  /** umoci-built single-arch OCI layout, tag v1. */
  readonly single: string;
  /** Hand-written linux/amd64 + linux/arm64 OCI layout, tag v1. */
  readonly multi: string;
  /** A tiny root filesystem tarball. */
  readonly rootfs: string;
}

/** Builds the fixture images into `dir` with fixtures.sh (local only, deterministic). */
export async function buildFixtures(dir: string): Promise<Fixtures> {
  await runOk(["bash", FIXTURES, dir], { timeoutMs: 30_000 });
  return { dir, single: join(dir, "single"), multi: join(dir, "multi"), rootfs: join(dir, "rootfs.tar") };
}

// ---- digests and OCI layouts ----------------------------------------------------------

export function sha256(bytes: Uint8Array | string): string {
  return "sha256:" + new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface ManifestDoc {
  schemaVersion: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

/** `digest -> sha256 of the file's content` for every blob of an OCI layout (or dir with blobs/). */
export function layoutBlobs(layout: string): Map<string, string> {
  const out = new Map<string, string>();
  const base = join(layout, "blobs");
  for (const alg of readdirSync(base)) {
    for (const hex of readdirSync(join(base, alg))) {
      out.set(`${alg}:${hex}`, sha256(readFileSync(join(base, alg, hex))));
    }
  }
  return out;
}

/** The index.json descriptor tagged `tag` in an OCI layout. */
export function layoutTag(layout: string, tag: string): Descriptor {
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: Descriptor[] };
  const d = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  if (!d) throw new Error(`no tag ${tag} in ${layout}/index.json`);
  return d;
}

/** The raw bytes of a blob of an OCI layout. */
export function layoutBlob(layout: string, digest: string): Uint8Array<ArrayBuffer> {
  const [alg, hex] = digest.split(":");
  return new Uint8Array(readFileSync(join(layout, "blobs", alg!, hex!)));
}

export function parseManifest(bytes: Uint8Array): ManifestDoc {
  return JSON.parse(new TextDecoder().decode(bytes)) as ManifestDoc;
}

// ---- the registry over HTTP -------------------------------------------------------------

export const MANIFEST_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
] as const;

export interface FetchedManifest {
  readonly status: number;
  readonly contentType: string | null;
  readonly digestHeader: string | null;
  readonly bytes: Uint8Array<ArrayBuffer>;
}

/** GET /v2/<name>/manifests/<ref> accepting every manifest type. */
export async function getManifest(url: string, name: string, ref: string, method: "GET" | "HEAD" = "GET"): Promise<FetchedManifest> {
  const res = await fetch(`${url}/v2/${name}/manifests/${ref}`, { method, headers: { Accept: MANIFEST_TYPES.join(", ") } });
  return {
    status: res.status,
    contentType: res.headers.get("content-type"),
    digestHeader: res.headers.get("docker-content-digest"),
    bytes: new Uint8Array(await res.arrayBuffer()),
  };
}

/** GET /v2/<name>/tags/list → sorted tags (throws on a non-200). */
export async function listTags(url: string, name: string): Promise<string[]> {
  const res = await fetch(`${url}/v2/${name}/tags/list`);
  if (res.status !== 200) throw new Error(`tags/list of ${name}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { tags: string[] | null };
  return [...(body.tags ?? [])].sort();
}

/** GET /v2/_catalog → repository names (throws on a non-200). */
export async function catalog(url: string): Promise<string[]> {
  const res = await fetch(`${url}/v2/_catalog`);
  if (res.status !== 200) throw new Error(`_catalog: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { repositories: string[] }).repositories;
}

/** Status of HEAD /v2/<name>/blobs/<digest>. */
export async function headBlob(url: string, name: string, digest: string): Promise<number> {
  return (await fetch(`${url}/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status;
}

/**
 * Uploads a blob to the registry at `base`: "monolithic" is one POST with ?digest=; "session"
 * is POST, PATCH with the bytes, PUT with ?digest=. Returns the last response (the first
 * one that was not the expected status, or the final PUT), so callers can check refusals.
 */
export async function uploadBlob(base: string, repo: string, data: Uint8Array | string, flow: "monolithic" | "session" = "monolithic"): Promise<Response> {
  const digest = sha256(data);
  if (flow === "monolithic") {
    return await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: "POST", body: data, headers: { "Content-Type": "application/octet-stream" } });
  }
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  if (post.status !== 202) return post;
  const patch = await fetch(new URL(post.headers.get("location")!, base), { method: "PATCH", body: data, headers: { "Content-Type": "application/octet-stream" } });
  if (patch.status !== 202) return patch;
  const put = new URL(patch.headers.get("location")!, base);
  put.searchParams.set("digest", digest);
  return await fetch(put, { method: "PUT" });
}

/** Pushes a blob (see {@link uploadBlob}) and returns its descriptor; throws unless the registry answered 201. */
export async function pushBlobTo(base: string, repo: string, data: Uint8Array | string, flow: "monolithic" | "session" = "monolithic"): Promise<{ digest: string; size: number }> {
  const res = await uploadBlob(base, repo, data, flow);
  if (res.status !== 201) throw new Error(`push of a blob to ${base}/v2/${repo}: ${res.status} ${await res.text()}`);
  return { digest: sha256(data), size: typeof data === "string" ? Buffer.byteLength(data) : data.byteLength };
}

/** Tag -> digest as the OCI layout of `repo` under `root` lists them ({} when it has no index.json yet). */
export function localTags(root: string, repo: string): Record<string, string> {
  const path = join(root, repo, "index.json");
  if (!existsSync(path)) return {};
  const out: Record<string, string> = {};
  const index = JSON.parse(readFileSync(path, "utf8")) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  for (const m of index.manifests) {
    const tag = m.annotations?.["org.opencontainers.image.ref.name"];
    if (tag) out[tag] = m.digest;
  }
  return out;
}

/** Whether the OCI layout of `repo` under `root` holds the blob (any digest algorithm). */
export function hasBlob(root: string, repo: string, digest: string): boolean {
  const [alg, hex] = digest.split(":");
  return existsSync(join(root, repo, "blobs", alg!, hex!));
}

/** The errors of an OCI error body (`{"errors":[{code,message,detail}]}`). */
export async function errorsOf(res: Response): Promise<{ code: string; message: string; detail: string }[]> {
  return ((await res.json()) as { errors: { code: string; message: string; detail: string }[] }).errors;
}

/** The last run of a sync task, as GET /api/v1/sync shows it. */
export interface SyncLastRun {
  at: string;
  report?: Record<string, number>;
  error?: string;
}

/** GET /api/v1/sync, the parts tests read. */
export interface SyncView {
  registries: { name: string; state: string; lastError: string | null; lastRun: SyncLastRun | null; corruptBlobs: number; warmWindowSeconds?: number; warm?: { repo: string; tag: string; pulledAt: number }[] }[];
  fetches: { digest: string; written: number }[];
}

/** GET /api/v1/sync of the daemon at `url`. */
export async function syncView(url: string): Promise<SyncView> {
  return (await (await fetch(`${url}/api/v1/sync`)).json()) as SyncView;
}
