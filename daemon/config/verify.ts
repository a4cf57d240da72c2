/**
 * Checks of everything a valid configuration names on disk: the TLS certificate and key
 * (readable PEM, the key matching the certificate), the storage root (a directory berth can
 * read and write, or one it can create), the admin token file (readable, a token of at
 * least 16 characters on its first line), the htpasswd file (0600, bcrypt lines only), per
 * sync registry the credentials file and the CA, certificate and key files, and with [auth]
 * on the token signing key and the API key store when they exist (not open to group or
 * others). `berth verify` reports these problems next to the schema's; `berth serve` runs
 * the same checks before it opens anything, so a config that verifies also starts, and a
 * config problem is a message with its key, never a stack trace.
 *
 * Reads only; nothing is created or changed.
 */
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { checkSecretFile, readSecretFile } from "../auth/secretfile";
import { readCredentials } from "../sync/client";
import { parseHtpasswd } from "../auth/htpasswd";
import { ConfigError, loadConfig } from "./load";
import type { Config } from "./schema";
import { subpathLayoutProblems } from "./subpaths";
import { rootProblem } from "../storage/roots/open";

/** Shortest admin token accepted (characters on the token file's first line). */
export const MIN_TOKEN_LENGTH = 16;

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

/** Reads `path`, or pushes a problem for `key` and returns undefined. */
function readFile(key: string, path: string, problems: string[]): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    problems.push(`${key}: cannot read "${path}" (${errno(err)})`);
    return undefined;
  }
}

/** Checks a PEM certificate file and, when given, its private key (and that they belong together). */
function checkCertificate(certKey: string, certPath: string, keyKey: string, keyPath: string | undefined, problems: string[]): void {
  const certText = readFile(certKey, certPath, problems);
  let cert: X509Certificate | undefined;
  if (certText !== undefined) {
    try {
      cert = new X509Certificate(certText);
    } catch {
      problems.push(`${certKey}: "${certPath}" holds no PEM certificate`);
    }
  }
  if (keyPath === undefined) return;
  const keyText = readFile(keyKey, keyPath, problems);
  if (keyText === undefined) return;
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyText);
  } catch {
    problems.push(`${keyKey}: "${keyPath}" holds no PEM private key (or it is encrypted)`);
    return;
  }
  if (cert && !cert.checkPrivateKey(key)) problems.push(`${keyKey}: "${keyPath}" is not the private key of the certificate in "${certPath}"`);
}

/** Checks a file of CA certificates (PEM). */
function checkCa(key: string, path: string, problems: string[]): void {
  const text = readFile(key, path, problems);
  if (text !== undefined && !text.includes("-----BEGIN CERTIFICATE-----")) problems.push(`${key}: "${path}" holds no PEM certificate`);
}

