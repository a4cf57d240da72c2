/**
 * One configured upstream: its client, its filters, and the distribution-API reads sync
 * needs (manifests with verification, blobs, tag lists, catalog, referrers).
 */
import { ConfigError } from "../config/load";
import type { SyncRegistryConfig } from "../config/sync";
import type { Logger } from "../log";
import { type Digest, parseDigest } from "../oci/digest";
import { type ParsedManifest, parseManifest } from "../oci/manifest";
import { bareMediaType } from "../oci/mediatypes";
import { parseSyncPin } from "../oci/pins";
import { BodyTooLarge, readCapped } from "../platform/capped";
import { hashBytes } from "../platform/hash";
import { type Credentials, UpstreamClient, readCredentials } from "./client";
import { UpstreamError } from "./errors";
import { Filters } from "./filters";
import { NegativeCache } from "./negative";

/** Every manifest type berth stores, for the Accept header toward the upstream. */
export const ACCEPT_MANIFESTS = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

/** A manifest as the upstream served it, verified. */
export interface FetchedManifest {
  digest: string;
  mediaType: string;
  bytes: Uint8Array;
  parsed: ParsedManifest;
}

/** One upstream registry. */
export class Upstream {
  readonly client: UpstreamClient;
  readonly filters: Filters;
  /** Recent 404s and digest failures of this upstream (`negative_cache_ttl`, `negative_cache_entries`). */
  readonly misses: NegativeCache;
  /** The configured `pinned` tags, parsed once (upstream names). */
  readonly pins: readonly { repo: string; tag: string }[];

  constructor(
    readonly config: SyncRegistryConfig,
    private readonly maxManifestBytes: number,
    log: Logger,
  ) {
    try {
      const credentials: Credentials | undefined = config.credentialsFile ? readCredentials(config.credentialsFile) : undefined;
      this.client = new UpstreamClient(config, credentials, log);
    } catch (err) {
      throw new ConfigError(`sync registry "${config.name}"`, [(err as Error).message]);
    }
    this.filters = new Filters(config);
    this.pins = config.pinned.map(parseSyncPin);
    this.misses = new NegativeCache({ ttlMs: config.negativeCacheTtl * 1000, entries: config.negativeCacheEntries });
  }

  get name(): string {
    return this.config.name;
  }

  /**
   * GETs manifest `ref` of upstream repository `repo`, verifying its digest (against `ref`
   * when it is a digest, and against Docker-Content-Digest when sent). The bytes are kept
   * exactly as served.
   */
  async manifest(repo: string, ref: string, opts: { background?: boolean; signal?: AbortSignal } = {}): Promise<FetchedManifest> {
    const res = await this.client.request(`/v2/${repo}/manifests/${ref}`, { accept: ACCEPT_MANIFESTS, repo, ...opts });
    const bytes = await this.readCapped(res, repo, ref);
    const wanted = parseDigest(ref);
    const header = parseDigest(res.headers.get("docker-content-digest") ?? "");
    // by tag, the manifest keeps the name the upstream gives it (a sha512 one stays sha512, so
    // a reference by that digest resolves here too, and the next run finds it unchanged)
    const algorithm = wanted?.algorithm ?? header?.algorithm ?? "sha256";
    const digest = `${algorithm}:${hashBytes(algorithm, bytes)}`;
    if (wanted && wanted.value !== digest) throw new UpstreamError("digest", this.name, `sent a manifest hashing to ${digest} for ${ref}`);
    // the announced digest is checked in its own algorithm: a sha512 header must not escape the check
    const announced = header && (header.algorithm === algorithm ? digest : `${header.algorithm}:${hashBytes(header.algorithm, bytes)}`);
    if (header && header.value !== announced) {
      throw new UpstreamError("digest", this.name, `sent a manifest hashing to ${announced} while announcing ${header.value}`);
    }
    let parsed: ParsedManifest;
    try {
      parsed = parseManifest(bytes, bareMediaType(res.headers.get("content-type")));
    } catch (err) {
      throw new UpstreamError("invalid", this.name, `sent an unusable manifest for ${repo}:${ref} (${(err as Error).message})`);
    }
    return { digest, mediaType: parsed.mediaType, bytes, parsed };
  }

