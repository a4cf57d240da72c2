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
 * auth/tokensetup.ts builds the token service and the key store from them.
 */

/** Seconds in "90s" / "5m" / "12h" / "1d" / a plain integer (this module stays free of schema.ts, which imports it). */
function seconds(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value === "bigint") return value >= 0n && value <= 1_000_000_000n ? Number(value) : undefined;
  const m = typeof value === "string" ? /^\s*(\d+)\s*([smhd]?)\s*$/.exec(value) : null;
  return m ? Number(m[1]) * { "": 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as "" | "s" | "m" | "h" | "d"] : undefined;
}

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
    const s = seconds(t.expiry);
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
    const s = seconds(t.flush_interval);
    if (s === undefined || s < 1 || s > 86_400) problems.push(`${key}.flush_interval: ${JSON.stringify(t.flush_interval)} is not a duration between 1s and 1d`);
    else out.flush_interval = s;
  }
  return out;
}
