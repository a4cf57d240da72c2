/**
 * Blob uploads (distribution spec, "Pushing blobs"): sessions, streamed and chunked PATCHes,
 * monolithic POSTs, cross-repository mounts, and completion, which verifies the digest and
 * publishes the blob. Storage faults become OCI errors through {@link translate}: a cap on
 * open sessions reached is 429 TOOMANYREQUESTS, a descriptor shortage 503, both with
 * `Retry-After`.
 */
import { type Algorithm, type Digest, clip, isAlgorithm, requireDigest } from "../oci/digest";
import { RegistryError } from "../oci/errors";
import { nameProblem, requireName } from "../oci/names";
import type { Storage } from "../storage/api";
import type { UploadSession } from "../storage/api";
import type { RegistryHooks } from "./hooks";
import { translate } from "./translate";

/** What a POST to the uploads endpoint did. */
export type UploadStart =
  | { kind: "created"; digest: string }
  | { kind: "session"; session: UploadSession };

/** The upload use cases of one registry. */
export class BlobUploads {
  constructor(
    private readonly store: Storage,
    private readonly hooks?: RegistryHooks,
  ) {}

  /**
   * POST /v2/<name>/blobs/uploads/: mounts (`mount`, with or without `from`), stores a
   * monolithic upload (`digest` with a body), or opens a session.
   */
  async start(
    repo: string,
    opts: {
      digest?: string;
      mount?: string;
      from?: string;
      algorithm?: string;
      body: ReadableStream<Uint8Array> | null;
      length?: number;
      /** The peer address, for the per-client cap on open sessions. */
      client?: string;
    },
  ): Promise<UploadStart> {
    requireName(repo);
    // A mount that cannot be done (unknown source, blob not there) falls back to a new
    // session, as the spec asks: clients such as containerd guess at sources.
    const mountable = opts.mount !== undefined && (opts.from === undefined || !nameProblem(opts.from));
    if (mountable) {
      const digest = requireDigest(opts.mount!);
      this.hooks?.touched?.(repo, digest.value);
      if (await this.store.blobs.holdsDurably(repo, digest)) return { kind: "created", digest: digest.value };
      if (await this.store.blobs.canMount(digest, opts.from)) {
        try {
          await this.store.indexes.ensure(repo);
          if (await this.store.blobs.mount(repo, digest, opts.from)) return { kind: "created", digest: digest.value };
        } catch (err) {
          translate(err); // a mount that must copy is admitted like a push (quota, min_free)
        }
      }
    }
    let algorithm: Algorithm = "sha256";
    if (opts.algorithm !== undefined) {
      if (!isAlgorithm(opts.algorithm)) throw new RegistryError("DIGEST_INVALID", `digest algorithm "${clip(opts.algorithm)}" is not supported (use sha256 or sha512)`);
      algorithm = opts.algorithm;
    }
    const digest = opts.digest !== undefined ? requireDigest(opts.digest) : undefined;
    if (digest) algorithm = digest.algorithm;
    let session: UploadSession;
    try {
      session = await this.store.uploads.start(repo, algorithm, opts.client);
    } catch (err) {
      translate(err);
    }
    if (!digest) return { kind: "session", session };
    try {
      await this.store.uploads.append(repo, session.id, opts.body, { length: opts.length });
      await this.publish(repo, session.id, digest);
    } catch (err) {
      await this.store.uploads.discard(session.id);
      translate(err);
    }
    return { kind: "created", digest: digest.value };
  }

  /** PATCH: appends a streamed or ranged chunk. */
  async append(
    repo: string,
    id: string,
    body: ReadableStream<Uint8Array> | null,
    opts: { range?: { start: number; end: number }; length?: number },
  ): Promise<UploadSession> {
    requireName(repo);
    try {
      return await this.store.uploads.append(repo, id, body, opts);
    } catch (err) {
      translate(err, this.sessionOrUndefined(repo, id));
    }
  }

  /** GET on an upload location: the session, for its current size. */
  status(repo: string, id: string): UploadSession {
    requireName(repo);
    try {
      return this.store.uploads.get(repo, id);
    } catch (err) {
      translate(err);
    }
  }

  /** PUT: appends the optional last chunk, verifies the digest and publishes the blob. */
  async finish(
    repo: string,
    id: string,
    digestText: string | undefined,
    body: ReadableStream<Uint8Array> | null,
    opts: { range?: { start: number; end: number }; length?: number },
  ): Promise<string> {
    requireName(repo);
    try {
      this.store.uploads.get(repo, id);
    } catch (err) {
      translate(err);
    }
    if (digestText === undefined) throw new RegistryError("DIGEST_INVALID", "the digest query parameter is required to complete an upload");
    const digest = requireDigest(digestText);
    try {
      if (body) await this.store.uploads.append(repo, id, body, opts);
      await this.publish(repo, id, digest);
    } catch (err) {
      translate(err, this.sessionOrUndefined(repo, id));
    }
    return digest.value;
  }

  /** DELETE on an upload location. */
  async cancel(repo: string, id: string): Promise<void> {
    requireName(repo);
    try {
      await this.store.uploads.cancel(repo, id);
    } catch (err) {
      translate(err);
    }
  }

  private sessionOrUndefined(repo: string, id: string): UploadSession | undefined {
    try {
      return this.store.uploads.get(repo, id);
    } catch {
      return undefined;
    }
  }

  private async publish(repo: string, id: string, digest: Digest): Promise<void> {
    // published while the session is still busy: no expiry or DELETE can remove the file meanwhile
    await this.store.uploads.complete(repo, id, digest, () => this.hooks?.touched?.(repo, digest.value));
  }
}
