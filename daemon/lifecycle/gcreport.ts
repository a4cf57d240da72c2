/**
 * What a garbage-collection pass reports: what it removed (or, dry, would remove), what it
 * could not read, and what the grace period held back with the times it becomes
 * collectable — so that a pass that frees nothing says why and until when.
 */

/** What the grace period kept from a pass: collectable later. */
export interface HeldBack {
  manifests: number;
  blobs: number;
  pool: number;
  /** Bytes of the held blobs and pool entries (each digest counted once). */
  bytes: number;
  /** When the first of them becomes collectable (ISO 8601), if any. */
  earliest?: string;
  /** When the last of them becomes collectable (ISO 8601), if any. */
  latest?: string;
}

/** What a pass removed (or, dry, would remove). */
export interface GcReport {
  dryRun: boolean;
  repositories: number;
  manifests: { repo: string; digest: string }[];
  blobs: { repo: string; digest: string; size: number }[];
  pool: { digest: string; size: number }[];
  emptyRepositories: string[];
  /** Repositories not swept because a manifest of them could not be read at all. */
  skipped: string[];
  /** Manifests read conservatively (every digest they mention kept), with the reason. */
  unreadable: { repo: string; digest: string; reason: string }[];
  /** What the grace period kept. */
  heldBack: HeldBack;
  /** Bytes of pool entries and unshared blobs freed. */
  bytesFreed: number;
  durationMs: number;
}

/** Tallies what the grace period holds back during one pass, into its report. */
export class HeldTally {
  private earliest = Infinity;
  private latest = -Infinity;
  private readonly counted = new Set<string>();

  constructor(private readonly report: GcReport) {}

  /** Something (a manifest) is held until `at` (epoch ms). */
  until(at: number): void {
    this.earliest = Math.min(this.earliest, at);
    this.latest = Math.max(this.latest, at);
  }

  /** A blob or pool entry of `size` bytes is held until `at`; its bytes count once per digest. */
  bytes(digest: string, size: number, at: number): void {
    if (!this.counted.has(digest)) this.report.heldBack.bytes += size;
    this.counted.add(digest);
    this.until(at);
  }

  /** Writes the earliest and latest times into the report, keeping earlier or later ones it has. */
  finish(): void {
    const held = this.report.heldBack;
    const iso = (t: number) => new Date(Math.ceil(t)).toISOString();
    if (Number.isFinite(this.earliest) && (held.earliest === undefined || iso(this.earliest) < held.earliest)) held.earliest = iso(this.earliest);
    if (Number.isFinite(this.latest) && (held.latest === undefined || iso(this.latest) > held.latest)) held.latest = iso(this.latest);
  }
}

/** A report with nothing in it. */
export function emptyReport(dryRun: boolean): GcReport {
  return {
    dryRun,
    repositories: 0,
    manifests: [],
    blobs: [],
    pool: [],
    emptyRepositories: [],
    skipped: [],
    unreadable: [],
    heldBack: { manifests: 0, blobs: 0, pool: 0, bytes: 0 },
    bytesFreed: 0,
    durationMs: 0,
  };
}
