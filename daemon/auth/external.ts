/**
 * Plugs the directory and certificate identities into the core's authentication (auth/
 * setup.ts): an {@link LdapSource} registered on the AuthChain after htpasswd when
 * `[auth.ldap]` is set, and a {@link ClientCertIdentity} as the client-certificate hook when
 * `[http] tls_client_ca` is set. Neither is loaded, nor costs anything per request, when
 * its configuration is absent. Changing either needs a restart (a reload logs so).
 */
import type { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError } from "../config/load";
import type { Config } from "../config/schema";
import type { Logger } from "../log";
import type { LdapSource } from "./ldap";
import { ClientCertIdentity, parsePemCertificates } from "./mtls";
import type { AuthSetup } from "./setup";

/** What {@link plugExternalIdentities} built (for tests and the start-up log). */
export interface ExternalIdentities {
  ldap?: LdapSource;
  clientCert?: ClientCertIdentity;
}

/**
 * Builds and plugs in LDAP and client certificates as the configuration asks. Throws a
 * ConfigError naming the key when the bind password file or the CA file cannot be used.
 */
export async function plugExternalIdentities(auth: AuthSetup, config: Config, log: Logger): Promise<ExternalIdentities> {
  const out: ExternalIdentities = {};
  const l = config.auth.ldap;
  if (l) {
    // ldapts is loaded only when LDAP is configured
    const { LdapSource, readBindPassword } = await import("./ldap");
    let bindPassword: string;
    try {
      bindPassword = readBindPassword(l.bind_password_file);
    } catch (err) {
      throw new ConfigError("auth.ldap.bind_password_file", [(err as Error).message]);
    }
    try {
      out.ldap = new LdapSource({
        url: l.url,
        startTls: l.start_tls,
        ...(l.ca_file ? { caFile: l.ca_file } : {}),
        bindDn: l.bind_dn,
        bindPassword,
        baseDn: l.base_dn,
        userFilter: l.user_filter,
        nameAttribute: l.name_attribute,
        groupAttribute: l.group_attribute,
        cacheTtlMs: l.cache_ttl_ms,
        cacheMax: l.cache_entries,
        timeoutMs: l.timeout_ms,
        warn: (msg, fields) => log.warn(msg, fields),
      });
    } catch (err) {
      throw new ConfigError("auth.ldap", [(err as Error).message]);
    }
    auth.chain.register(out.ldap);
    log.info("LDAP password source enabled", { url: l.url, start_tls: l.start_tls, base_dn: l.base_dn });
  }
  if (config.http.tls_client_ca) {
    let issuers: X509Certificate[];
    try {
      issuers = parsePemCertificates(readFileSync(config.http.tls_client_ca, "utf8"));
    } catch (err) {
      throw new ConfigError("http.tls_client_ca", [`Cannot read the CA certificates in "${config.http.tls_client_ca}" (${(err as Error).message})`]);
    }
    if (issuers.length === 0) throw new ConfigError("http.tls_client_ca", [`"${config.http.tls_client_ca}" holds no PEM certificate`]);
    out.clientCert = new ClientCertIdentity({ identity: config.auth.mtls.identity, groups: config.auth.mtls.groups, issuers });
    auth.plug({ clientCert: out.clientCert });
    log.info("client certificates are identities", { ca: config.http.tls_client_ca, identity: config.auth.mtls.identity, groups: config.auth.mtls.groups });
  }
  return out;
}
