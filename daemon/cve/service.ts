/**
 * The vulnerability scanning extension, put together: the database store, the results
 * tables, the scanner and its hooks, the API and the metrics. main.ts loads this module
 * only when `[cve] enabled = true` (dynamic import), so a registry without scanning pays
 * nothing for it. Also the read API the search extension uses, in zot's terms:
 * `Vulnerabilities { MaxSeverity Count }` is {@link CveService.vulnSummaryOf},
 * `CVEListForImage` {@link CveService.cvesOf}, `ImageListForCVE` {@link CveService.imagesWithCve},
 * `ImageListWithCVEFixed` {@link CveService.imagesWithCveFixed}.
 */
import type { BlobFile } from "../registry/registry";
import type { Logger } from "../log";
import type { Family } from "../metrics/registry";
import type { SqlDatabase } from "../platform/sqlite";
import type { RegistryHooks } from "../registry/hooks";
import { budgetedStream } from "../scheduler/budget";
import type { Task } from "../scheduler/task";
import { type CveCaller, handleCveApi } from "./api";
import { type DbInfo, SEVERITIES } from "./grype";
import type { Finding } from "./match";
import { CveResults, type VulnSummary } from "./results";
import { CveScanner } from "./scanner";
import { VulnDbStore } from "./store";

/** `[cve]` options. */
export interface CveOptions {
  root: string;
  maxDbBytes: number;
  scanOnPush: boolean;
  maxPending: number;
  maxManifestBytes: number;
  /** Repository whose manifests carry the database as an artifact ("" = none). */
  dbRepository?: string;
}

/** What the extension needs from the rest of berth. */
export interface CveDeps {
  /** meta.db, where the results tables live. */
  db: SqlDatabase;
  /** The registry's blob API. */
  blob(repo: string, digest: string): BlobFile | Promise<BlobFile>;
  /** Every stored manifest. */
  manifests(): { repo: string; digest: string }[];
  /** The digest a tag (or digest) names in `repo`, if stored. */
  resolve(repo: string, reference: string): Promise<string | undefined>;
  scheduler: { add(task: Task): boolean };
  log: Logger;
  /** Told the size of every chunk the scanner reads (the memory governor collects when the resident set grows). */
  onRead?: (bytes: number) => void;
}

/** `stream`, telling `onRead` the size of each chunk as it passes. */
function tapped(stream: ReadableStream<Uint8Array>, onRead: ((bytes: number) => void) | undefined): ReadableStream<Uint8Array> {
  if (!onRead) return stream;
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) return controller.close();
      onRead(value.byteLength);
      controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/** Opens a blob the registry's blob API returned: a local file, or a stream. */
export async function openBlobOf(blob: BlobFile | Promise<BlobFile>): Promise<ReadableStream<Uint8Array>> {
  const body = (await blob).body();
  if (body.kind === "file") return body.file.stream() as ReadableStream<Uint8Array>;
  if (body.kind === "stream") return body.open();
  throw new Error("the blob store answered with a redirect; the scanner reads blobs it holds");
}

/** The running extension. */
export class CveService {
  readonly store: VulnDbStore;
  readonly results: CveResults;
  readonly scanner: CveScanner;

  constructor(private readonly options: CveOptions, private readonly deps: CveDeps) {
    this.store = new VulnDbStore(options.root, options.maxDbBytes);
    const problem = this.store.open();
    if (problem) deps.log.error("the imported vulnerability database cannot be used; import one again", { error: problem });
    this.results = new CveResults(deps.db);
    this.scanner = new CveScanner({
      openBlob: async (repo, digest) => tapped(await openBlobOf(deps.blob(repo, digest)), deps.onRead),
      manifests: deps.manifests,
      results: this.results,
      store: this.store,
      scheduler: deps.scheduler,
      log: deps.log,
      maxManifestBytes: options.maxManifestBytes,
      maxPending: options.maxPending,
      ...(deps.onRead ? { onRead: deps.onRead } : {}),
    });
  }

  /** Registry hooks: scan on push (and on sync, whose mirrored manifests are stored the same way); forget deleted manifests. */
  readonly hooks: RegistryHooks = {
    pushed: (repo, digest) => {
      if (this.options.dbRepository && repo === this.options.dbRepository) this.queueArtifactImport(repo, digest);
      else if (this.options.scanOnPush) this.scanner.queue(repo, digest);
    },
    deleted: (repo, reference) => {
      if (reference.includes(":")) this.results.drop(repo, reference);
    },
  };

  /** Imports a database and queues a rescan of every stored image. */
  async importDb(source: ReadableStream<Uint8Array>): Promise<DbInfo> {
    const info = await this.store.import(source);
    this.deps.log.info("vulnerability database imported", { ...info });
    this.scanner.rescanAll();
    return info;
  }

