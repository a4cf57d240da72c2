/**
 * Trust status per manifest, derived and kept in meta.db in tables of its own:
 *
 *   trust_info           (key, value)          schema version, fingerprint of the trust set
 *   trust_status         (repo, digest, stamp, checked, signatures, trusted)
 *                                              verdicts of a manifest's signatures
 *   trust_signed_parents (repo, child, parent) the children of every index whose last verdict
 *                                              was trusted: `require_signature`'s one lookup
 *
 * A row is valid while its repository's index.json stamp is the one it was computed at
 * (every push, tag or delete changes it: a signature that arrives, before or after its
 * image, makes the row stale), for at most {@link RECHECK_MS} (certificates expire), and while
 * the trust set is the one of `trust_info`. A stale or missing row is recomputed on the next
 * read. Nothing is written on a read of a valid row, so pulls cost one primary-key SELECT.
 * A schema mismatch drops the tables: everything here can be recomputed from the layouts and
 * the trust store.
 *
 * `checked = 0` marks a row as queued: {@link TrustIndex.refresh} (a push of an image or a
 * signature) writes such a row, a change of the trust set marks every signed row so, and a
 * background drain recomputes them in batches. The queue is therefore on disk, bounded by the
 * number of manifests, and survives a restart; nothing is dropped when pushes come in bursts.
 * That keeps `trust_signed_parents` complete: an index's verdict changes only when a signature
 * of it is pushed or deleted (a refresh), when the keys change (a re-check), or with time (a
 * verified index is re-checked on use). So {@link TrustIndex.servable} needs one indexed query
 * however many indexes list a child, and an index nobody trusted signed is never looked at.
 *
 * Where signatures are looked for, for manifest D of repository R: the cosign tag
 * `sha256-<hex>.sig` of R, and the referrers of D in R (notation, sigstore bundles).
 */
import { createHash } from "node:crypto";
import type { SqlDatabase, Statement } from "../platform/sqlite";
import { cosignTag } from "./cosign";
import type { TrustSet } from "./keys";
import { MAX_SIGNATURE_BLOB, manifestDoc, type SignatureInfo, signatureKind, verifySignatureManifest, maySign } from "./verify";

const SCHEMA_VERSION = "3";
/** A verdict is re-checked after this long even when nothing changed: certificates and signatures expire. */
export const RECHECK_MS = 3600_000;
const SCHEMA = `
CREATE TABLE IF NOT EXISTS trust_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trust_status (
  repo TEXT NOT NULL, digest TEXT NOT NULL, stamp TEXT NOT NULL, checked INTEGER NOT NULL, signatures TEXT NOT NULL,
  trusted INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trust_status_queued ON trust_status (repo) WHERE checked = 0;
CREATE TABLE IF NOT EXISTS trust_signed_parents (
  repo TEXT NOT NULL, child TEXT NOT NULL, parent TEXT NOT NULL,
  PRIMARY KEY (repo, child, parent)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trust_signed_parents_by_parent ON trust_signed_parents (repo, parent);
`;
/** Most children of one index mapped (an index lists a few platforms; a hostile one is cut short). */
const MAX_CHILDREN = 4096;
/** Verified parents looked at per decision (each was signed with a trusted key: a push right cannot add any). */
const MAX_SIGNED_PARENTS = 16;
/**
 * Signature blobs read per status beyond the first layer of each signature manifest (those
 * are always read, so a pile of many-layered fakes crowds out no more signatures than the
 * bound of 64 referrers did): 64 referrers of 16 layers each were 1,040 reads of up to 1 MiB,
 * and a pull decides up to 33 statuses (the child, 16 signed and 16 queued parents), so a
 * push right could make one pull parse and hash tens of gigabytes.
 */
const MAX_EXTRA_SIGNATURE_READS = 64;
/** Queued rows recomputed per batch of the background drain. */
const DRAIN_BATCH = 32;
/** Refresh requests held in memory until the drain writes them (then repositories, then everything). */
const MAX_PENDING = 256;

