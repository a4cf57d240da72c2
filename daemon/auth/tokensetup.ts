/**
 * Builds the token service, its verifier and the API key store from `[auth.token]` and
 * `[auth.apikeys]` (daemon/config/tokenauth.ts), for the composition root; each piece only
 * when it is enabled, so a configuration without them loads none of this.
 */
import { join } from "node:path";
import type { ApiKeysConfig, TokenConfig } from "../config/tokenauth";
import { ApiKeyStore } from "./apikeys";
import type { SigningKey } from "./jwt";
import { loadOrCreateSigningKey } from "./tokenkey";
import { type Authorize, createTokenService, type PasswordCheck, type TokenHandler } from "./tokenservice";
import { createTokenVerifier, type JwtVerifier } from "./tokenverifier";

/** What the composition root gets: each piece only when configured on. */
export interface TokenAuth {
  /** The API key store (a PasswordSource for the chain), when `[auth.apikeys] enabled`. */
  apiKeys?: ApiKeyStore;
  /** When `[auth.token] enabled`. */
  token?: {
    key: SigningKey;
    config: TokenConfig;
    /** `GET`/`POST /auth/token`; `front`: the identity the HTTP front decided (see tokenservice.ts). */
    handle: TokenHandler;
    verifier: JwtVerifier;
  };
  /** Flushes last-use times and stops timers. */
  close(): void;
}

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
      verifier: createTokenVerifier({ keys: [key], issuer, service, realm: o.token.realm, ...(apiKeys && { keyActive: (id: string) => apiKeys.isActive(id) }) }),
    };
  } catch (err) {
    apiKeys?.close();
    throw err;
  }
  return out;
}
