/**
 * `require_signature`: a decorator of the /v2 registry (through `delegate()`, as sync's
 * pull-through is) that refuses to serve a manifest of a repository whose policy requires a
 * signature unless the manifest, or an index of the repository listing it, carries a
 * signature that verifies with the trust store. The refusal is 403 DENIED naming the reason,
 * and an audit line. Only manifest reads are decorated: pushes, signatures and referrers
 * still land (sign after push works), and signature artifacts themselves (cosign `.sig`
 * manifests, anything with a subject: notation signatures, bundles, SBOMs) are served, or
 * clients could never fetch the signatures they verify.
 *
 * Blobs are served whatever the status of the images that use them: a blob is reachable
 * only by a digest read from a manifest, which is what is refused; it may be shared with a
 * verified image; and checking every blob GET would put a reverse lookup on the hot path.
 */
import { globSpecificity, globToRegExp, moreSpecificFirst } from "../oci/glob";
import { RegistryError } from "../oci/errors";
import { hasFilesystemLayer } from "../oci/mediatypes";
import { delegate, type V2Registry } from "../registry/api";
import type { TrustIndex } from "./status";
import { manifestDoc, signatureKind } from "./verify";

/** One `[[trust.policy]]` entry. */
export interface TrustPolicyConfig {
  repositories: string[];
  require_signature: boolean;
}

/**
 * Whether repository `repo` requires a signature: the most specific glob that matches decides
 * (the precedence of the access rules, oci/glob.ts `globSpecificity`), so a narrow policy can
 * lift a requirement a broad one sets, and the other way round.
 */
export function signatureRequired(policies: readonly TrustPolicyConfig[]): (repo: string) => boolean {
  const globs = policies
    .flatMap((p, index) => p.repositories.map((g) => ({ re: globToRegExp(g), rank: globSpecificity(g, index), require: p.require_signature })))
    .sort((a, b) => moreSpecificFirst(a.rank, b.rank));
  return (repo) => globs.find((g) => g.re.test(repo))?.require ?? false;
}

/**
 * True for a manifest that is itself a signature or attached to a subject (served unchecked),
 * and holds no filesystem layer: a runtime ignores `subject` and `artifactType` and runs the
 * layers, so an image that merely names a subject, or dresses as a signature, still needs one.
 */
export function isAttachment(bytes: Uint8Array): boolean {
  const doc = manifestDoc(bytes);
  if (doc === undefined || (doc.subject === undefined && signatureKind(doc) === undefined)) return false;
  return !hasFilesystemLayer(doc);
}

/** Called for every refusal (the audit trail). */
export type OnRefused = (repo: string, reference: string, digest: string, reason: string) => void;

/** The decorator: `registry` with manifest reads checked against the trust status. */
export function requireSignatures(registry: V2Registry, index: TrustIndex, required: (repo: string) => boolean, onRefused: OnRefused): V2Registry {
  return delegate(registry, {
    async manifest(repo, reference, accept) {
      const m = await registry.manifest(repo, reference, accept);
      if (!required(repo) || isAttachment(m.bytes)) return m;
      const verdict = await index.servable(repo, m.digest);
      if (verdict.ok) return m;
      onRefused(repo, reference, m.digest, verdict.reason);
      throw new RegistryError("DENIED", `${repo}@${m.digest} is not served: its repository requires a verified signature ([[trust.policy]] require_signature) and ${verdict.reason}`);
    },
  });
}
