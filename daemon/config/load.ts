/**
 * Reading the configuration: a TOML file, or the embedded default when none is given.
 * Read once, in main; every module receives plain option objects derived from the result.
 */
import { readFileSync } from "node:fs";
import { parse } from "smol-toml";
import { ProfileError, applyProfile } from "../board/profiles";
import { applyDeprecations } from "./deprecated";
import { type Config, validate } from "./schema";

/** The configuration berth runs on when started without --config. */
export const EMBEDDED_DEFAULT = `# berth's embedded default configuration
[http]
address = "127.0.0.1"
port = 5000

[storage]
root = "./data"

[log]
level = "info"
format = "json"
`;

/** Thrown when a configuration cannot be used; `problems` names each bad key. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: ${problems.length} problem${problems.length === 1 ? "" : "s"}:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

/**
 * The problem of text that is not TOML: where (line and column) and why, with the lines
 * around it; for a JSON document (what a zot user brings) a word on converting it.
 */
export function syntaxProblem(text: string, err: unknown): string {
  // a TOML document cannot start with "{"; one starting with "[" is JSON only if it parses as JSON
  const body = text.replace(/^\uFEFF/, "").trimStart();
  let json = false;
  try {
    const value: unknown = JSON.parse(text);
    json = typeof value === "object" && value !== null;
  } catch {
    // not JSON, or broken JSON
  }
  if (json || body.startsWith("{")) {
    return `line 1, column 1: this is ${json ? "" : "(broken) "}JSON, but berth reads TOML. Convert it: each top-level object becomes a table (\`{"http": {"port": 5000}}\` becomes a line \`[http]\` followed by \`port = 5000\`), strings keep their double quotes, arrays stay [ ... ]; berth's keys are not zot's, so check the result with \`berth verify\``;
  }
  const e = err as { line?: number; column?: number; message?: string };
  const [first, ...rest] = String(e?.message ?? err).split("\n");
  const why = (first ?? "").replace(/^Invalid TOML document:\s*/, "");
  const context = rest.filter((l) => l.trim() !== "").map((l) => `    ${l}`).join("\n");
  const where = e?.line !== undefined ? `line ${e.line}, column ${e.column ?? 1}: ` : "";
  return `${where}not valid TOML (${why})${context ? `\n${context}` : ""}`;
}

/** Parses and validates TOML text; `source` names it in errors. */
export function parseConfig(text: string, source: string): Config {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(source, [syntaxProblem(text, err)]);
  }
  // The board profile's defaults go under the file's own keys; `board.profile` then holds
  // the profile actually applied ("auto" resolved to a name, or "none").
  const raw = doc;
  let profile: string;
  try {
    ({ doc, profile } = applyProfile(doc));
  } catch (err) {
    if (err instanceof ProfileError) throw new ConfigError(source, [err.message]);
    throw err;
  }
  const { config, problems } = validate(doc);
  if (config.http.tls_client_ca !== "" && config.http.tls_cert === "") problems.push("http.tls_client_ca: needs http.tls_cert and http.tls_key (client certificates are asked for over HTTPS only)");
  if ((config.http.tls_cert === "") !== (config.http.tls_key === "")) {
    problems.push(config.http.tls_cert === "" ? "http.tls_cert: required when http.tls_key is set" : "http.tls_key: required when http.tls_cert is set");
  }
  // a manifest larger than the whole budget could never be admitted: 429 "retry" for ever
  const budget = config.http.manifest_body_budget;
  if (budget < config.storage.max_manifest_bytes) {
    problems.push(`http.manifest_body_budget: ${budget} bytes is less than storage.max_manifest_bytes (${config.storage.max_manifest_bytes}); a manifest between the two would be refused with 429 on every retry`);
  }
  if (problems.length > 0) throw new ConfigError(source, problems);
  (config.board as { profile: string }).profile = profile;
  applyDeprecations(raw, config);
  return config;
}

/** Loads the configuration from `path`, or the embedded default when `path` is undefined. */
export function loadConfig(path?: string): Config {
  if (path === undefined) return parseConfig(EMBEDDED_DEFAULT, "embedded default");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file (${(err as NodeJS.ErrnoException).code ?? "error"})`]);
  }
  return parseConfig(text, path);
}