  /** The digest tag `ref` points at upstream (HEAD), for cheap re-checks. */
  async headDigest(repo: string, ref: string, opts: { background?: boolean; signal?: AbortSignal } = {}): Promise<string | undefined> {
    const res = await this.client.request(`/v2/${repo}/manifests/${ref}`, { method: "HEAD", accept: ACCEPT_MANIFESTS, repo, ...opts });
    await res.body?.cancel();
    return parseDigest(res.headers.get("docker-content-digest") ?? "")?.value;
  }

  /** Opens blob `digest` of `repo`. */
  blob(repo: string, digest: Digest, opts: { background?: boolean; signal?: AbortSignal; method?: "GET" | "HEAD" } = {}): Promise<Response> {
    return this.client.request(`/v2/${repo}/blobs/${digest.value}`, { repo, ...opts });
  }

  /** Every tag of `repo` (following Link pagination). */
  async tags(repo: string, opts: { signal?: AbortSignal } = {}): Promise<string[]> {
    return this.list(`/v2/${repo}/tags/list?n=1000`, "tags", repo, opts.signal);
  }

  /** Every repository in the upstream's catalog. */
  async catalog(opts: { signal?: AbortSignal } = {}): Promise<string[]> {
    return this.list("/v2/_catalog?n=1000", "repositories", undefined, opts.signal);
  }

  /**
   * Descriptors of the manifests whose subject is `digest`: the referrers API, or, where the
   * upstream lacks it (404), the fallback tag `<alg>-<hex>` of the distribution spec.
   */
  async referrers(repo: string, digest: Digest, opts: { signal?: AbortSignal } = {}): Promise<{ digest: string; mediaType: string; artifactType?: string }[]> {
    const pick = (doc: unknown) =>
      (((doc as { manifests?: unknown[] })?.manifests ?? []) as { digest?: unknown; mediaType?: unknown; artifactType?: unknown }[])
        .filter((d) => typeof d.digest === "string" && parseDigest(d.digest))
        .map((d) => ({ digest: d.digest as string, mediaType: String(d.mediaType ?? ""), ...(typeof d.artifactType === "string" ? { artifactType: d.artifactType } : {}) }));
    try {
      const res = await this.client.request(`/v2/${repo}/referrers/${digest.value}`, { repo, background: true, signal: opts.signal });
      const type = bareMediaType(res.headers.get("content-type"));
      if (type === "application/vnd.oci.image.index.v1+json") return pick(await res.json());
      await res.body?.cancel();
    } catch (err) {
      if (!(err instanceof UpstreamError) || (err.fault !== "not-found" && err.fault !== "invalid")) throw err;
    }
    try {
      const fallback = await this.manifest(repo, `${digest.algorithm}-${digest.hex}`, { background: true, signal: opts.signal });
      return fallback.parsed.manifests.map((d) => ({ digest: d.digest, mediaType: d.mediaType, ...(d.artifactType ? { artifactType: d.artifactType } : {}) }));
    } catch (err) {
      if (err instanceof UpstreamError && err.fault === "not-found") return [];
      throw err;
    }
  }

  private async list(first: string, field: string, repo: string | undefined, signal?: AbortSignal): Promise<string[]> {
    const out: string[] = [];
    let path: string | undefined = first;
    for (let page = 0; path && page < 10_000; page++) {
      const res: Response = await this.client.request(path, { repo, background: true, signal });
      const doc = (await res.json().catch(() => ({}))) as Record<string, unknown>;
      const items = doc[field];
      if (Array.isArray(items)) for (const t of items) if (typeof t === "string") out.push(t);
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get("link") ?? "");
      path = link ? new URL(link[1]!, "http://x").pathname + new URL(link[1]!, "http://x").search : undefined;
    }
    return out;
  }

  private async readCapped(res: Response, repo: string, ref: string): Promise<Uint8Array> {
    const declared = Number(res.headers.get("content-length") ?? "0");
    if (declared > this.maxManifestBytes) {
      await res.body?.cancel();
      throw new UpstreamError("invalid", this.name, `manifest ${repo}:${ref} is larger than the limit of ${this.maxManifestBytes} bytes`);
    }
    try {
      if (!res.body) throw new Error("no body");
      return await readCapped(res.body, { maxBytes: this.maxManifestBytes });
    } catch (err) {
      if (err instanceof BodyTooLarge) throw new UpstreamError("invalid", this.name, `manifest ${repo}:${ref} is larger than the limit of ${this.maxManifestBytes} bytes`);
      if (err instanceof UpstreamError) throw err;
      throw new UpstreamError("unreachable", this.name, `the manifest ${repo}:${ref} broke off`);
    }
  }
}
