/**
 * Authentication fixtures: htpasswd files with bcrypt entries (cost 4, fast), a
 * configuration with `[auth]` and `[[access]]` validated by the real schema, and Basic
 * credentials. Every file is written 0600, as berth requires.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "smol-toml";
import type { Config } from "../../daemon/config/schema";
import { validate } from "../../daemon/config/schema";

/** A bcrypt hash of `password` in the `$2y$` form `htpasswd -B` writes. */
export async function bcrypt(password: string): Promise<string> {
  const hash = await Bun.password.hash(password, { algorithm: "bcrypt", cost: 4 });
  return hash.replace(/^\$2b\$/, "$2y$");
}

/** Writes an htpasswd file (0600) of `users` (name -> password) into `dir`; returns its path. */
export async function writeHtpasswd(dir: string, users: Record<string, string>, name = "htpasswd"): Promise<string> {
  const path = join(dir, name);
  const lines = await Promise.all(Object.entries(users).map(async ([u, p]) => `${u}:${await bcrypt(p)}`));
  writeFileSync(path, `${lines.join("\n")}\n`, { mode: 0o600 });
  return path;
}

/** Validates TOML into a Config; throws on any problem. */
export function configOf(toml: string): Config {
  const { config, problems } = validate(parse(toml) as Record<string, unknown>);
  if (problems.length > 0) throw new Error(`config problems: ${problems.join("; ")}`);
  return config;
}

/** `Authorization: Basic ...` for user and password. */
export function basic(user: string, password: string): Record<string, string> {
  return { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` };
}