/** What the index reads of the registry; nothing it reads counts as a client's pull. */
export interface TrustSource {
  /** The stamp of the repository's index.json; undefined when the repository is gone. */
  stamp(repo: string): Promise<string | undefined>;
  /** A manifest's bytes by digest or tag, with its digest; undefined when absent. */
  manifest(repo: string, reference: string): Promise<{ digest: string; bytes: Uint8Array } | undefined>;
  /** A blob's bytes if it is at most `max` bytes; undefined when absent or larger. */
  blob(repo: string, digest: string, max: number): Promise<Uint8Array | undefined>;
  /** The manifests of `repo` whose subject is `digest` (their digests and artifact types). */
  referrers(repo: string, digest: string): Promise<{ digest: string; artifactType?: string }[]>;
  /** Digests of the indexes of `repo` that list `digest`. */
  parents(repo: string, digest: string): string[];
}

/** A manifest's trust status with the reasons. */
export interface TrustStatus {
  /** "unsigned": no signature; "unverified": signatures, none trusted; "verified": at least one trusted. */
  state: "unsigned" | "unverified" | "verified";
  signatures: SignatureInfo[];
}

/** What the search API shows (zot's `IsSigned` and `SignatureInfo { Tool IsTrusted Author }`). */
export interface TrustSummary {
  isSigned: boolean;
  signatures: { tool: "cosign" | "notation"; isTrusted: boolean; author: string }[];
}

/** Whether a manifest may be served under `require_signature`, and why not. */
export type Servable = { ok: true; by: string } | { ok: false; reason: string };

/** The derived trust statuses. */
export class TrustIndex {
  private readonly q: {
    get: Statement<{ stamp: string; checked: number; signatures: string }>;
    put: Statement<never>;
    info: Statement<{ value: string }>;
    setInfo: Statement<never>;
    queue: Statement<never>;
    queued: Statement<{ repo: string; digest: string }>;
    drop: Statement<never>;
    signedParents: Statement<{ parent: string }>;
    isSignedParent: Statement<{ one: number }>;
    dropParent: Statement<never>;
    putParent: Statement<never>;
    pendingParents: Statement<{ parent: string }>;
    queueRepo: Statement<never>;
  };
  private readonly inflight = new Map<string, Promise<TrustStatus>>();
  /** Refreshes not yet on disk (a hook writes nothing); past the bound, whole repositories are re-checked. */
  private pending = new Set<string>();
  private overflowed = new Set<string>();
  private overflowedAll = false;
  private flushing: Promise<void> | undefined;
  private draining: Promise<void> | undefined;
  /** False when the tables could not be brought in line with the trust set: every status is recomputed. */
  private rowsUsable = true;

