/**
 * Configuration of the token service and API keys, as two sub-tables of `[auth]`, checked by
 * the schema's custom-field hook (so daemon/config/schema.ts needs one line per table):
 *
 *   [auth.token]
 *   enabled  = false                 # true: 401s carry a Bearer challenge, /auth/token issues JWTs
 *   service  = "berth"               # the service name (the tokens' audience)
 *   issuer   = "berth"               # the tokens' `iss`
 *   realm    = ""                    # the token endpoint's external URL; "" = from the request's Host
 *   key_file = ""                    # PKCS#8 P-256 key; "" = <root>/.berth/token.key; created 0600
 *   expiry   = "5m"                  # token lifetime, 30 s - 1 h
 *
 *   [auth.apikeys]
 *   enabled        = true            # API keys in the password chain and /api/v1/keys
 *   flush_interval = "60s"           # how often last-use times are written
 *
 * And {@link setupTokenAuth} builds everything from it, for the composition root.
 */
import { join } from "node:path";
import { parseDuration } from "../config/schema";
import { ApiKeyStore } from "./apikeys";
import type { SigningKey } from "./jwt";
import { loadOrCreateSigningKey } from "./tokenkey";
import { type Authorize, createTokenService, type PasswordCheck } from "./tokenservice";
import { createTokenVerifier, type TokenVerifier } from "./tokenverifier";

/** `[auth.token]`. */
export interface TokenConfig {
  enabled: boolean;
  service: string;
  issuer: string;
  realm: string;
  key_file: string;
  /** Seconds. */
  expiry: number;
}

/** `[auth.apikeys]`. */
export interface ApiKeysConfig {
  enabled: boolean;
  /** Seconds. */
  flush_interval: number;
}

/** Defaults of `[auth.token]`. */
export const TOKEN_DEFAULTS: TokenConfig = { enabled: false, service: "berth", issuer: "berth", realm: "", key_file: "", expiry: 300 };
/** Defaults of `[auth.apikeys]`. */
export const APIKEYS_DEFAULTS: ApiKeysConfig = { enabled: true, flush_interval: 60 };

function table(value: unknown, key: string, problems: string[]): Record<string, unknown> | undefined {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    problems.push(`${key}: expected a table`);
    return undefined;
  }
  return value as Record<string, unknown>;
}

function unknownKeys(t: Record<string, unknown>, known: object, key: string, problems: string[]): void {
  for (const k of Object.keys(t)) if (!(k in known)) problems.push(`${key}.${k}: unknown key`);
}

/** The schema's custom check for `[auth.token]`. */
export function checkTokenConfig(value: unknown, key: string, problems: string[]): TokenConfig {
  const t = table(value, key, problems);
  const out = { ...TOKEN_DEFAULTS };
  if (!t) return out;
  unknownKeys(t, TOKEN_DEFAULTS, key, problems);
  if (t.enabled !== undefined) {
    if (typeof t.enabled === "boolean") out.enabled = t.enabled;
    else problems.push(`${key}.enabled: expected true or false`);
  }
  for (const k of ["service", "issuer", "realm", "key_file"] as const) {
    const v = t[k];
    if (v === undefined) continue;
    if (typeof v !== "string" || /["\\\u0000-\u001f]/.test(v)) problems.push(`${key}.${k}: expected a string without quotes, backslashes or control characters`);
    else out[k] = v;
  }
  if (out.service === "" || out.issuer === "") problems.push(`${key}: service and issuer must not be empty`);
  if (out.realm !== "" && !/^https?:\/\/[^\s]+$/.test(out.realm)) problems.push(`${key}.realm: "${out.realm}" is not an http(s) URL`);
  if (t.expiry !== undefined) {
    const s = parseDuration(t.expiry);
    if (s === undefined || s < 30 || s > 3600) problems.push(`${key}.expiry: ${JSON.stringify(t.expiry)} is not a duration between 30s and 1h`);
    else out.expiry = s;
  }
  return out;
}

/** The schema's custom check for `[auth.apikeys]`. */
export function checkApiKeysConfig(value: unknown, key: string, problems: string[]): ApiKeysConfig {
  const t = table(value, key, problems);
  const out = { ...APIKEYS_DEFAULTS };
  if (!t) return out;
  unknownKeys(t, APIKEYS_DEFAULTS, key, problems);
  if (t.enabled !== undefined) {
    if (typeof t.enabled === "boolean") out.enabled = t.enabled;
    else problems.push(`${key}.enabled: expected true or false`);
  }
  if (t.flush_interval !== undefined) {
    const s = parseDuration(t.flush_interval);
    if (s === undefined || s < 1 || s > 86_400) problems.push(`${key}.flush_interval: ${JSON.stringify(t.flush_interval)} is not a duration between 1s and 1d`);
    else out.flush_interval = s;
  }
  return out;
}

/** What the composition root gets: each piece only when configured on. */
export interface TokenAuth {
  /** The API key store (a PasswordSource for the chain), when `[auth.apikeys] enabled`. */
  apiKeys?: ApiKeyStore;
  /** When `[auth.token] enabled`. */
  token?: {
    key: SigningKey;
    config: TokenConfig;
    /** `GET`/`POST /auth/token`. */
    handle: (req: Request) => Promise<Response>;
    verifier: TokenVerifier;
  };
  /** Flushes last-use times and stops timers. */
  close(): void;
}

/** Where the token endpoint is mounted. */
export const TOKEN_PATH = "/auth/token";

/**
 * Builds the token service, its verifier and the API key store from the configuration.
 * `passwords` is the core's whole chain (htpasswd, LDAP, and the API key store returned here:
 * the chain is built after this call, hence a function); `authorize` is the policy.
 */
export async function setupTokenAuth(o: {
  root: string;
  token: TokenConfig;
  apikeys: ApiKeysConfig;
  passwords: PasswordCheck;
  authorize: Authorize;
}): Promise<TokenAuth> {
  const apiKeys = o.apikeys.enabled ? ApiKeyStore.open(join(o.root, ".berth", "apikeys.json"), { flushInterval: o.apikeys.flush_interval * 1000 }) : undefined;
  const out: TokenAuth = { apiKeys, close: () => apiKeys?.close() };
  if (!o.token.enabled) return out;
  try {
    const key = await loadOrCreateSigningKey(o.token.key_file || join(o.root, ".berth", "token.key"));
    const { service, issuer, expiry } = o.token;
    out.token = {
      key,
      config: o.token,
      handle: createTokenService({ key, issuer, service, ttl: expiry, passwords: o.passwords, authorize: o.authorize }),
      verifier: createTokenVerifier({ keys: [key], issuer, service, ...(apiKeys && { keyActive: (id: string) => apiKeys.isActive(id) }) }),
    };
  } catch (err) {
    apiKeys?.close();
    throw err;
  }
  return out;
}
