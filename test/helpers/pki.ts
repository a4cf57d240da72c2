/**
 * Certificates for tests, made by the openssl command line in a temp directory: a CA, a
 * server certificate for localhost/127.0.0.1, client certificates signed by that CA (valid
 * or expired), and a second, foreign CA. Removed on dispose.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A certificate and its key, as PEM file paths. */
export interface CertFiles {
  cert: string;
  key: string;
}

/** Options for {@link Pki.client}. */
export interface ClientCertOptions {
  /** The subject, e.g. "/O=fleet/OU=line1/CN=device-1". */
  subject: string;
  /** subjectAltName entries, e.g. ["DNS:dev1.example", "URI:spiffe://x/y", "email:a@b"]. */
  san?: string[];
  /** Sign with the foreign CA instead of the test CA. */
  foreign?: boolean;
  /** Make a certificate whose validity ended in 2020. */
  expired?: boolean;
}

/** A test PKI in a temp directory. */
export interface Pki extends Disposable {
  readonly dir: string;
  /** The CA's certificate (PEM file). */
  readonly ca: string;
  /** A certificate for localhost and 127.0.0.1 signed by the CA. */
  readonly server: CertFiles;
  /** Makes a client certificate; `name` names its files. */
  client(name: string, options: ClientCertOptions): CertFiles;
}

function openssl(dir: string, args: string[]): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr.toString()}`);
}

/** Creates the CA, the foreign CA and the server certificate. */
export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), "berth-pki-"));
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(dir, ["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=berth test CA"]);
  openssl(dir, ["req", "-x509", ...ec, "-keyout", "foreign-ca.key", "-out", "foreign-ca.pem", "-days", "2", "-subj", "/CN=foreign CA"]);
  writeFileSync(join(dir, "ca.cnf"), "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\ncopy_extensions = copy\n[p]\ncommonName = supplied\n");
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "serial"), "1000\n");
  const sign = (name: string, subject: string, ext: string, issuer: string, expired: boolean): CertFiles => {
    openssl(dir, ["req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject]);
    writeFileSync(join(dir, `${name}.ext`), ext);
    if (expired) {
      openssl(dir, ["ca", "-batch", "-config", "ca.cnf", "-cert", `${issuer}.pem`, "-keyfile", `${issuer}.key`, "-in", `${name}.csr`, "-out", `${name}.pem`, "-notext", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-extfile", `${name}.ext`]);
    } else {
      openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", `${issuer}.pem`, "-CAkey", `${issuer}.key`, "-CAcreateserial", "-out", `${name}.pem`, "-days", "1", "-extfile", `${name}.ext`]);
    }
    return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  };
  const server = sign("server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n", "ca", false);
  return {
    dir,
    ca: join(dir, "ca.pem"),
    server,
    client(name, options) {
      const ext = `${options.san?.length ? `subjectAltName=${options.san.join(",")}\n` : ""}extendedKeyUsage=clientAuth\n`;
      return sign(name, options.subject, ext, options.foreign ? "foreign-ca" : "ca", options.expired ?? false);
    },
    [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }),
  };
}