  constructor(
    private readonly db: SqlDatabase,
    private readonly source: TrustSource,
    private readonly trust: () => TrustSet,
    private readonly now: () => number = Date.now,
  ) {
    const version = (() => {
      try {
        return db.prepare<{ value: string }>("SELECT value FROM trust_info WHERE key = 'schema_version'").get()?.value;
      } catch {
        return undefined;
      }
    })();
    if (version !== SCHEMA_VERSION) {
      db.transaction(() => {
        db.exec("DROP TABLE IF EXISTS trust_status; DROP TABLE IF EXISTS trust_info; DROP TABLE IF EXISTS trust_signed_parents;");
        db.exec(SCHEMA);
        db.prepare("INSERT INTO trust_info (key, value) VALUES ('schema_version', ?)").run(SCHEMA_VERSION);
        backfill(db);
      });
    }
    this.q = {
      get: db.prepare("SELECT stamp, checked, signatures FROM trust_status WHERE repo = ? AND digest = ?"),
      put: db.prepare("INSERT OR REPLACE INTO trust_status (repo, digest, stamp, checked, signatures, trusted) VALUES (?, ?, ?, ?, ?, ?)"),
      info: db.prepare("SELECT value FROM trust_info WHERE key = ?"),
      setInfo: db.prepare("INSERT OR REPLACE INTO trust_info (key, value) VALUES (?, ?)"),
      queue: db.prepare(
        "INSERT INTO trust_status (repo, digest, stamp, checked, signatures, trusted) VALUES (?, ?, '', 0, '[]', 0) ON CONFLICT (repo, digest) DO UPDATE SET checked = 0",
      ),
      queued: db.prepare(`SELECT repo, digest FROM trust_status WHERE checked = 0 LIMIT ${DRAIN_BATCH}`),
      drop: db.prepare("DELETE FROM trust_status WHERE repo = ? AND digest = ?"),
      signedParents: db.prepare(`SELECT parent FROM trust_signed_parents WHERE repo = ? AND child = ? LIMIT ${MAX_SIGNED_PARENTS}`),
      isSignedParent: db.prepare("SELECT 1 AS one FROM trust_signed_parents WHERE repo = ? AND child = ? AND parent = ?"),
      dropParent: db.prepare("DELETE FROM trust_signed_parents WHERE repo = ? AND parent = ?"),
      putParent: db.prepare("INSERT OR IGNORE INTO trust_signed_parents (repo, child, parent) VALUES (?, ?, ?)"),
      // the two reads of meta's tables (daemon/meta/meta.ts, same database): which indexes list
      // a child, and every manifest of a repository (a refresh queue that overflowed)
      // (from the queue's side: its cost is the repository's queued rows, not the child's parents)
      pendingParents: db.prepare(
        `SELECT t.digest AS parent FROM trust_status t INDEXED BY trust_status_queued CROSS JOIN children c ON c.repo = t.repo AND c.parent = t.digest AND c.child = ? WHERE t.repo = ? AND t.checked = 0 LIMIT ${MAX_SIGNED_PARENTS}`,
      ),
      queueRepo: db.prepare(
        "INSERT INTO trust_status (repo, digest, stamp, checked, signatures, trusted) SELECT repo, digest, '', 0, '[]', 0 FROM manifests WHERE repo = ? ON CONFLICT (repo, digest) DO UPDATE SET checked = 0",
      ),
    };
    this.keysChanged();
    this.kick();
  }

  /**
   * Re-checks every signed status when the trust set differs from the one they were computed
   * with (queued: recomputed in the background, and on their next read). Unsigned rows stay:
   * no key makes a manifest without signatures verified. If that cannot be written (a full
   * disk), no stored row is trusted for the rest of the run.
   */
  keysChanged(): void {
    const print = trustFingerprint(this.trust());
    try {
      if (this.rowsUsable && this.q.info.get("trust_set")?.value === print) return;
      this.db.transaction(() => {
        this.db.exec("UPDATE trust_status SET checked = 0 WHERE signatures <> '[]'");
        this.q.setInfo.run("trust_set", print);
      });
      this.rowsUsable = true;
      this.kick();
    } catch {
      this.rowsUsable = false;
    }
  }

  /** The status of manifest `digest` of `repo` (recomputed when stale). */
  async status(repo: string, digest: string): Promise<TrustStatus> {
    const stamp = await this.source.stamp(repo);
    if (stamp === undefined) return { state: "unsigned", signatures: [] };
    const row = this.rowsUsable ? this.q.get.get(repo, digest) : undefined;
    if (row && row.checked !== 0 && row.stamp === stamp && Math.abs(this.now() - row.checked) < RECHECK_MS) return statusOf(JSON.parse(row.signatures));
    const key = `${repo}\u0000${digest}`;
    let running = this.inflight.get(key);
    if (!running) {
      running = this.compute(repo, digest, stamp).finally(() => this.inflight.delete(key));
      this.inflight.set(key, running);
    }
    return running;
  }

  /** zot's view of a manifest's signatures, for the search API. */
  async trustOf(repo: string, digest: string): Promise<TrustSummary> {
    const s = await this.status(repo, digest);
    return { isSigned: s.signatures.length > 0, signatures: s.signatures.map(({ tool, isTrusted, author }) => ({ tool, isTrusted, author })) };
  }

