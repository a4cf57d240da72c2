/**
 * The `[storage.s3]` table: where the S3 backend (daemon/storage/s3/backend.ts) keeps its
 * bucket, used when `[storage] backend = "s3"`. Credentials are never in the main config:
 * `credentials_file` names a file (mode 0600, checked like every secret file) with
 * `access_key = ...` and `secret_key = ...` lines (AWS's `aws_access_key_id` and
 * `aws_secret_access_key` names are accepted too, so an AWS credentials file works).
 */
import { readSecretFile } from "../auth/secretfile";
import { parseBytes } from "./units";

/** `[storage.s3]` as checked. */
export interface S3Config {
  /** http(s)://host[:port] of the S3 endpoint (path-style requests). */
  endpoint: string;
  bucket: string;
  /** Key prefix inside the bucket ("" for none). */
  prefix: string;
  region: string;
  credentials_file: string;
  /** Multipart part size in bytes. */
  part_size: number;
  /** Bytes of part buffers all uploads in flight may hold at once (at least part_size). */
  upload_memory: number;
  /** Redirect blob GETs to presigned URLs instead of streaming them through berth. */
  redirect: boolean;
  /** Seconds a presigned redirect URL stays valid. */
  redirect_expiry: number;
  /** The endpoint clients reach the bucket at, signed into redirect URLs ("" = endpoint). */
  public_endpoint: string;
  /** Seconds a stored blob no repository links is kept before GC may remove it. */
  blob_grace: number;
}

const MiB = 1024 * 1024;
const STRINGS = ["endpoint", "bucket", "prefix", "region", "credentials_file", "public_endpoint"] as const;
const KNOWN = new Set<string>([...STRINGS, "part_size", "upload_memory", "redirect", "redirect_expiry", "blob_grace"]);

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Checks `[storage.s3]`; null when absent. */
export function checkS3Config(value: unknown, key: string, problems: string[]): S3Config | null {
  if (value === undefined || value === null) return null;
  if (!isTable(value)) {
    problems.push(`${key}: expected a table ([storage.s3])`);
    return null;
  }
  for (const k of Object.keys(value)) if (!KNOWN.has(k)) problems.push(`${key}.${k}: unknown key "${k}"`);
  const str = (k: (typeof STRINGS)[number], fallback?: string): string => {
    const v = value[k];
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== "string" || (fallback === undefined && v === "")) {
      problems.push(`${key}.${k}: expected a${fallback === undefined ? " non-empty" : ""} string, got ${JSON.stringify(v)}`);
      return fallback ?? "";
    }
    return v;
  };
  const int = (k: string, fallback: number, min: number, max: number): number => {
    const v = value[k];
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      problems.push(`${key}.${k}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
      return fallback;
    }
    return v;
  };
  /** A byte size: a whole number, or a text such as "8 MiB", within [min, max]. */
  const bytes = (k: string, fallback: number, min: number, max: number): number => {
    const v = value[k];
    if (v === undefined) return fallback;
    const n = parseBytes(v);
    if (n === undefined || n < min || n > max) {
      problems.push(`${key}.${k}: expected a size from ${min} to ${max} bytes (a number or text such as "8 MiB"), got ${JSON.stringify(v)}`);
      return fallback;
    }
    return n;
  };
  const out: S3Config = {
    endpoint: str("endpoint"),
    bucket: str("bucket"),
    prefix: str("prefix", ""),
    region: str("region", "us-east-1"),
    credentials_file: str("credentials_file"),
    part_size: bytes("part_size", 8 * MiB, 5 * MiB, 5 * 1024 * MiB),
    upload_memory: bytes("upload_memory", 64 * MiB, 5 * MiB, 64 * 1024 * MiB),
    redirect: value.redirect === undefined ? false : value.redirect === true,
    redirect_expiry: int("redirect_expiry", 300, 1, 7 * 86_400),
    public_endpoint: str("public_endpoint", ""),
    blob_grace: int("blob_grace", 3600, 0, 365 * 86_400),
  };
  if (value.redirect !== undefined && typeof value.redirect !== "boolean") problems.push(`${key}.redirect: expected true or false, got ${JSON.stringify(value.redirect)}`);
  for (const k of ["endpoint", "public_endpoint"] as const) {
    if (out[k] && !/^https?:\/\/[^/]+\/?$/.test(out[k])) problems.push(`${key}.${k}: "${out[k]}" must be http(s)://host[:port]`);
  }
  if (out.bucket && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(out.bucket)) problems.push(`${key}.bucket: "${out.bucket}" is not a valid bucket name`);
  // a session's request that fills a part holds the last request's tail (under one part) and
  // the new part buffer at once: with less, every chunked push's second part waited its bound
  // and was refused 429 however often the client retried
  if (out.upload_memory < 2 * out.part_size) problems.push(`${key}.upload_memory: ${out.upload_memory} is less than twice part_size (${out.part_size}); a part buffer and a session's tail must fit`);
  if (out.redirect && !out.public_endpoint) problems.push(`${key}.redirect: needs public_endpoint (the address clients reach the bucket at; it is signed into the URL)`);
  return out;
}

/** Reads the access and secret key from `path` (a secret file); throws with the file's name when unusable. */
export function readS3Credentials(path: string): { accessKey: string; secretKey: string } {
  const values = new Map<string, string>();
  for (const raw of readSecretFile(path).split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";") || line.startsWith("[")) continue;
    const at = line.indexOf("=");
    if (at > 0) values.set(line.slice(0, at).trim().toLowerCase(), line.slice(at + 1).trim());
  }
  const accessKey = values.get("access_key") ?? values.get("aws_access_key_id");
  const secretKey = values.get("secret_key") ?? values.get("aws_secret_access_key");
  if (!accessKey || !secretKey) throw new Error(`S3 credentials file "${path}" needs access_key = ... and secret_key = ... lines`);
  return { accessKey, secretKey };
}
