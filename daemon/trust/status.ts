/**
 * Trust status per manifest, derived and kept in meta.db in tables of its own:
 *
 *   trust_info   (key, value)                        schema version, fingerprint of the trust set
 *   trust_status (repo, digest, stamp, checked, signatures)   verdicts of a manifest's signatures
 *
 * A row is valid while its repository's index.json stamp is the one it was computed at
 * (every push, tag or delete changes it: a signature that arrives, before or after its
 * image, makes the row stale), for at most {@link RECHECK_MS} (certificates expire), and while the trust set is the one of `trust_info` (a key
 * added or removed empties the table). A stale or missing row is recomputed on the next
 * read; {@link TrustIndex.refresh} recomputes eagerly (after a push). Nothing is written on
 * a read of a valid row, so pulls cost one primary-key SELECT. A schema mismatch drops the
 * tables: everything here can be recomputed from the layouts and the trust store.
 *
 * Where signatures are looked for, for manifest D of repository R: the cosign tag
 * `sha256-<hex>.sig` of R, and the referrers of D in R (notation, sigstore bundles).
 */
import { createHash } from "node:crypto";
import type { SqlDatabase, Statement } from "../platform/sqlite";
import { cosignTag } from "./cosign";
import type { TrustSet } from "./keys";
import { MAX_SIGNATURE_BLOB, manifestDoc, type SignatureInfo, signatureKind, verifySignatureManifest, maySign } from "./verify";

const SCHEMA_VERSION = "2";
/** A verdict is re-checked after this long even when nothing changed: certificates and signatures expire. */
export const RECHECK_MS = 3600_000;
const SCHEMA = `
CREATE TABLE IF NOT EXISTS trust_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trust_status (
  repo TEXT NOT NULL, digest TEXT NOT NULL, stamp TEXT NOT NULL, checked INTEGER NOT NULL, signatures TEXT NOT NULL,
  PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
`;

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

const MAX_PENDING = 256;

/** The derived trust statuses. */
export class TrustIndex {
  private readonly q: {
    get: Statement<{ stamp: string; checked: number; signatures: string }>;
    put: Statement<never>;
    info: Statement<{ value: string }>;
    setInfo: Statement<never>;
  };
  private readonly inflight = new Map<string, Promise<TrustStatus>>();
  private readonly pending = new Set<string>();
  private draining: Promise<void> | undefined;
  /** False when the table could not be brought in line with the trust set: every status is recomputed. */
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
        db.exec("DROP TABLE IF EXISTS trust_status; DROP TABLE IF EXISTS trust_info;");
        db.exec(SCHEMA);
        db.prepare("INSERT INTO trust_info (key, value) VALUES ('schema_version', ?)").run(SCHEMA_VERSION);
      });
    }
    this.q = {
      get: db.prepare("SELECT stamp, checked, signatures FROM trust_status WHERE repo = ? AND digest = ?"),
      put: db.prepare("INSERT OR REPLACE INTO trust_status (repo, digest, stamp, checked, signatures) VALUES (?, ?, ?, ?, ?)"),
      info: db.prepare("SELECT value FROM trust_info WHERE key = ?"),
      setInfo: db.prepare("INSERT OR REPLACE INTO trust_info (key, value) VALUES (?, ?)"),
    };
    this.keysChanged();
  }

  /**
   * Forgets every status when the trust set differs from the one they were computed with.
   * If that cannot be written (a full disk), no stored row is trusted for the rest of the run.
   */
  keysChanged(): void {
    const print = trustFingerprint(this.trust());
    try {
      if (this.rowsUsable && this.q.info.get("trust_set")?.value === print) return;
      this.db.transaction(() => {
        this.db.exec("DELETE FROM trust_status");
        this.q.setInfo.run("trust_set", print);
      });
      this.rowsUsable = true;
    } catch {
      this.rowsUsable = false;
    }
  }

  /** The status of manifest `digest` of `repo` (recomputed when stale). */
  async status(repo: string, digest: string): Promise<TrustStatus> {
    const stamp = await this.source.stamp(repo);
    if (stamp === undefined) return { state: "unsigned", signatures: [] };
    const row = this.rowsUsable ? this.q.get.get(repo, digest) : undefined;
    if (row && row.stamp === stamp && Math.abs(this.now() - row.checked) < RECHECK_MS) return statusOf(JSON.parse(row.signatures));
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
   */
  async servable(repo: string, digest: string): Promise<Servable> {
    const own = await this.status(repo, digest);
    const by = own.signatures.find((s) => s.isTrusted);
    if (by) return { ok: true, by: `${by.tool}: ${by.author}` };
    for (const parent of this.source.parents(repo, digest).slice(0, 16)) {
      const p = (await this.status(repo, parent)).signatures.find((s) => s.isTrusted);
      if (p) return { ok: true, by: `${p.tool}: ${p.author} (on index ${parent})` };
    }
    if (own.signatures.length === 0) return { ok: false, reason: `${digest} has no signature` };
    return { ok: false, reason: `no signature of ${digest} verifies: ${own.signatures.map((s) => s.reason).join("; ")}` };
  }

  /** Recomputes the status of `digest` of `repo` soon, in the background (bounded; extra requests are dropped: a read recomputes anyway). */
  refresh(repo: string, digest: string): void {
    if (this.pending.size >= MAX_PENDING) return;
    this.pending.add(`${repo}\u0000${digest}`);
    this.draining ??= Promise.resolve().then(() => this.drain());
  }

  /** Resolves once the background queue is empty (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private async drain(): Promise<void> {
    try {
      for (const key of this.pending) {
        this.pending.delete(key);
        const [repo, digest] = key.split("\u0000") as [string, string];
        await this.status(repo, digest).catch(() => undefined);
        // a referrer (notation signature, bundle) changes its subject's status
        const subject = await this.source.manifest(repo, digest).then((m) => (m ? manifestDoc(m.bytes)?.subject?.digest : undefined), () => undefined);
        if (typeof subject === "string") await this.status(repo, subject).catch(() => undefined);
      }
    } finally {
      this.draining = undefined;
    }
  }

  private async compute(repo: string, digest: string, stamp: string): Promise<TrustStatus> {
    const trust = this.trust();
    const now = this.now();
    const target = await this.source.manifest(repo, digest);
    const read = (d: string) => this.source.blob(repo, d, MAX_SIGNATURE_BLOB);
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
      const sig = sigDigest === tagged?.digest ? tagged : await this.source.manifest(repo, sigDigest);
      const doc = sig ? manifestDoc(sig.bytes) : undefined;
      if (!doc || !signatureKind(doc)) continue;
      signatures.push(...(await verifySignatureManifest(doc, sigDigest, digest, target?.bytes, read, trust, now)));
    }
    // the trust set may have changed while this ran: then the row is not stored
    if (trust === this.trust() && this.rowsUsable) {
      try {
        this.q.put.run(repo, digest, stamp, now, JSON.stringify(signatures));
      } catch {
        // derived data: not caching it (a full disk) only costs a recomputation next time
      }
    }
    return statusOf(signatures);
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