  /**
   * Whether `digest` may be served when a signature is required: it is verified itself, or
   * an index of the repository that lists it is (cosign signs an index, not every child).
   * The indexes looked at are the ones `trust_signed_parents` names (last seen verified), each
   * re-checked; indexes without a trusted signature, however many list the child, cost nothing.
   */
  async servable(repo: string, digest: string): Promise<Servable> {
    const own = await this.status(repo, digest);
    const by = own.signatures.find((s) => s.isTrusted);
    if (by) return { ok: true, by: `${by.tool}: ${by.author}` };
    // degraded (the tables could not follow a change of the keys): a bounded look at the parents
    const parents = this.rowsUsable ? this.q.signedParents.all(repo, digest).map((r) => r.parent) : this.source.parents(repo, digest).slice(0, MAX_SIGNED_PARENTS);
    const verified = await this.firstVerified(repo, digest, parents);
    if (verified) return verified;
    if (this.rowsUsable) {
      // a signature pushed a moment ago may still be queued: its index is looked at now
      await this.flush().catch(() => undefined); // writes refused (a full disk): what is on disk still counts
      const queued = await this.firstVerified(repo, digest, this.q.pendingParents.all(digest, repo).map((r) => r.parent));
      if (queued) return queued;
    }
    if (own.signatures.length === 0) return { ok: false, reason: `${digest} has no signature` };
    return { ok: false, reason: `no signature of ${digest} verifies: ${own.signatures.map((s) => s.reason).join("; ")}` };
  }

  private async firstVerified(repo: string, child: string, parents: string[]): Promise<Servable | undefined> {
    for (const parent of parents) {
      const p = (await this.status(repo, parent)).signatures.find((s) => s.isTrusted);
      // re-checking may have found the index gone: it no longer lists the child
      if (p && (!this.rowsUsable || this.q.isSignedParent.get(repo, child, parent))) return { ok: true, by: `${p.tool}: ${p.author} (on index ${parent})` };
    }
    return undefined;
  }

  /**
   * Queues `digest` of `repo` for recomputation in the background. Nothing is written here
   * (hooks stay off the disk); the drain moves the request to a row marked on disk, with a
   * referrer's subject. Past {@link MAX_PENDING} requests, the repository is re-checked whole,
   * so a burst of pushes loses nothing.
   */
  refresh(repo: string, digest: string): void {
    if (this.pending.size < MAX_PENDING) this.pending.add(`${repo}\u0000${digest}`);
    else if (this.overflowed.size < MAX_PENDING) this.overflowed.add(repo);
    else this.overflowedAll = true;
    this.kick();
  }

