/**
 * The key layout of berth's S3 store, under an optional prefix `p/`:
 *
 *   p/berth-layout                          {"version":1}, created once (If-None-Match: *)
 *   p/blobs/<alg>/<hex>                     content-addressed, immutable blob bytes (dedupe is free)
 *   p/repos/<repo>/_index.json              the repository's OCI index (tags as annotated descriptors)
 *   p/repos/<repo>/_links/<alg>/<hex>       empty: "the blob is linked into the repository"
 *   p/quarantine/<alg>/<hex>                bytes a scrub found not to match their digest
 *   p/gc/lease                              the GC lease (gclock.ts)
 *   p/gc/intents/<id>                       a guarded write in flight (gclock.ts)
 *   p/gc/touch/<alg>/<hex>                  a stored blob linked anew, with the lease epoch (gclock.ts)
 *
 * The underscore names cannot collide with a repository path component (the distribution
 * grammar starts every component with [a-z0-9]), so `a/_links/...` is never a repository
 * and a listing of one repository's links never picks up a nested repository's index.
 */
import { type Digest, parseDigest } from "../../oci/digest";

/** The keys of one store. */
export class S3Keys {
  /** The prefix with its trailing slash, or "". */
  readonly prefix: string;

  constructor(prefix: string) {
    const p = prefix.replace(/^\/+|\/+$/g, "");
    this.prefix = p ? `${p}/` : "";
  }

  get layout(): string {
    return `${this.prefix}berth-layout`;
  }

  get blobs(): string {
    return `${this.prefix}blobs/`;
  }

  get repos(): string {
    return `${this.prefix}repos/`;
  }

  get quarantine(): string {
    return `${this.prefix}quarantine/`;
  }

  get gcLease(): string {
    return `${this.prefix}gc/lease`;
  }

  get gcIntents(): string {
    return `${this.prefix}gc/intents/`;
  }

  gcIntent(id: string): string {
    return `${this.gcIntents}${id}`;
  }

  gcTouch(digest: string): string {
    return `${this.prefix}gc/touch/${digest.replace(":", "/")}`;
  }

  blob(digest: string): string {
    return `${this.blobs}${digest.replace(":", "/")}`;
  }

  index(repo: string): string {
    return `${this.repos}${repo}/_index.json`;
  }

  links(repo: string): string {
    return `${this.repos}${repo}/_links/`;
  }

  link(repo: string, digest: string): string {
    return `${this.links(repo)}${digest.replace(":", "/")}`;
  }

  quarantined(digest: string): string {
    return `${this.quarantine}${digest.replace(":", "/")}`;
  }

  /** The digest named by a key ending in `<alg>/<hex>`, or undefined. */
  digestOf(key: string): Digest | undefined {
    const m = /([a-z0-9]+)\/([a-f0-9]+)$/.exec(key);
    return m ? parseDigest(`${m[1]}:${m[2]}`) : undefined;
  }

  /** The repository a key under repos/ belongs to and what it is, or undefined. */
  parseRepoKey(key: string): { repo: string; index: true } | { repo: string; link: string } | undefined {
    if (!key.startsWith(this.repos)) return undefined;
    const rest = key.slice(this.repos.length);
    if (rest.endsWith("/_index.json")) return { repo: rest.slice(0, -"/_index.json".length), index: true };
    const at = rest.lastIndexOf("/_links/");
    if (at < 0) return undefined;
    const d = this.digestOf(rest.slice(at));
    return d ? { repo: rest.slice(0, at), link: d.value } : undefined;
  }
}
