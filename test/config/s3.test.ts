/**
 * `[storage] backend = "s3"` and `[storage.s3]` (daemon/config/s3.ts): defaults, every bad
 * value named with its key, credentials read only from a 0600 file (AWS's key names too),
 * and a daemon told to use S3 without a [storage.s3] table stops with a config error.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, parseConfig } from "../../daemon/config/load";
import { readS3Credentials } from "../../daemon/config/s3";
import { startDaemon, tempDir } from "../helpers/daemon";

const problems = (text: string): string[] => {
  try {
    parseConfig(text, "test.toml");
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
};

describe("[storage.s3]", () => {
  test("defaults: local backend, no table; a minimal table gets its defaults", () => {
    expect(parseConfig("", "t").storage.backend).toBe("local");
    expect(parseConfig("", "t").storage.s3).toBeNull();
    const c = parseConfig('[storage]\nbackend = "s3"\n[storage.s3]\nendpoint = "http://127.0.0.1:7480"\nbucket = "berth"\ncredentials_file = "/etc/berth/s3"\n', "t").storage.s3!;
    expect(c).toEqual({ endpoint: "http://127.0.0.1:7480", bucket: "berth", prefix: "", region: "us-east-1", credentials_file: "/etc/berth/s3", part_size: 8 * 1024 * 1024, upload_memory: 64 * 1024 * 1024, redirect: false, redirect_expiry: 300, public_endpoint: "", blob_grace: 3600 });
  });

  test("upload_memory below twice part_size is refused (a part buffer and a session's tail must fit at once)", () => {
    const base = '[storage.s3]\nendpoint = "http://x"\nbucket = "berth"\ncredentials_file = "/c"\npart_size = "8 MiB"\n';
    expect(problems(`${base}upload_memory = "12 MiB"\n`).join("\n")).toContain(`storage.s3.upload_memory: ${12 * 1024 * 1024} is less than twice part_size (${8 * 1024 * 1024})`);
    expect(problems(`${base}upload_memory = "16 MiB"\n`)).toEqual([]);
  });

  test("part_size and upload_memory take sizes as text, as the README writes them", () => {
    const c = parseConfig('[storage]\nbackend = "s3"\n[storage.s3]\nendpoint = "http://127.0.0.1:7480"\nbucket = "berth"\ncredentials_file = "/etc/berth/s3"\npart_size = "16 MiB"\nupload_memory = "128 MiB"\n', "t").storage.s3!;
    expect(c.part_size).toBe(16 * 1024 * 1024);
    expect(c.upload_memory).toBe(128 * 1024 * 1024);
    expect(problems('[storage.s3]\nendpoint = "http://x"\nbucket = "berth"\ncredentials_file = "/c"\nupload_memory = "lots"\n').join("\n")).toContain('storage.s3.upload_memory: expected a size from 5242880 to 68719476736 bytes (a number or text such as "8 MiB"), got "lots"');
  });

  test("bad values are named with their key", () => {
    const p = problems('[storage.s3]\nendpoint = "ftp://x"\nbucket = "UP"\npart_size = 1024\nredirect = true\nsecret_key = "inline"\n');
    expect(p.join("\n")).toContain('storage.s3.endpoint: "ftp://x" must be http(s)://host[:port]');
    expect(p.join("\n")).toContain('storage.s3.bucket: "UP" is not a valid bucket name');
    expect(p.join("\n")).toContain("storage.s3.part_size: expected a size from 5242880");
    expect(p.join("\n")).toContain("storage.s3.redirect: needs public_endpoint");
    expect(p.join("\n")).toContain('storage.s3.secret_key: unknown key "secret_key"');
    expect(p.join("\n")).toContain("storage.s3.credentials_file: expected a non-empty string");
    expect(problems('[storage]\nbackend = "nfs"\n').join("\n")).toContain("storage.backend");
  });

  test("credentials come from a 0600 file, in berth's or AWS's key names; an open or incomplete file is refused", () => {
    using dir = tempDir();
    const file = join(dir.path, "creds");
    writeFileSync(file, "# keys\naccess_key = AK\nsecret_key = SK\n");
    chmodSync(file, 0o644);
    expect(() => readS3Credentials(file)).toThrow("readable or writable by group or others");
    chmodSync(file, 0o600);
    expect(readS3Credentials(file)).toEqual({ accessKey: "AK", secretKey: "SK" });
    writeFileSync(file, "[default]\naws_access_key_id = A2\naws_secret_access_key = S2\n");
    expect(readS3Credentials(file)).toEqual({ accessKey: "A2", secretKey: "S2" });
    writeFileSync(file, "access_key = only\n");
    expect(() => readS3Credentials(file)).toThrow(`S3 credentials file "${file}" needs access_key`);
  });

  test('a daemon with backend = "s3" and no [storage.s3] stops with a config error', async () => {
    const err = await startDaemon({ storage: 'backend = "s3"\n' }).then(() => undefined, (e: Error) => e);
    expect(err?.message).toContain('storage.backend: "s3" needs a [storage.s3] table');
  });
});

test("a daemon whose bucket cannot be reached stops with a config error naming the bucket and the endpoint", async () => {
  using dir = tempDir();
  const creds = join(dir.path, "creds");
  writeFileSync(creds, "access_key = a\nsecret_key = b\n");
  chmodSync(creds, 0o600);
  // port 9 (discard) on loopback: nothing answers S3 there
  const err = await startDaemon({ storage: `backend = "s3"\n[storage.s3]\nendpoint = "http://127.0.0.1:9"\nbucket = "nowhere"\ncredentials_file = "${creds}"\n` }).then(() => undefined, (e: Error) => e);
  expect(err?.message).toContain('bucket "nowhere" at http://127.0.0.1:9 cannot be opened');
}, 60_000);
