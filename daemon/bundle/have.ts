/**
 * `berth bundle have`: the inventory of a target registry that an incremental export reads
 * (see format.ts): per repository the manifests its tags reach (indexes, their children and
 * the referrers of each) and the blobs those manifests reference. Taken over HTTP with the
 * caller's pull rights, so it lists what the caller may see and nothing else.
 */
import type { RegistryClient } from "../client/http";
import { catalog, tags as listTags } from "../client/registry";
import { declaredType, type Have, parseDoc } from "./format";
import { getManifestRaw, referrers } from "./remote";

/** The inventory of `repos` (default: every repository of the catalog). */
export async function inventory(client: RegistryClient, repos?: string[]): Promise<Have> {
  const out: Have = { berthBundleHave: 1, repositories: {} };
  for (const repo of repos && repos.length > 0 ? repos : await catalog(client)) {
    const manifests = new Set<string>();
    const blobs = new Set<string>();
    const visit = async (ref: string, depth: number): Promise<void> => {
      if (manifests.has(ref) || depth > 4) return;
      const got = await getManifestRaw(client, repo, ref);
      if (!got || manifests.has(got.digest)) return;
      manifests.add(got.digest);
      const parsed = parseDoc(got.bytes, declaredType(got.bytes, got.mediaType), got.digest);
      for (const b of parsed.blobs) blobs.add(b.digest);
      for (const c of parsed.manifests) await visit(c.digest, depth);
      for (const r of await referrers(client, repo, got.digest)) await visit(r.digest, depth + 1);
    };
    for (const tag of await listTags(client, repo)) await visit(tag, 0);
    out.repositories[repo] = { manifests: [...manifests].sort(), blobs: [...blobs].sort() };
  }
  return out;
}
