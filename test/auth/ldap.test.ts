/**
 * LdapSource against a real slapd (test/helpers/slapd.ts): good and bad passwords, unknown
 * users, filter injection, empty passwords, the cache (hits never reach the server; a
 * different password always does), shared concurrent checks, StartTLS and LDAPS with the
 * test CA, a refused service account, and a stopped or hung server answering `unavailable`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { escapeFilterValue, groupName, type LdapOptions, LdapSource, readBindPassword } from "../../daemon/auth/ldap";
import { makePki, type Pki } from "../helpers/pki";
import { SERVICE_DN, SERVICE_PASSWORD, SUFFIX, type Slapd, startSlapd } from "../helpers/slapd";

let pki: Pki;
let slapd: Slapd;
const warnings: string[] = [];

beforeAll(async () => {
  pki = makePki();
  slapd = await startSlapd(
    [
      { uid: "alice", password: "alice-pw", groups: ["ci", "viewers"] },
      { uid: "bob", password: "bob-pw" },
      { uid: "carl", password: "carl-pw" },
      { uid: "dora", password: "dora-pw" },
    ],
    { ca: pki.ca, ...pki.server },
  );
});
afterAll(async () => {
  await slapd?.[Symbol.asyncDispose]();
  pki?.[Symbol.dispose]();
});

function source(over: Partial<LdapOptions> = {}): LdapSource {
  return new LdapSource({
    url: slapd.url,
    startTls: false,
    bindDn: SERVICE_DN,
    bindPassword: SERVICE_PASSWORD,
    baseDn: `ou=people,${SUFFIX}`,
    userFilter: "(&(objectClass=inetOrgPerson)(uid={user}))",
    nameAttribute: "uid",
    groupAttribute: "memberOf",
    cacheTtlMs: 60_000,
    cacheMax: 100,
    timeoutMs: 3000,
    warn: (msg, fields) => warnings.push(`${msg} ${JSON.stringify(fields)}`),
    ...over,
  });
}

describe("LdapSource against slapd", () => {
  test("a good password is ok, with groups from memberOf", async () => {
    expect(await source().verify("alice", "alice-pw")).toEqual({ kind: "ok", principal: { name: "alice", groups: ["ci", "viewers"], source: "ldap" } });
    expect(await source().verify("bob", "bob-pw")).toEqual({ kind: "ok", principal: { name: "bob", groups: [], source: "ldap" } });
  });

  test("the principal is named by the entry's uid, not the case typed", async () => {
    const v = await source().verify("ALICE", "alice-pw");
    expect(v.kind === "ok" && v.principal.name).toBe("alice");
  });

  test("a bad password is denied, an unknown user is unknown", async () => {
    expect((await source().verify("alice", "wrong")).kind).toBe("denied");
    expect((await source().verify("carol", "alice-pw")).kind).toBe("unknown");
  });

  test("filter injection matches nothing", async () => {
    for (const user of ["*)(uid=*", "*", "alice)(|(uid=*", "al*"]) {
      expect((await source().verify(user, "alice-pw")).kind).toBe("unknown");
    }
    expect(escapeFilterValue("*)(uid=*\\\0é")).toBe("\\2a\\29\\28uid=\\2a\\5c\\00\\c3\\a9");
  });

  test("an empty password never binds", async () => {
    const before = slapd.binds();
    expect((await source().verify("alice", "")).kind).toBe("denied");
    expect(slapd.binds()).toBe(before);
  });

  test("a cached success does not contact the server; another password does", async () => {
    const s = source();
    expect((await s.verify("alice", "alice-pw")).kind).toBe("ok");
    const before = slapd.binds();
    // With slapd frozen, only an answer that never asked it can be ok.
    process.kill(slapd.proc.pid, "SIGSTOP");
    try {
      expect((await s.verify("alice", "alice-pw")).kind).toBe("ok");
    } finally {
      process.kill(slapd.proc.pid, "SIGCONT");
    }
    expect(s.cached("alice", "alice-pw")?.kind).toBe("ok");
    expect(s.cached("alice", "other")).toBeUndefined();
    expect((await s.verify("alice", "other")).kind).toBe("denied");
    expect(slapd.binds()).toBeGreaterThan(before);
    expect(s.cacheSize()).toBe(1);
  });

  test("an expired cache entry is checked again", async () => {
    let now = 1_000_000;
    const s = source({ cacheTtlMs: 1000, now: () => now });
    expect((await s.verify("bob", "bob-pw")).kind).toBe("ok");
    now += 2000;
    const before = slapd.binds();
    expect((await s.verify("bob", "bob-pw")).kind).toBe("ok");
    expect(slapd.binds()).toBeGreaterThan(before);
  });

  test("concurrent identical checks share one", async () => {
    const s = source();
    const userBinds = (uid: string) => (slapd.logs().match(new RegExp(` BIND dn="uid=${uid},[^"]*" method=`, "g")) ?? []).length;
    const all = await Promise.all(Array.from({ length: 5 }, () => s.verify("carl", "carl-pw")));
    expect(all.every((v) => v.kind === "ok")).toBe(true);
    // A later check as another user; once its bind is in the log, every earlier one is too.
    expect((await source().verify("dora", "dora-pw")).kind).toBe("ok");
    for (let i = 0; i < 100 && userBinds("dora") === 0; i++) await Bun.sleep(20);
    expect(userBinds("dora")).toBe(1);
    expect(userBinds("carl")).toBe(1);
  });

  test("StartTLS and LDAPS verify the server against the CA", async () => {
    expect((await source({ url: slapd.startTlsUrl, startTls: true, caFile: pki.ca }).verify("alice", "alice-pw")).kind).toBe("ok");
    expect((await source({ url: slapd.ldapsUrl, caFile: pki.ca }).verify("alice", "alice-pw")).kind).toBe("ok");
    expect((await source({ url: slapd.url, startTls: true, caFile: pki.ca }).verify("bob", "bob-pw")).kind).toBe("ok");
    // Without the CA the server's certificate is not trusted: fail closed.
    expect((await source({ url: slapd.startTlsUrl, startTls: true }).verify("alice", "alice-pw")).kind).toBe("unavailable");
    expect((await source({ url: slapd.ldapsUrl }).verify("alice", "alice-pw")).kind).toBe("unavailable");
  });

  test("a refused service account is unavailable, with a log line", async () => {
    warnings.length = 0;
    expect((await source({ bindPassword: "nope" }).verify("alice", "alice-pw")).kind).toBe("unavailable");
    expect(warnings.join("\n")).toContain("refused the service account");
  });

  test("a hung server answers unavailable after the timeout", async () => {
    process.kill(slapd.proc.pid, "SIGSTOP");
    try {
      const s = source({ timeoutMs: 300 });
      expect((await s.verify("alice", "alice-pw")).kind).toBe("unavailable");
    } finally {
      process.kill(slapd.proc.pid, "SIGCONT");
    }
  });
});

describe("LDAP helpers", () => {
  test("group DNs map to their first RDN's value", () => {
    expect(groupName("cn=ci,ou=groups,dc=x")).toBe("ci");
    expect(groupName("cn=a\\2c b\\, c,ou=g")).toBe("a, b, c");
    expect(groupName("CN=Ops Team+uid=x,ou=g")).toBe("Ops Team");
    expect(groupName("plain")).toBe("plain");
  });

  test("the bind password file must be private", () => {
    using pki2 = makePki();
    const file = join(pki2.dir, "bind.pw");
    writeFileSync(file, "s3cret\n", { mode: 0o644 });
    chmodSync(file, 0o644);
    expect(() => readBindPassword(file)).toThrow(/chmod 600/);
    chmodSync(file, 0o600);
    expect(readBindPassword(file)).toBe("s3cret");
  });
});

// Last: the server is stopped for good.
describe("LdapSource with the server down", () => {
  test("a stopped server is unavailable, logged", async () => {
    warnings.length = 0;
    await slapd.stop();
    expect((await source().verify("alice", "alice-pw")).kind).toBe("unavailable");
    expect(warnings.length).toBe(1);
  });
});
