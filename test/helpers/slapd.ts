/**
 * A real OpenLDAP server (Debian `slapd`, `ldap-utils`) for tests: its own slapd.conf (mdb
 * backend, memberof overlay, TLS with a test CA's server certificate) and database in a temp
 * directory, listening on 127.0.0.1 at ports found free (slapd cannot take port 0: a port is
 * picked by binding a socket and closing it, and the start is retried when slapd loses the
 * race), seeded with ldapadd, run in the foreground with stats logging on stderr (so tests
 * can count binds), and stopped by PID. `await using` releases it.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

/** The directory's suffix, its admin and the service account berth binds as. */
export const SUFFIX = "dc=berth,dc=test";
export const ADMIN_DN = `cn=admin,${SUFFIX}`;
export const ADMIN_PASSWORD = "admin-secret";
export const SERVICE_DN = `cn=berth,ou=services,${SUFFIX}`;
export const SERVICE_PASSWORD = "service-secret";

/** A user to seed: uid, password and the groups (cn under ou=groups) they belong to. */
export interface LdapUser {
  uid: string;
  password: string;
  groups?: string[];
}

/** A running slapd. */
export interface Slapd extends AsyncDisposable {
  /** ldap://127.0.0.1:<port> (plain; StartTLS offered). */
  readonly url: string;
  /** ldaps://localhost:<port>. */
  readonly ldapsUrl: string;
  /** ldap://localhost:<port>, for StartTLS with certificate name checks. */
  readonly startTlsUrl: string;
  readonly proc: Subprocess;
  /** Everything slapd logged so far. */
  logs(): string;
  /** BIND operations received so far (each `BIND dn="..." method=` line of the stats log). */
  binds(): number;
  /** Stops slapd (SIGTERM, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
}

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function ldif(users: LdapUser[]): string {
  const groups = new Map<string, string[]>();
  for (const u of users) for (const g of u.groups ?? []) groups.set(g, [...(groups.get(g) ?? []), `uid=${u.uid},ou=people,${SUFFIX}`]);
  const out = [
    `dn: ${SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: berth test\ndc: berth`,
    `dn: ou=people,${SUFFIX}\nobjectClass: organizationalUnit\nou: people`,
    `dn: ou=groups,${SUFFIX}\nobjectClass: organizationalUnit\nou: groups`,
    `dn: ou=services,${SUFFIX}\nobjectClass: organizationalUnit\nou: services`,
    `dn: ${SERVICE_DN}\nobjectClass: person\ncn: berth\nsn: berth\nuserPassword: ${SERVICE_PASSWORD}`,
    ...users.map((u) => `dn: uid=${u.uid},ou=people,${SUFFIX}\nobjectClass: inetOrgPerson\nuid: ${u.uid}\ncn: ${u.uid}\nsn: ${u.uid}\nuserPassword: ${u.password}`),
    ...[...groups].map(([g, members]) => `dn: cn=${g},ou=groups,${SUFFIX}\nobjectClass: groupOfNames\ncn: ${g}\n${members.map((m) => `member: ${m}`).join("\n")}`),
  ];
  return `${out.join("\n\n")}\n`;
}

function config(dir: string, tls: { ca: string; cert: string; key: string }): string {
  return [
    "include /etc/ldap/schema/core.schema",
    "include /etc/ldap/schema/cosine.schema",
    "include /etc/ldap/schema/inetorgperson.schema",
    "modulepath /usr/lib/ldap",
    "moduleload back_mdb",
    "moduleload memberof",
    `pidfile ${join(dir, "slapd.pid")}`,
    `TLSCACertificateFile ${tls.ca}`,
    `TLSCertificateFile ${tls.cert}`,
    `TLSCertificateKeyFile ${tls.key}`,
    "database mdb",
    `suffix "${SUFFIX}"`,
    `rootdn "${ADMIN_DN}"`,
    `rootpw ${ADMIN_PASSWORD}`,
    `directory ${join(dir, "db")}`,
    "maxsize 16777216",
    "overlay memberof",
    "access to attrs=userPassword by anonymous auth by * none",
    "access to * by users read by * none",
    "",
  ].join("\n");
}

async function run(cmd: string[]): Promise<{ code: number; err: string }> {
  const p = Bun.spawn(cmd, { stdout: "ignore", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  return { code, err };
}

/** Starts slapd with `users` (and the service account), TLS from the given server certificate. */
export async function startSlapd(users: LdapUser[], tls: { ca: string; cert: string; key: string }): Promise<Slapd> {
  const dir = mkdtempSync(join(tmpdir(), "berth-slapd-"));
  mkdirSync(join(dir, "db"));
  writeFileSync(join(dir, "slapd.conf"), config(dir, tls));
  writeFileSync(join(dir, "seed.ldif"), ldif(users));
  for (let attempt = 1; ; attempt++) {
    const [port, tlsPort] = [await freePort(), await freePort()];
    const urls = `ldap://127.0.0.1:${port}/ ldaps://127.0.0.1:${tlsPort}/`;
    const proc = Bun.spawn(["/usr/sbin/slapd", "-d", "stats", "-f", join(dir, "slapd.conf"), "-h", urls], { stdout: "ignore", stderr: "pipe", stdin: "ignore" });
    let logs = "";
    let exited = false;
    void proc.exited.then(() => (exited = true));
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) logs += decoder.decode(chunk, { stream: true });
    })();
    const stop = async () => {
      if (!exited) proc.kill("SIGTERM");
      const killer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await proc.exited;
      clearTimeout(killer);
    };
    // Ready once ldapadd can seed it; give up after ~10 s or when slapd exits.
    let seeded: { code: number; err: string } = { code: -1, err: "" };
    for (let i = 0; i < 100 && !exited; i++) {
      seeded = await run(["ldapadd", "-x", "-H", `ldap://127.0.0.1:${port}`, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD, "-f", join(dir, "seed.ldif")]);
      if (seeded.code === 0 || !/Can't contact LDAP server/.test(seeded.err)) break;
      await Bun.sleep(100);
    }
    if (seeded.code !== 0) {
      await stop();
      if (attempt < 5 && /Address already in use|bind\(.*\) failed/i.test(logs)) continue;
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`slapd did not start or could not be seeded (ldapadd: ${seeded.err.trim()}):\n${logs.slice(-2000)}`);
    }
    return {
      url: `ldap://127.0.0.1:${port}`,
      ldapsUrl: `ldaps://localhost:${tlsPort}`,
      startTlsUrl: `ldap://localhost:${port}`,
      proc,
      logs: () => logs,
      binds: () => (logs.match(/ BIND dn="[^"]*" method=/g) ?? []).length,
      stop,
      async [Symbol.asyncDispose]() {
        await stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}
