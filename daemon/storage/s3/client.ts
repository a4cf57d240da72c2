/**
 * A small S3 client over `fetch` with SigV4 signing (./sigv4.ts): path-style requests to one
 * bucket, the operations berth's S3 blob store needs and nothing else. Chosen over
 * `@aws-sdk/client-s3` (megabytes in the single binary and a large module graph to load on a
 * 1 GiB board) and over `Bun.S3Client` (Bun-only, and its writes cannot send If-Match or
 * If-None-Match); this file runs unchanged on Bun and Node.js.
 *
 * Contracts shared by every method: keys are object names without a leading slash and without
 * `.`/`..` segments; ETags go in and come out unquoted (RGW 16 compares If-Match against the
 * bare ETag, so a quoted one never matches); every request has a time limit for its response
 * headers (`timeoutMs`; a streamed body is bounded by the caller's signal) and is retried a
 * bounded number of times (`attempts`) with backoff on 5xx (not 501/507) and connection errors
 * when its body can be sent again; failures are `S3Error`s (./errors.ts). Nothing is buffered
 * whole except request bodies given as bytes (callers bound them) and XML answers (bounded).
 */
import { createHash } from "node:crypto";
import { S3Error, kindOf } from "./errors";
import { UNSIGNED_PAYLOAD, presignUrl, signHeaders, uriEncode } from "./sigv4";
import { MAX_XML, elements, escapeXml, text } from "./xml";

/** Where the bucket is and how to sign for it. */
export interface S3ClientOptions {
  /** http(s)://host[:port] of the S3 endpoint (path-style addressing is used). */
  endpoint: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
  region: string;
  /** Limit for each request's response headers, ms (default 30,000). */
  timeoutMs?: number;
  /** Tries per request when the body can be resent (default 4: one try and three retries). */
  attempts?: number;
  /** First retry delay, ms, doubled each retry (default 100). */
  backoffMs?: number;
}

/** An object's metadata as HEAD, GET and listings report it. */
export interface ObjectInfo {
  key: string;
  size: number;
  /** Unquoted; may be empty for a multipart object on RGW. */
  etag: string;
  lastModified: Date;
  contentType?: string;
  /** x-amz-meta-* values, by lowercase name without the prefix (HEAD and GET only). */
  metadata: Record<string, string>;
}

/** Conditions and attributes for a write. */
export interface PutOptions {
  /** "*": create only if no object has the key (412 precondition-failed otherwise). */
  ifNoneMatch?: "*";
  /** Replace only if the current ETag is this one (quotes are stripped before sending). */
  ifMatch?: string;
  contentType?: string;
  metadata?: Record<string, string>;
  signal?: AbortSignal;
}

/** A ranged or whole read: the body is a stream the caller must consume or cancel. */
export interface GetResult {
  body: ReadableStream<Uint8Array>;
  info: ObjectInfo;
  /** The bytes answered, inclusive, and the object's size (also for a whole read). */
  range: { start: number; end: number; total: number };
}

/** One page of ListObjectsV2. */
export interface ListPage {
  objects: Omit<ObjectInfo, "metadata" | "contentType">[];
  /** Common prefixes (with `delimiter`), each ending in the delimiter. */
  prefixes: string[];
  /** Pass back as `continuationToken` for the next page; absent on the last page. */
  next?: string;
}

/** A part of a multipart upload. */
export interface Part {
  partNumber: number;
  etag: string;
  size?: number;
}

type Body = Uint8Array | string | undefined;

