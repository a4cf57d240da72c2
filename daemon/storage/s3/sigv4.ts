/**
 * AWS Signature Version 4 for S3 requests, written from the published algorithm: a canonical
 * request (method, path-style URI, sorted query, signed headers, payload hash) hashed into a
 * string to sign, signed with a key derived from the secret, date, region and service. Both
 * forms are here: the Authorization header and a presigned URL (the signature in the query,
 * payload UNSIGNED-PAYLOAD). Only `node:crypto` is used, so the same code runs on Bun and on
 * Node.js. Derived signing keys are cached per day and region (a handful at most).
 */
import { createHash, createHmac } from "node:crypto";

/** Credentials and scope for signing. */
export interface SigningKey {
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
}

/** The payload hash S3 accepts when the body is not hashed (streamed bodies). */
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";

/** Hex SHA-256 of `data`. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** RFC 3986 percent-encoding as SigV4 wants it (unreserved characters kept; `/` kept if asked). */
export function uriEncode(s: string, keepSlash = false): string {
  let out = "";
  for (const byte of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === "/")) out += c;
    else out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** `20261203T120000Z` and `20261203` for `now`. */
export function amzDates(now: Date): { stamp: string; day: string } {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  return { stamp, day: stamp.slice(0, 8) };
}

const keyCache = new Map<string, Buffer>();

function signingKey(k: SigningKey, day: string): Buffer {
  const id = `${k.secretKey}\0${day}\0${k.region}`;
  let key = keyCache.get(id);
  if (!key) {
    const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data).digest();
    key = hmac(hmac(hmac(hmac(`AWS4${k.secretKey}`, day), k.region), "s3"), "aws4_request");
    if (keyCache.size > 16) keyCache.clear();
    keyCache.set(id, key);
  }
  return key;
}

function canonicalQuery(query: URLSearchParams): string {
  return [...query]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
}

function signature(k: SigningKey, method: string, url: URL, headers: [string, string][], payloadHash: string, stamp: string, day: string): { signed: string; sig: string; scope: string } {
  const sorted = headers.map(([n, v]) => [n.toLowerCase(), v.trim().replace(/\s+/g, " ")] as const).sort(([a], [b]) => (a < b ? -1 : 1));
  const signed = sorted.map(([n]) => n).join(";");
  const canonical = [method, url.pathname, canonicalQuery(url.searchParams), sorted.map(([n, v]) => `${n}:${v}\n`).join(""), signed, payloadHash].join("\n");
  const scope = `${day}/${k.region}/s3/aws4_request`;
  const toSign = `AWS4-HMAC-SHA256\n${stamp}\n${scope}\n${sha256Hex(canonical)}`;
  return { signed, sig: createHmac("sha256", signingKey(k, day)).update(toSign).digest("hex"), scope };
}

/**
 * Signs a request in place: adds x-amz-date, x-amz-content-sha256 and Authorization to
 * `headers`. `url.pathname` must already be URI-encoded (as `new URL` leaves an encoded path).
 * Signed headers: host, every x-amz-* header and content-md5; others (If-Match, Range,
 * Content-Length) travel unsigned, as S3 allows.
 */
export function signHeaders(k: SigningKey, method: string, url: URL, headers: Headers, payloadHash: string, now = new Date()): void {
  const { stamp, day } = amzDates(now);
  headers.set("x-amz-date", stamp);
  headers.set("x-amz-content-sha256", payloadHash);
  const toSign: [string, string][] = [["host", url.host]];
  headers.forEach((v, n) => {
    if (n.startsWith("x-amz-") || n === "content-md5") toSign.push([n, v]);
  });
  const { signed, sig, scope } = signature(k, method, url, toSign, payloadHash, stamp, day);
  headers.set("authorization", `AWS4-HMAC-SHA256 Credential=${k.accessKey}/${scope}, SignedHeaders=${signed}, Signature=${sig}`);
}

/** A presigned URL for `method` on `url`, valid `expiresSeconds` (1 s to 7 days) from `now`. */
export function presignUrl(k: SigningKey, method: string, url: URL, expiresSeconds: number, now = new Date()): string {
  if (!Number.isInteger(expiresSeconds) || expiresSeconds < 1 || expiresSeconds > 604800) throw new RangeError(`Presigned URL lifetime "${expiresSeconds}" is not a whole number of seconds from 1 to 604800`);
  const { stamp, day } = amzDates(now);
  const out = new URL(url);
  out.searchParams.set("X-Amz-Algorithm", "AWS4-HMAC-SHA256");
  out.searchParams.set("X-Amz-Credential", `${k.accessKey}/${day}/${k.region}/s3/aws4_request`);
  out.searchParams.set("X-Amz-Date", stamp);
  out.searchParams.set("X-Amz-Expires", String(expiresSeconds));
  out.searchParams.set("X-Amz-SignedHeaders", "host");
  const { sig } = signature(k, method, out, [["host", out.host]], UNSIGNED_PAYLOAD, stamp, day);
  out.search = `${canonicalQuery(out.searchParams)}&X-Amz-Signature=${sig}`;
  return out.toString();
}
