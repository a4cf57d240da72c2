/**
 * Builds authentication and authorization from the configuration (the composition root
 * calls {@link setupAuth}), and applies a re-read configuration (SIGHUP, a changed config
 * file). Without `[auth] htpasswd` and without `[[access]]` rules nothing here is built:
 * berth is open as before, and a warning is logged when it listens on a non-loopback address.
 *
 * The other identity sources plug in on the returned object: `chain.register(source)` for
 * password sources (API keys, LDAP), `front.tokenEndpoint` + `authenticator.options.tokens`
 * (set through {@link AuthSetup.plug}) for the token service, `clientCert`, and `events`.
 */
import { Access } from "../access/access";
import { compilePolicy, type Policy } from "../access/policy";
import { ConfigError } from "../config/load";
import type { Config } from "../config/schema";
import type { FrontAuth } from "../http/app";
import type { V2Auth } from "../http/v2";
import type { Logger } from "../log";
import { Authenticator, type AuthenticatorOptions, type UiSessionSlot } from "./authenticator";
import { AuthChain } from "./chain";
import type { AuthEvents, ClientCertIdentity, TokenEndpoint, TokenVerifier } from "./hooks";
import { warnIfExposed } from "./exposure";
import { HtpasswdSource } from "./htpasswd";

/** True when the configuration turns authentication on. */
export function authEnabled(config: Config): boolean {
  return config.auth.htpasswd !== "" || config.access.length > 0 || config.auth.ldap !== null;
}

/** The policy a configuration describes. */
export function policyOf(config: Config): Policy {
  const a = config.auth;
  return compilePolicy(config.access, {
    admins: a.admins,
    adminGroups: a.admin_groups,
    metricsUsers: a.metrics,
    metricsGroups: a.metrics_groups,
    metricsAnonymous: a.metrics_anonymous,
  });
}

/** What other parts plug in (each optional). */
export interface AuthPlugins {
  tokens?: TokenVerifier;
  tokenEndpoint?: TokenEndpoint;
  clientCert?: ClientCertIdentity;
  events?: AuthEvents;
}

/** Authentication and authorization as built from the configuration. */
export interface AuthSetup {
  chain: AuthChain;
  access: Access;
  htpasswd: HtpasswdSource | undefined;
  /** For the HTTP front (createApp's `auth`). */
  front: FrontAuth;
  /** For the /v2 handler (createV2Handler's `auth`). */
  v2: V2Auth;
  /** Plugs in a token verifier and endpoint, a client-certificate hook, an observer (before the server starts). */
  plug(plugins: AuthPlugins): void;
  /** Applies a re-read configuration; a part that cannot be applied keeps the running one (logged). */
  reload(next: Config): void;
}

/**
 * Builds authentication from `config`; undefined when it is off. Throws a ConfigError (key
 * `auth.htpasswd`) when the htpasswd file cannot be used: missing, open to group or others,
 * or holding a line that is not bcrypt.
 */
export function setupAuth(config: Config, log: Logger, adminToken: string | undefined): AuthSetup | undefined {
  if (!authEnabled(config)) {
    warnIfExposed(config.http.address, false, log);
    return undefined;
  }
  let htpasswd: HtpasswdSource | undefined;
  if (config.auth.htpasswd !== "") {
    try {
      htpasswd = new HtpasswdSource(config.auth.htpasswd, log, { groups: config.auth.groups, cacheTtlMs: config.auth.credential_cache * 1000 });
    } catch (err) {
      throw new ConfigError("auth.htpasswd", [(err as Error).message]);
    }
  }
  const chain = new AuthChain(htpasswd ? [htpasswd] : []);
  const access = new Access(policyOf(config));
  // the web UI's sessions (auth/uisession.ts, loaded on the first UI login): an API key's end ends its sessions
  const sessions: UiSessionSlot | undefined = config.ui.enabled
    ? { idle: config.ui.session_ttl, keyActive: (id) => (chain.source("apikey") as { isActive?(id: string): boolean } | undefined)?.isActive?.(id) ?? false }
    : undefined;
  const options: AuthenticatorOptions = { chain, realm: config.auth.realm, ...(adminToken !== undefined ? { adminToken } : {}), ...(sessions ? { sessions } : {}) };
  let authenticator = new Authenticator(options);
  const front: FrontAuth = { authenticator, access, ...(sessions ? { uiSessions: sessions } : {}) };
  const v2: V2Auth = { access, challenge: (req, scope) => front.authenticator.challenge(req, scope), maxOwners: 2 * config.storage.max_uploads };
  const htpasswdPath = config.auth.htpasswd;
  if (config.access.length === 0) log.warn("[auth] is configured but there are no [[access]] rules: only admins may do anything");
  return {
    chain,
    access,
    htpasswd,
    front,
    v2,
    plug(plugins) {
      if (plugins.tokens) options.tokens = plugins.tokens;
      if (plugins.clientCert) options.clientCert = plugins.clientCert;
      if (plugins.events) {
        options.events = plugins.events;
        v2.events = plugins.events;
      }
      if (plugins.tokenEndpoint) front.tokenEndpoint = plugins.tokenEndpoint;
      authenticator = new Authenticator(options);
      front.authenticator = authenticator;
    },
    reload(next) {
      if (!authEnabled(next)) {
        log.error("reload: the new configuration turns authentication off; that needs a restart, keeping the running policy");
        return;
      }
      access.replace(policyOf(next));
      htpasswd?.setGroups(next.auth.groups);
      if (next.auth.htpasswd !== htpasswdPath) log.error("reload: a new [auth] htpasswd path needs a restart; keeping the running file", { running: htpasswdPath });
      else htpasswd?.refresh(true);
      log.info("access policy reloaded", { rules: next.access.length });
    },
  };
}