  /** Moves the refresh requests to the queue on disk (one flush at a time; callers wait for it). */
  private async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.pending.size === 0 && this.overflowed.size === 0 && !this.overflowedAll) return;
    this.flushing = this.flushNow().finally(() => (this.flushing = undefined));
    await this.flushing;
  }

  private async flushNow(): Promise<void> {
    const keys = this.pending, repos = this.overflowed, all = this.overflowedAll;
    this.pending = new Set();
    this.overflowed = new Set();
    this.overflowedAll = false;
    for (const key of keys) {
      const [repo, digest] = key.split("\u0000") as [string, string];
      this.q.queue.run(repo, digest);
      // a referrer (notation signature, bundle) changes its subject's status
      const subject = await this.source.manifest(repo, digest).then((m) => (m ? manifestDoc(m.bytes)?.subject?.digest : undefined), () => undefined);
      if (typeof subject === "string" && subject !== digest) this.q.queue.run(repo, subject);
    }
    for (const repo of repos) this.q.queueRepo.run(repo);
    if (all) backfill(this.db, "SELECT repo, digest FROM manifests");
  }

  /** Resolves once the background queue is empty (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private kick(): void {
    this.draining ??= Promise.resolve().then(() => this.drain());
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        if (this.rowsUsable) await this.flush();
        const batch = this.rowsUsable ? this.q.queued.all() : [];
        let progressed = false;
        for (const { repo, digest } of batch) {
          if ((await this.source.stamp(repo)) === undefined) {
            this.q.drop.run(repo, digest); // the repository is gone
            progressed = true;
            continue;
          }
          await this.status(repo, digest).catch(() => undefined);
          if (this.q.get.get(repo, digest)?.checked !== 0) progressed = true;
        }
        // nothing could be stored (the trust set keeps moving, writes fail): the next kick resumes
        if (!progressed) return;
      }
    } catch {
      // the database refuses writes (a full disk): the rest is recomputed on its reads
    } finally {
      this.draining = undefined;
    }
  }

  private async compute(repo: string, digest: string, stamp: string): Promise<TrustStatus> {
    const trust = this.trust();
    const now = this.now();
    const target = await this.source.manifest(repo, digest);
    let extra = 0;
    let readsHere = 0;
    const read = (d: string) => (readsHere++ === 0 || extra++ < MAX_EXTRA_SIGNATURE_READS ? this.source.blob(repo, d, MAX_SIGNATURE_BLOB) : Promise.resolve(undefined));
    const candidates = new Set<string>();
    const tagged = await this.source.manifest(repo, cosignTag(digest));
    if (tagged) candidates.add(tagged.digest);
    // only referrers that may be signatures count against the bound: attachments of other
    // types (SBOMs, scans), however many and however their digests sort, cannot crowd a
    // signature out of the ones looked at
    const referrers = (await this.source.referrers(repo, digest)).filter((r) => maySign(r.artifactType));
    for (const r of referrers.slice(0, 64)) candidates.add(r.digest);
    const signatures: SignatureInfo[] = [];
    for (const sigDigest of candidates) {
      readsHere = 0;
      const sig = sigDigest === tagged?.digest ? tagged : await this.source.manifest(repo, sigDigest);
      const doc = sig ? manifestDoc(sig.bytes) : undefined;
      if (!doc || !signatureKind(doc)) continue;
      signatures.push(...(await verifySignatureManifest(doc, sigDigest, digest, target?.bytes, read, trust, now)));
    }
    const trusted = target !== undefined && signatures.some((s) => s.isTrusted);
    // the trust set may have changed while this ran: then the row is not stored
    if (trust === this.trust() && this.rowsUsable) {
      try {
        this.db.transaction(() => {
          this.q.put.run(repo, digest, stamp, now, JSON.stringify(signatures), trusted ? 1 : 0);
          this.q.dropParent.run(repo, digest);
          if (trusted) for (const child of childrenOf(target.bytes)) this.q.putParent.run(repo, child, digest);
        });
        // a push landed while this ran (a signature, perhaps): computed again, or a mark set
        // meanwhile by refresh() would be lost under the row just written
        if ((await this.source.stamp(repo)) !== stamp) this.refresh(repo, digest);
      } catch {
        // derived data: not caching it (a full disk) only costs a recomputation next time
      }
    }
    return statusOf(signatures);
  }
}

/** The digests an index lists (none for an image manifest), at most {@link MAX_CHILDREN}. */
function childrenOf(bytes: Uint8Array): string[] {
  const doc = manifestDoc(bytes) as { manifests?: unknown } | undefined;
  if (!doc || !Array.isArray(doc.manifests)) return [];
  const out: string[] = [];
  for (const m of doc.manifests.slice(0, MAX_CHILDREN)) {
    const d = (m as { digest?: unknown } | null)?.digest;
    if (typeof d === "string") out.push(d);
  }
  return out;
}

/**
 * Queues every index the registry holds (meta's `children` table, in this same database) when
 * the tables are (re)created, so `trust_signed_parents` is complete after an upgrade too; or
 * the rows of `which` (every manifest, when the refresh requests overflowed past all bounds).
 */
function backfill(db: SqlDatabase, which = "SELECT DISTINCT repo, parent FROM children"): void {
  try {
    db.exec(`INSERT INTO trust_status (repo, digest, stamp, checked, signatures, trusted) SELECT *, '', 0, '[]', 0 FROM (${which}) WHERE true ON CONFLICT (repo, digest) DO UPDATE SET checked = 0`);
  } catch {
    // no derived registry index here (a test's bare database): nothing to queue
  }
}

function statusOf(signatures: SignatureInfo[]): TrustStatus {
  return { state: signatures.length === 0 ? "unsigned" : signatures.some((s) => s.isTrusted) ? "verified" : "unverified", signatures };
}

/** A fingerprint of the trust set's keys and CAs (names and ids). */
export function trustFingerprint(t: TrustSet): string {
  const ids = [...t.keys.map((k) => `k:${k.name}:${k.id}`), ...t.cas.map((c) => `c:${c.name}:${c.id}`)].sort();
  return createHash("sha256").update(ids.join("\n")).digest("hex");
}
