/**
 * `[auth.ldap]`, `[auth.mtls]` and `[http] tls_client_ca`: defaults, required keys, refusals
 * (clear-text LDAP to another host, start_tls with ldaps://, a filter without {user}, unknown
 * keys, bad enums), and the file checks of `berth config check` (CA files, a bind password
 * file open to others).
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "smol-toml";
import { parseConfig } from "../../daemon/config/load";
import { validate } from "../../daemon/config/schema";
import { checkPaths } from "../../daemon/config/verify";
import { tempDir } from "../helpers/daemon";
import { makePki } from "../helpers/pki";

const problemsOf = (toml: string) => validate(parse(toml) as Record<string, unknown>).problems;
const LDAP = `[auth.ldap]\nurl = "ldaps://ldap.example:636"\nbind_dn = "cn=berth,dc=example"\nbind_password_file = "/etc/berth/ldap.pw"\nbase_dn = "dc=example"\n`;

describe("[auth.ldap] and [auth.mtls]", () => {
  test("defaults are filled in; absent tables are off", () => {
    const { config, problems } = validate(parse(`${LDAP}timeout = "500ms"\n`) as Record<string, unknown>);
    expect(problems).toEqual([]);
    expect(config.auth.ldap).toEqual({
      url: "ldaps://ldap.example:636",
      start_tls: false,
      ca_file: "",
      bind_dn: "cn=berth,dc=example",
      bind_password_file: "/etc/berth/ldap.pw",
      base_dn: "dc=example",
      user_filter: "(uid={user})",
      name_attribute: "uid",
      group_attribute: "memberOf",
      cache_ttl_ms: 60_000,
      cache_entries: 1024,
      timeout_ms: 500,
    });
    expect(config.auth.mtls).toEqual({ identity: "cn", groups: "none" });
    expect(validate({}).config.auth.ldap).toBeNull();
  });

  test("bad LDAP settings are refused, naming the key", () => {
    expect(problemsOf(`[auth.ldap]\nurl = "ldaps://x"\n`)).toEqual(["auth.ldap.bind_dn: required", "auth.ldap.bind_password_file: required", "auth.ldap.base_dn: required"]);
    expect(problemsOf(LDAP.replace("ldaps://ldap.example:636", "ldap://ldap.example"))[0]).toContain("auth.ldap.start_tls: passwords would cross the network in clear");
    expect(problemsOf(LDAP.replace("ldaps://ldap.example:636", "ldap://127.0.0.1:389"))).toEqual([]);
    expect(problemsOf(`${LDAP}start_tls = true\n`)[0]).toContain("applies to ldap:// urls only");
    expect(problemsOf(`${LDAP}user_filter = "(uid=alice)"\n`)[0]).toContain("must contain {user}");
    expect(problemsOf(`${LDAP}timeout = 0\n`)[0]).toContain("auth.ldap.timeout: expected a duration");
    expect(problemsOf(`${LDAP}bind_password = "x"\n`)).toEqual(["auth.ldap.bind_password: unknown key"]);
    expect(problemsOf(LDAP.replace("ldaps://ldap.example:636", "http://x"))[0]).toContain("must be ldap://host[:port] or ldaps://host[:port]");
  });

  test("[auth.mtls] takes the name and group fields from fixed lists", () => {
    expect(validate(parse(`[auth.mtls]\nidentity = "san-uri"\ngroups = "ou"\n`) as Record<string, unknown>).config.auth.mtls).toEqual({ identity: "san-uri", groups: "ou" });
    expect(problemsOf(`[auth.mtls]\nidentity = "subject"\n`)[0]).toContain('auth.mtls.identity: expected one of "cn", "san-dns", "san-uri", "san-email"');
    expect(() => parseConfig(`[http]\ntls_client_ca = "/x.pem"\n`, "berth.toml")).toThrow("http.tls_client_ca: needs http.tls_cert and http.tls_key (client certificates are asked for over HTTPS only)");
  });

  test("config check reads the CA files and refuses a bind password file open to others", () => {
    using dir = tempDir();
    using pki = makePki();
    const pw = join(dir.path, "ldap.pw");
    writeFileSync(pw, "x\n");
    chmodSync(pw, 0o644);
    const notCa = join(dir.path, "not-a-cert.pem");
    writeFileSync(notCa, "hello\n");
    const toml = `[http]\ntls_cert = "${pki.server.cert}"\ntls_key = "${pki.server.key}"\ntls_client_ca = "${notCa}"\n[storage]\nroot = "${dir.path}"\n${LDAP.replace("/etc/berth/ldap.pw", pw)}ca_file = "${pki.ca}"\n`;
    const { config, problems } = validate(parse(toml) as Record<string, unknown>);
    expect(problems).toEqual([]);
    const found = checkPaths(config);
    expect(found).toContain(`http.tls_client_ca: "${notCa}" holds no PEM certificate`);
    expect(found).toContain(`auth.ldap.bind_password_file: "${pw}" is readable or writable by group or others (mode 644); run chmod 600 "${pw}"`);
    expect(found.some((p) => p.startsWith("auth.ldap.ca_file"))).toBe(false);
  });
});