/** Checks that the storage root is a usable directory, or that it can be created. */
function checkRoot(root: string, problems: string[]): void {
  const key = "storage.root";
  let at = resolve(root);
  let missing = false;
  for (;;) {
    try {
      const st = statSync(at);
      if (!st.isDirectory()) {
        problems.push(missing ? `${key}: "${root}" cannot be created: "${at}" is not a directory` : `${key}: "${root}" is not a directory`);
        return;
      }
      break;
    } catch (err) {
      if (errno(err) !== "ENOENT" && errno(err) !== "ENOTDIR") {
        problems.push(`${key}: cannot use "${root}" (${errno(err)} at "${at}")`);
        return;
      }
      missing = true;
      const up = dirname(at);
      if (up === at) break;
      at = up;
    }
  }
  try {
    accessSync(at, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (err) {
    problems.push(missing
      ? `${key}: "${root}" does not exist and cannot be created: "${at}" is not writable (${errno(err)})`
      : `${key}: "${root}" is not readable and writable by this user (${errno(err)})`);
  }
}

/** Reads the admin token: the file's first line, trimmed; a problem for `http.admin_token_file` when unusable. */
export function readTokenFile(path: string, problems: string[]): string | undefined {
  const text = readFile("http.admin_token_file", path, problems);
  if (text === undefined) return undefined;
  const token = text.split("\n")[0]!.trim();
  if (token.length < MIN_TOKEN_LENGTH) {
    problems.push(`http.admin_token_file: "${path}" must hold a token of at least ${MIN_TOKEN_LENGTH} characters on its first line (it has ${token.length})`);
    return undefined;
  }
  return token;
}

/** Checks the htpasswd file: mode 0600 (not open to group or others), every line a bcrypt entry. */
function checkHtpasswd(path: string, problems: string[]): void {
  try {
    parseHtpasswd(readSecretFile(path), path);
  } catch (err) {
    problems.push(`auth.htpasswd: ${(err as Error).message}`);
  }
}

/** Every problem with the files and directories `config` names (empty when all are usable). */
export function checkPaths(config: Config): string[] {
  const problems: string[] = [];
  const http = config.http;
  if (http.tls_cert && http.tls_key) checkCertificate("http.tls_cert", http.tls_cert, "http.tls_key", http.tls_key, problems);
  if (http.tls_client_ca) checkCertificate("http.tls_client_ca", http.tls_client_ca, "", undefined, problems);
  const ldap = config.auth.ldap;
  if (ldap?.ca_file) checkCertificate("auth.ldap.ca_file", ldap.ca_file, "", undefined, problems);
  if (ldap) {
    try {
      readSecretFile(ldap.bind_password_file);
    } catch (err) {
      problems.push(`auth.ldap.bind_password_file: ${(err as Error).message}`);
    }
  }
  checkRoot(config.storage.root, problems);
  // [[storage.subpaths]]: prefixes and roots against each other, and each required root on disk
  problems.push(...subpathLayoutProblems(config.storage.root, config.storage.subpaths));
  config.storage.subpaths.forEach((sp, i) => {
    const problem = sp.required ? rootProblem(sp.root) : undefined;
    if (problem) problems.push(`storage.subpaths[${i}].root: storage root for "${sp.prefix}": ${problem}`);
  });
  if (http.admin_token_file) readTokenFile(http.admin_token_file, problems);
  if (config.auth.htpasswd) checkHtpasswd(config.auth.htpasswd, problems);
  if (config.auth.htpasswd !== "" || config.access.length > 0) {
    // files berth creates 0600 under the root (auth/tokensetup.ts): refused once opened up
    const own = (key: string, path: string) => {
      try {
        checkSecretFile(path);
      } catch (err) {
        problems.push(`${key}: ${(err as Error).message}`);
      }
    };
    const token = config.auth.token;
    if (token.enabled) own("auth.token.key_file", token.key_file || join(config.storage.root, ".berth", "token.key"));
    if (config.auth.apikeys.enabled) own("auth.apikeys", join(config.storage.root, ".berth", "apikeys.json"));
  }
  config.sync.registries.forEach((r, i) => {
    const at = `sync.registries[${i}]`;
    if (r.credentialsFile) {
      try {
        readCredentials(r.credentialsFile);
      } catch (err) {
        problems.push(`${at}.credentials_file: ${(err as Error).message}`);
      }
    }
    if (r.caFile) checkCa(`${at}.ca_file`, r.caFile, problems);
    if (r.certFile && r.keyFile) checkCertificate(`${at}.cert_file`, r.certFile, `${at}.key_file`, r.keyFile, problems);
  });
  return problems;
}

/**
 * Loads the configuration (as {@link loadConfig}) and checks what it names on disk. Throws
 * {@link ConfigError} listing every problem.
 */
export function loadAndCheck(path: string | undefined): Config {
  const config = loadConfig(path);
  const problems = checkPaths(config);
  if (problems.length > 0) throw new ConfigError(path ?? "embedded default", problems);
  return config;
}
