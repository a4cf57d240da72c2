/**
 * Scans as background work: manifests to scan wait in a bounded set (a push, a sync, or
 * every stored manifest after the database changed), and one scheduler task at a time
 * (`cve-scan`, low priority) works through them, reading layers through the registry's blob
 * API under the IO budget (every chunk is charged as a background read). An image manifest
 * is scanned layer by layer (inventory.ts), matched (match.ts) and recorded (results.ts);
 * an index records the union of its children. Memory is one layer's stream plus the package
 * databases kept from it, whatever the image's size.
 */
import type { Logger } from "../log";
import { budgetedStream } from "../scheduler/budget";
import type { Task, TaskContext } from "../scheduler/task";
import { inventoryOf } from "./inventory";
import { match, osKeyOf, type Finding } from "./match";
import type { CveResults, ScanRecord } from "./results";
import type { VulnDbStore } from "./store";

const IMAGE_CONFIGS = new Set(["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"]);

/** What the scanner needs from the rest of berth. */
export interface ScannerDeps {
  /** The bytes of blob `digest` of `repo` (the registry's blob API). */
  openBlob(repo: string, digest: string): Promise<ReadableStream<Uint8Array>>;
  /** Every stored manifest (for a full rescan). */
  manifests(): { repo: string; digest: string }[];
  results: CveResults;
  store: VulnDbStore;
  scheduler: { add(task: Task): boolean };
  log: Logger;
  maxManifestBytes: number;
  /** Most manifests waiting; past it, the backlog becomes one full rescan. */
  maxPending: number;
  /** Told about work done, in bytes read (or their equivalent): the memory governor's cue. */
  onRead?: (bytes: number) => void;
}

interface ManifestDoc {
  mediaType?: string;
  config?: { mediaType?: string; digest?: string };
  layers?: { mediaType?: string; digest?: string; size?: number }[];
  manifests?: { mediaType?: string; digest?: string; platform?: { os?: string } }[];
}

/** The scan queue and its task. */
export class CveScanner {
  private readonly pending = new Map<string, { repo: string; digest: string }>();
  private overflow = false;
  private scheduled = false;
  /** Manifests scanned since start (for the state). */
  scans = 0;

  constructor(private readonly deps: ScannerDeps) {}

  /** Queues `repo@digest` for a scan (nothing happens before a database is imported). */
  queue(repo: string, digest: string): void {
    if (!this.deps.store.db) return;
    const key = `${repo}@${digest}`;
    if (!this.pending.has(key)) {
      if (this.pending.size >= this.deps.maxPending) this.overflow = true;
      else this.pending.set(key, { repo, digest });
    }
    this.kick();
  }

  /** Queues every stored manifest (after the database changed). */
  rescanAll(): void {
    this.overflow = true;
    this.kick();
  }

  /** Manifests waiting. */
  waiting(): number {
    return this.pending.size;
  }

  private kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.deps.scheduler.add(this.task());
  }

  private task(): Task {
    return {
      name: "cve-scan",
      priority: -1,
      run: async (ctx) => {
        this.scheduled = false;
        try {
          await this.drain(ctx);
        } finally {
          if (this.pending.size > 0 || this.overflow) this.kick();
        }
      },
    };
  }

  private async drain(ctx: TaskContext): Promise<void> {
    for (;;) {
      if (ctx.signal.aborted) return;
      if (this.pending.size === 0 && this.overflow) {
        this.overflow = false;
        for (const m of this.deps.manifests()) {
          if (this.pending.size >= this.deps.maxPending) {
            this.overflow = true;
            break;
          }
          this.pending.set(`${m.repo}@${m.digest}`, m);
        }
      }
      const next = this.pending.entries().next();
      if (next.done) return;
      const [key, { repo, digest }] = next.value;
      this.pending.delete(key);
      ctx.progress(`${repo}@${digest} (${this.pending.size} waiting)`);
      try {
        await this.scan(repo, digest, ctx);
      } catch (err) {
        if (ctx.signal.aborted) return;
        this.deps.log.warn("vulnerability scan failed", { repo, digest, error: (err as Error).message });
      }
    }
  }

  private async manifest(repo: string, digest: string): Promise<ManifestDoc | undefined> {
    const stream = await this.deps.openBlob(repo, digest);
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > this.deps.maxManifestBytes) throw new Error(`the manifest is larger than ${this.deps.maxManifestBytes} bytes`);
      chunks.push(chunk);
    }
    try {
      return JSON.parse(new TextDecoder().decode(Buffer.concat(chunks))) as ManifestDoc;
    } catch {
      return undefined;
    }
  }

  /** Scans `repo@digest` now and records the result; returns what was recorded (undefined: not an image). */
  async scan(repo: string, digest: string, ctx: Pick<TaskContext, "io" | "signal">): Promise<ScanRecord | undefined> {
    const db = this.deps.store.db;
    if (!db) return undefined;
    const doc = await this.manifest(repo, digest);
    if (!doc) return undefined;
    let record: ScanRecord | undefined;
    if (Array.isArray(doc.manifests)) {
      const findings = new Map<string, Finding>();
      const oses = new Set<string>();
      let packages = 0;
      let any = false;
      for (const child of doc.manifests) {
        if (!child.digest || child.platform?.os === "unknown") continue; // attestation entries
        let r: ScanRecord | undefined;
        const prior = this.deps.results.summary(repo, child.digest);
        if (prior && prior.dbBuilt === db.info.built && !prior.error) {
          r = { os: prior.os ?? undefined, packages: prior.packages, dbBuilt: prior.dbBuilt ?? undefined, findings: this.deps.results.findings(repo, child.digest) };
        } else {
          r = await this.scan(repo, child.digest, ctx).catch((err) => ({ os: undefined, packages: 0, dbBuilt: db.info.built, error: (err as Error).message, findings: [] }));
        }
        if (!r) continue;
        any = true;
        if (r.os) oses.add(r.os);
        packages += r.packages;
        for (const f of r.findings) findings.set(`${f.id}\0${f.package}`, f);
      }
      if (!any) return undefined;
      record = { os: [...oses].join(", ") || undefined, packages, dbBuilt: db.info.built, findings: [...findings.values()] };
    } else {
      if (!doc.config?.mediaType || !IMAGE_CONFIGS.has(doc.config.mediaType)) return undefined; // an artifact, not an image
      const layers = (doc.layers ?? []).filter((l) => l.digest && /tar/.test(l.mediaType ?? "") && !/nondistributable|foreign/.test(l.mediaType ?? ""));
      try {
        const inventory = await inventoryOf(layers.map((l) => async () => budgetedStream(await this.deps.openBlob(repo, l.digest!), ctx.io, "read", ctx.signal)), ctx.signal);
        const os = inventory.os;
        record = {
          os: os ? `${os.id} ${os.versionId}`.trim() : undefined,
          packages: inventory.packages.length,
          dbBuilt: db.info.built,
          // each package's lookups leave garbage (rows, parsed JSON): counted like 256 KiB read, so the
          // memory governor looks at the resident set every few dozen packages
          findings: match(db, inventory, () => this.deps.onRead?.(256 << 10)),
        };
        const problems = [...inventory.errors];
        if (os && !osKeyOf(os)) problems.push(`the OS "${os.id} ${os.versionId}" has no data berth can match`);
        if (problems.length) record.error = problems.join("; ");
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        record = { os: undefined, packages: 0, dbBuilt: db.info.built, error: (err as Error).message, findings: [] };
      }
    }
    this.deps.results.record(repo, digest, record);
    this.scans++;
    return record;
  }
}