const stripQuotes = (etag: string | null | undefined) => (etag ?? "").replace(/^W\//, "").replace(/^"(.*)"$/, "$1");

/** An S3 client for one bucket. */
export class S3Client {
  readonly bucket: string;
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly backoffMs: number;

  constructor(private readonly options: S3ClientOptions) {
    this.bucket = options.bucket;
    this.base = options.endpoint.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.attempts = Math.max(1, options.attempts ?? 4);
    this.backoffMs = options.backoffMs ?? 100;
  }

  /** Creates the bucket; an existing bucket owned by these credentials is fine. */
  async createBucket(): Promise<void> {
    try {
      await this.drain(await this.send("PUT", undefined, {}));
    } catch (e) {
      if (!(e instanceof S3Error && e.code === "BucketAlreadyOwnedByYou")) throw e;
    }
  }

  /** Removes the bucket, which must be empty (conflict otherwise); an absent bucket is fine. */
  async deleteBucket(): Promise<void> {
    try {
      await this.drain(await this.send("DELETE", undefined, {}));
    } catch (e) {
      if (!(e instanceof S3Error && e.kind === "not-found")) throw e;
    }
  }

  /** Writes a whole object (bodies are bounded by the caller); throws precondition-failed when a condition fails. */
  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<{ etag: string }> {
    const headers = writeHeaders(options);
    const res = await this.send("PUT", key, { body, headers, signal: options.signal });
    await this.drain(res);
    return { etag: stripQuotes(res.headers.get("etag")) };
  }

  /** Streams an object or a byte range of it (`end` inclusive); throws not-found, or invalid (416) past the end. */
  async get(key: string, options: { start?: number; end?: number; signal?: AbortSignal } = {}): Promise<GetResult> {
    const headers = new Headers();
    if (options.start !== undefined || options.end !== undefined) headers.set("range", `bytes=${options.start ?? 0}-${options.end ?? ""}`);
    const res = await this.send("GET", key, { headers, signal: options.signal });
    const info = infoOf(key, res);
    const m = /bytes (\d+)-(\d+)\/(\d+|\*)/.exec(res.headers.get("content-range") ?? "");
    const range = m ? { start: Number(m[1]), end: Number(m[2]), total: m[3] === "*" ? -1 : Number(m[3]) } : { start: 0, end: info.size - 1, total: info.size };
    if (m) info.size = range.total;
    return { body: res.body ?? new Response("").body!, info, range };
  }

  /**
   * Streams the whole object unless its ETag is still `etag` (a conditional GET: RGW answers
   * 304 and nothing is transferred); undefined when unchanged. Throws not-found.
   */
  async getIfChanged(key: string, etag: string | undefined, signal?: AbortSignal): Promise<GetResult | undefined> {
    if (etag === undefined) return this.get(key, { signal });
    const headers = new Headers({ "if-none-match": `"${stripQuotes(etag)}"` });
    try {
      const res = await this.send("GET", key, { headers, signal });
      const info = infoOf(key, res);
      return { body: res.body ?? new Response("").body!, info, range: { start: 0, end: info.size - 1, total: info.size } };
    } catch (e) {
      if (e instanceof S3Error && e.status === 304) return undefined;
      throw e;
    }
  }

  /** The object's metadata, or undefined when there is no such object. */
  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    try {
      return infoOf(key, await this.send("HEAD", key, { signal }));
    } catch (e) {
      if (e instanceof S3Error && e.kind === "not-found") return undefined;
      throw e;
    }
  }

  /** Removes an object; removing an absent one succeeds (as S3 answers 204 either way). */
  async delete(key: string): Promise<void> {
    await this.drain(await this.send("DELETE", key, {}));
  }

  /** Removes many objects, 1,000 per request; answers the keys that could not be removed. */
  async deleteMany(keys: string[], signal?: AbortSignal): Promise<{ key: string; code: string; message: string }[]> {
    const failed: { key: string; code: string; message: string }[] = [];
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const body = `<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>${batch.map((k) => `<Object><Key>${escapeXml(k)}</Key></Object>`).join("")}</Delete>`;
      const headers = new Headers({ "content-type": "application/xml", "content-md5": createHash("md5").update(body).digest("base64") });
      const xml = await this.xml(await this.send("POST", undefined, { query: { delete: "" }, body, headers, signal }));
      for (const e of elements(xml, "Error")) failed.push({ key: text(e, "Key") ?? "", code: text(e, "Code") ?? "", message: text(e, "Message") ?? "" });
    }
    return failed;
  }

  /** One page (up to `maxKeys`, at most 1,000) of ListObjectsV2 under `prefix`. */
  async list(options: { prefix?: string; delimiter?: string; continuationToken?: string; startAfter?: string; maxKeys?: number } = {}): Promise<ListPage> {
    const query: Record<string, string> = { "list-type": "2" };
    if (options.prefix) query.prefix = options.prefix;
    if (options.delimiter) query.delimiter = options.delimiter;
    if (options.continuationToken) query["continuation-token"] = options.continuationToken;
    if (options.startAfter) query["start-after"] = options.startAfter;
    if (options.maxKeys) query["max-keys"] = String(options.maxKeys);
    const xml = await this.xml(await this.send("GET", undefined, { query }));
    const objects = elements(xml, "Contents").map((c) => ({
      key: text(c, "Key") ?? "",
      size: Number(text(c, "Size") ?? 0),
      etag: stripQuotes(text(c, "ETag")),
      lastModified: new Date(text(c, "LastModified") ?? 0),
    }));
    const prefixes = elements(xml, "CommonPrefixes").map((p) => text(p, "Prefix") ?? "");
    const truncated = text(xml, "IsTruncated") === "true";
    return { objects, prefixes, next: truncated ? text(xml, "NextContinuationToken") : undefined };
  }

  /** Every object and common prefix under `prefix`, page by page (one page in memory at a time). */
  async *listAll(options: { prefix?: string; delimiter?: string; pageSize?: number } = {}): AsyncGenerator<{ object?: ListPage["objects"][number]; prefix?: string }> {
    let continuationToken: string | undefined;
    do {
      const page = await this.list({ ...options, maxKeys: options.pageSize, continuationToken });
      for (const prefix of page.prefixes) yield { prefix };
      for (const object of page.objects) yield { object };
      continuationToken = page.next;
    } while (continuationToken);
  }

  /** Copies an object within the bucket on the server (up to 5 GiB, S3's single-copy limit). */
  async copy(from: string, to: string, options: PutOptions = {}): Promise<{ etag: string }> {
    const headers = writeHeaders(options);
    headers.set("x-amz-copy-source", `/${uriEncode(this.bucket)}/${uriEncode(from, true)}`);
    headers.set("x-amz-metadata-directive", options.metadata || options.contentType ? "REPLACE" : "COPY");
    const xml = await this.xml(await this.send("PUT", to, { headers, signal: options.signal }));
    return { etag: stripQuotes(text(xml, "ETag")) };
  }

  /** Starts a multipart upload; answers its upload id. */
  async createMultipart(key: string, options: Pick<PutOptions, "contentType" | "metadata"> = {}): Promise<string> {
    const xml = await this.xml(await this.send("POST", key, { query: { uploads: "" }, headers: writeHeaders(options) }));
    const id = text(xml, "UploadId");
    if (!id) throw new S3Error("invalid", `S3 answered no upload id for "${key}"`);
    return id;
  }

  /** Uploads part `partNumber` (1-10,000; all but the last at least 5 MiB); answers its ETag. */
  async uploadPart(key: string, uploadId: string, partNumber: number, bytes: Uint8Array, signal?: AbortSignal): Promise<string> {
    const res = await this.send("PUT", key, { query: { partNumber: String(partNumber), uploadId }, body: bytes, signal });
    await this.drain(res);
    return stripQuotes(res.headers.get("etag"));
  }

  /** Copies bytes `range` (inclusive) of object `from` on the server as part `partNumber` of an upload to `key`; answers its ETag. */
  async uploadPartCopy(key: string, uploadId: string, partNumber: number, from: string, range: { start: number; end: number }): Promise<string> {
    const headers = new Headers();
    headers.set("x-amz-copy-source", `/${uriEncode(this.bucket)}/${uriEncode(from, true)}`);
    headers.set("x-amz-copy-source-range", `bytes=${range.start}-${range.end}`);
    const xml = await this.xml(await this.send("PUT", key, { query: { partNumber: String(partNumber), uploadId }, headers }));
    return stripQuotes(text(xml, "ETag"));
  }

  /**
   * Completes a multipart upload from its parts in order. Unconditional on RGW 16 (which
   * ignores If-None-Match here); the answered ETag may be empty. An error inside a 200 answer
   * is raised as S3 documents.
   */
  async completeMultipart(key: string, uploadId: string, parts: Part[]): Promise<{ etag: string }> {
    const body = `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload>${parts.map((p) => `<Part><PartNumber>${p.partNumber}</PartNumber><ETag>"${escapeXml(stripQuotes(p.etag))}"</ETag></Part>`).join("")}</CompleteMultipartUpload>`;
    const xml = await this.xml(await this.send("POST", key, { query: { uploadId }, body, headers: new Headers({ "content-type": "application/xml" }) }));
    return { etag: stripQuotes(text(xml, "ETag")) };
  }

  /** Aborts a multipart upload, dropping its parts; an unknown upload is fine. */
  async abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      await this.drain(await this.send("DELETE", key, { query: { uploadId } }));
    } catch (e) {
      if (!(e instanceof S3Error && e.kind === "not-found")) throw e;
    }
  }

  /** The parts uploaded so far (first 1,000). */
  async listParts(key: string, uploadId: string): Promise<Part[]> {
    const xml = await this.xml(await this.send("GET", key, { query: { uploadId } }));
    return elements(xml, "Part").map((p) => ({ partNumber: Number(text(p, "PartNumber")), etag: stripQuotes(text(p, "ETag")), size: Number(text(p, "Size") ?? 0) }));
  }

  /** Multipart uploads in progress under `prefix` (first 1,000), for sweeping abandoned ones. */
  async listMultipartUploads(prefix = ""): Promise<{ key: string; uploadId: string; initiated: Date }[]> {
    const query: Record<string, string> = { uploads: "" };
    if (prefix) query.prefix = prefix;
    const xml = await this.xml(await this.send("GET", undefined, { query }));
    return elements(xml, "Upload").map((u) => ({ key: text(u, "Key") ?? "", uploadId: text(u, "UploadId") ?? "", initiated: new Date(text(u, "Initiated") ?? 0) }));
  }

  /** A URL anyone can GET the object with for `expiresSeconds` (no request is made). */
  presignGet(key: string, expiresSeconds: number): string {
    return presignUrl(this.options, "GET", this.url(key), expiresSeconds);
  }

  private url(key: string | undefined, query: Record<string, string> = {}): URL {
    if (key !== undefined && (key === "" || key.startsWith("/") || key.split("/").some((s) => s === "." || s === ".."))) throw new S3Error("invalid", `Object key "${key}" is empty, absolute or has a "." or ".." segment`);
    const url = new URL(`${this.base}/${uriEncode(this.bucket)}${key === undefined ? "" : `/${uriEncode(key, true)}`}`);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    return url;
  }

  /** Sends a signed request with the time limit and retries; answers a 2xx response or throws. */
  private async send(method: string, key: string | undefined, req: { query?: Record<string, string>; headers?: Headers; body?: Body; signal?: AbortSignal }): Promise<Response> {
    const url = this.url(key, req.query);
    const what = `S3 ${method} "${key ?? this.bucket}"`;
    for (let attempt = 1; ; attempt++) {
      const headers = new Headers(req.headers);
      signHeaders(this.options, method, url, headers, UNSIGNED_PAYLOAD);
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(new S3Error("unavailable", `${what} had no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      // AbortSignal.any, not a listener on the caller's (possibly long-lived) signal: nothing piles up on it.
      const signal = req.signal ? AbortSignal.any([ac.signal, req.signal]) : ac.signal;
      let res: Response | undefined;
      let failure: S3Error | undefined;
      try {
        res = await fetch(url, { method, headers, body: req.body, signal, redirect: "manual" });
      } catch (e) {
        if (req.signal?.aborted) throw req.signal.reason;
        failure = e instanceof S3Error ? e : new S3Error("unavailable", `${what} failed: ${(e as Error).message}`);
      } finally {
        clearTimeout(timer);
      }
      if (res && res.status < 300) return res;
      if (res) {
        const body = res.status === 304 || method === "HEAD" ? "" : await readCapped(res, 64 * 1024).catch(() => "");
        const code = text(body, "Code") ?? "";
        const message = text(body, "Message") ?? "";
        failure = new S3Error(kindOf(res.status), `${what} failed: ${res.status}${code ? ` ${code}` : ""}${message ? `: ${message}` : ""}`, res.status, code);
      }
      const retriable = failure!.kind === "unavailable" && failure!.status !== 501;
      if (!retriable || attempt >= this.attempts) throw failure!;
      await abortableDelay(this.backoffMs * 2 ** (attempt - 1) * (0.5 + Math.random() / 2), req.signal);
    }
  }

  /** Reads an XML answer (bounded), raising an <Error> sent inside a 200 as S3 may. */
  private async xml(res: Response): Promise<string> {
    const body = await readCapped(res, MAX_XML);
    if (/<Error>/.test(body.slice(0, 512))) {
      const code = text(body, "Code") ?? "";
      const status = code === "SlowDown" || code === "InternalError" ? 503 : 500;
      throw new S3Error(kindOf(status), `S3 answered an error inside a ${res.status}: ${code}: ${text(body, "Message") ?? ""}`, status, code);
    }
    return body;
  }

  private async drain(res: Response): Promise<void> {
    await res.body?.cancel().catch(() => {});
  }
}

function writeHeaders(options: Omit<PutOptions, "signal">): Headers {
  const headers = new Headers();
  if (options.ifNoneMatch) headers.set("if-none-match", options.ifNoneMatch);
  if (options.ifMatch !== undefined) headers.set("if-match", stripQuotes(options.ifMatch));
  if (options.contentType) headers.set("content-type", options.contentType);
  for (const [k, v] of Object.entries(options.metadata ?? {})) headers.set(`x-amz-meta-${k.toLowerCase()}`, v);
  return headers;
}

function infoOf(key: string, res: Response): ObjectInfo {
  const metadata: Record<string, string> = {};
  res.headers.forEach((v, n) => {
    if (n.startsWith("x-amz-meta-")) metadata[n.slice(11)] = v;
  });
  return {
    key,
    size: Number(res.headers.get("content-length") ?? 0),
    etag: stripQuotes(res.headers.get("etag")),
    lastModified: new Date(res.headers.get("last-modified") ?? 0),
    contentType: res.headers.get("content-type") ?? undefined,
    metadata,
  };
}

/** The body as text, refusing more than `cap` bytes. */
async function readCapped(res: Response, cap: number): Promise<string> {
  if (!res.body) return "";
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    n += chunk.byteLength;
    if (n > cap) {
      await res.body.cancel().catch(() => {});
      throw new S3Error("invalid", `S3 answer is larger than ${cap} bytes`, res.status);
    }
    chunks.push(chunk);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
