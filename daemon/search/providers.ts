/**
 * What search asks of the modules that know more about an image than the derived index:
 * signatures (daemon/trust/) and vulnerabilities (daemon/cve/). Each is a small interface
 * with a default that knows nothing (unsigned, not scanned), so search answers from day one
 * and the real providers plug in where the daemon is composed (main.ts) without search
 * importing them. Every method may answer synchronously or with a promise; none may throw
 * for an image it does not know (it answers "unsigned" / `undefined`).
 */

/** One signature of a manifest, in the terms of zot's `SignatureSummary`. */
export interface SignatureInfo {
  /** The signing tool: "cosign" or "notation". */
  tool: string;
  /** True when the signature verified against a trusted key or certificate. */
  isTrusted: boolean;
  /** Who signed (certificate subject, key id); "" when unknown. */
  author: string;
}

/** What is known about the signatures of one manifest. */
export interface TrustInfo {
  isSigned: boolean;
  signatures: SignatureInfo[];
}

/** Answers whether manifest `digest` of `repo` is signed, and by whom. */
export interface TrustProvider {
  trustOf(repo: string, digest: string): TrustInfo | Promise<TrustInfo>;
}

/** Severity words, as zot's `CVE.Severity` uses them. */
export type Severity = "UNKNOWN" | "LOW" | "MEDIUM" | "HIGH" | "CRITICAL";

/** The summary of a scan of one manifest (zot's `ImageVulnerabilitySummary`). */
export interface VulnSummary {
  /** The highest severity found; "NONE" when the scan found nothing. */
  maxSeverity: Severity | "NONE";
  count: number;
  /** Counts per severity; absent ones are 0. */
  bySeverity?: Partial<Record<Severity, number>>;
}

/** A package a CVE was found in. */
export interface CvePackage {
  name: string;
  path?: string;
  installedVersion: string;
  /** "" or "Not Specified" when no fixed version is known. */
  fixedVersion: string;
}

/** One CVE that affects a manifest (zot's `CVE`). */
export interface CveRecord {
  id: string;
  title: string;
  description: string;
  reference?: string;
  severity: Severity;
  packages: CvePackage[];
}

/**
 * Vulnerability data of manifests. `undefined` means "not scanned" (no data), which search
 * reports as zot does for an image it has not scanned: no summary, an empty CVE list.
 */
export interface VulnerabilityProvider {
  /** The summary for manifest `digest` of `repo`; undefined when not scanned. */
  vulnSummaryOf(repo: string, digest: string): VulnSummary | undefined | Promise<VulnSummary | undefined>;
  /** The CVEs of manifest `digest` of `repo`; undefined when not scanned. */
  cvesOf(repo: string, digest: string): CveRecord[] | undefined | Promise<CveRecord[] | undefined>;
}

/** The trust provider used until signatures are verified: every manifest is unsigned. */
export const UNSIGNED: TrustProvider = {
  trustOf: () => ({ isSigned: false, signatures: [] }),
};

/** The vulnerability provider used while scanning is off: nothing is scanned. */
export const NOT_SCANNED: VulnerabilityProvider = {
  vulnSummaryOf: () => undefined,
  cvesOf: () => undefined,
};