  private lastArtifact: string | undefined;

  /**
   * Imports the database carried by manifest `digest` of the database repository, in the
   * background: the first layer the import accepts (a .db, .tar.zst or .tar.gz, as pushed
   * by e.g. `oras push`) is put in service. A manifest whose layer was imported already is
   * skipped; a refused one is logged and the database in service is kept.
   */
  private queueArtifactImport(repo: string, digest: string): void {
    this.deps.scheduler.add({
      name: "cve-db-import",
      priority: 1,
      run: async (ctx) => {
        const stream = await openBlobOf(this.deps.blob(repo, digest));
        const text = await new Response(stream).text();
        if (text.length > this.options.maxManifestBytes) throw new Error(`the manifest ${digest} is too large`);
        const doc = JSON.parse(text) as { layers?: { digest?: string; size?: number }[]; blobs?: { digest?: string; size?: number }[] };
        for (const layer of doc.layers ?? doc.blobs ?? []) {
          if (!layer.digest || layer.digest === this.lastArtifact) continue;
          try {
            await this.importDb(budgetedStream(await openBlobOf(this.deps.blob(repo, layer.digest)), ctx.io, "read", ctx.signal));
            this.lastArtifact = layer.digest;
            return;
          } catch (err) {
            this.deps.log.warn("a vulnerability database artifact was refused; the database in service is kept", { repo, digest, layer: layer.digest, error: (err as Error).message });
          }
        }
      },
    });
  }

  /** The digest `reference` names in `repo`. */
  resolve(repo: string, reference: string): Promise<string | undefined> {
    return this.deps.resolve(repo, reference);
  }

  /** Handles a request under /api/v1/cve. */
  handle(req: Request, caller: CveCaller): Promise<Response> {
    return handleCveApi(this, req, caller);
  }

  // ---- the read API for search --------------------------------------------------------

  /** zot's `Vulnerabilities { MaxSeverity Count }` of an image (undefined: not scanned). */
  vulnSummaryOf(repo: string, digest: string): VulnSummary | undefined {
    return this.results.summary(repo, digest);
  }

  /** zot's `CVEListForImage`: the findings of an image, worst first. */
  cvesOf(repo: string, digest: string): Finding[] {
    return this.results.findings(repo, digest);
  }

  /** zot's `ImageListForCVE`: images carrying `id`, among the repositories `visible` admits. */
  imagesWithCve(id: string, visible: (repo: string) => boolean = () => true): { repo: string; digest: string; findings: Finding[] }[] {
    return this.results.imagesWith(id).filter((i) => visible(i.repo));
  }

  /** zot's `ImageListWithCVEFixed`: scanned images of `repo` that do not carry `id`. */
  imagesWithCveFixed(id: string, repo: string): { repo: string; digest: string }[] {
    const carrying = new Set(this.results.imagesWith(id).filter((i) => i.repo === repo).map((i) => i.digest));
    return this.results.scanned(repo).filter((s) => !carrying.has(s.digest) && !s.error).map((s) => ({ repo: s.repo, digest: s.digest }));
  }

  /** Metrics families: findings per repository and severity, images scanned, the database's age. */
  metrics(): Family[] {
    const perRepo = new Map<string, { images: number; counts: Record<string, number> }>();
    for (const s of this.results.scanned()) {
      let e = perRepo.get(s.repo);
      if (!e) perRepo.set(s.repo, (e = { images: 0, counts: {} }));
      e.images++;
      for (const sev of SEVERITIES) e.counts[sev] = (e.counts[sev] ?? 0) + s.counts[sev];
    }
    const built = this.store.db ? Date.parse(this.store.db.info.built) / 1000 : 0;
    return [
      {
        name: "berth_cve_findings",
        help: "Vulnerabilities found in the scanned manifests of a repository, by severity (one per package and vulnerability per manifest).",
        type: "gauge",
        samples: [...perRepo].flatMap(([repository, e]) => SEVERITIES.map((severity) => ({ labels: { repository, severity }, value: e.counts[severity] ?? 0 }))),
      },
      { name: "berth_cve_images_scanned", help: "Manifests of a repository with scan results.", type: "gauge", samples: [...perRepo].map(([repository, e]) => ({ labels: { repository }, value: e.images })) },
      { name: "berth_cve_scan_queue", help: "Manifests waiting for a vulnerability scan.", type: "gauge", samples: [{ value: this.scanner.waiting() }] },
      { name: "berth_cve_db_built_timestamp_seconds", help: "Build time of the vulnerability database in service (0: none imported).", type: "gauge", samples: [{ value: Number.isNaN(built) ? 0 : built }] },
    ];
  }

  close(): void {
    this.store.close();
  }
}
