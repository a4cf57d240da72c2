/**
 * Importing a Grype database: plain .db, tar.gz and tar.zst archives with Grype's checksum
 * file, schema v5; and every refusal (not SQLite, corrupt pages, a SQLite file of another
 * schema, a checksum mismatch, an archive without the database) keeps the old database in
 * service and leaves no file behind.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { VulnDbStore, ImportError } from "../../daemon/cve/store";
import { makeTemp, runOk } from "../helpers/clients";
import { type FixtureAdvisory, writeGrypeV5, writeGrypeV6 } from "./grypedb";

setDefaultTimeout(30_000);

let work: string;
const ADV: FixtureAdvisory[] = [
  { vuln: "CVE-2024-0001", provider: "debian", severity: "high", os: { name: "debian", releaseId: "debian", major: "12" }, ecosystem: "deb", pkg: "dpkg", format: "dpkg", constraint: "< 9", fix: "9" },
];

beforeAll(() => {
  work = makeTemp("berth-cve-db-");
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const fileStream = (path: string) => Bun.file(path).stream() as ReadableStream<Uint8Array>;

function fresh(name: string): VulnDbStore {
  const root = join(work, name);
  mkdirSync(root, { recursive: true });
  return new VulnDbStore(root, 1 << 30);
}

/** An archive as Grype publishes it: vulnerability.db and import.json (xxh64 of the db). */
async function archive(dir: string, db: string, compress: "gzip" | "zstd", digest?: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "vulnerability.db"), readFileSync(db));
  const sum = digest ?? `xxh64:${Bun.hash.xxHash64(readFileSync(db)).toString(16).padStart(16, "0")}`;
  writeFileSync(join(dir, "import.json"), JSON.stringify({ digest: sum, client_version: "6.0.2" }));
  const out = `${dir}.tar`;
  await runOk(["tar", "-C", dir, "-cf", out, "vulnerability.db", "import.json"]);
  await runOk([compress, "-q", "-f", out]);
  return `${out}.${compress === "gzip" ? "gz" : "zst"}`;
}

describe("importing a Grype database", () => {
  test("a plain v6 .db: schema and build date shown", async () => {
    const store = fresh("plain");
    const db = join(work, "plain.db");
    writeGrypeV6(db, ADV);
    const info = await store.import(fileStream(db));
    expect(info).toEqual({ schema: 6, schemaVersion: "6.0.2", built: "2026-11-30T04:12:01.000Z" });
    expect(store.status()).toMatchObject({ present: true, schema: 6, built: "2026-11-30T04:12:01.000Z", checksum: "absent" });
    store.close();
  });

  for (const compress of ["gzip", "zstd"] as const) {
    test(`a ${compress === "gzip" ? "tar.gz" : "tar.zst"} archive with import.json: checksum verified`, async () => {
      const store = fresh(`arch-${compress}`);
      const db = join(work, `arch-${compress}.db`);
      writeGrypeV6(db, ADV);
      await store.import(fileStream(await archive(join(work, `a-${compress}`), db, compress)));
      expect(store.status()).toMatchObject({ present: true, schema: 6, checksum: "verified" });
      store.close();
    });
  }

  test("a v5 database", async () => {
    const store = fresh("v5");
    const db = join(work, "v5.db");
    writeGrypeV5(db, ADV);
    expect(await store.import(fileStream(db))).toEqual({ schema: 5, schemaVersion: "5", built: "2026-11-29T04:00:00.000Z" });
    store.close();
  });

  describe("refusals keep the old database and leave nothing behind", () => {
    let store: VulnDbStore;
    beforeAll(async () => {
      store = fresh("refuse");
      const db = join(work, "good.db");
      writeGrypeV6(db, ADV);
      await store.import(fileStream(db));
    });
    afterAll(() => store.close());

    async function refused(bytes: Uint8Array | string, message: RegExp) {
      const file = join(work, `bad-${Math.random().toString(36).slice(2)}`);
      writeFileSync(file, bytes);
      const err = await store.import(fileStream(file)).catch((e) => e);
      expect(err).toBeInstanceOf(ImportError);
      expect(String(err.message)).toMatch(message);
      // the old database still answers, and no incoming file is left
      expect(store.status()).toMatchObject({ present: true, built: "2026-11-30T04:12:01.000Z" });
      expect(store.db!.advisories({ name: "debian", major: "12", minor: "" }, store.db!.osIds({ name: "debian", major: "12", minor: "" }), "deb", "dpkg").length).toBe(1);
      expect(readdirSync(store.dir)).toEqual(["vulnerability.db"]);
    }

    test("random bytes", () => refused(new Uint8Array(5000).fill(3), /neither a SQLite database nor a tar/));
    test("a SQLite file of another schema", async () => {
      const other = join(work, "other.db");
      const d = new Database(other, { create: true });
      d.exec("CREATE TABLE notes (x)");
      d.close();
      await refused(readFileSync(other), /not a Grype vulnerability database/);
    });
    test("a v6 database missing a required table", async () => {
      const db = join(work, "missing.db");
      writeGrypeV6(db, ADV);
      const d = new Database(db);
      d.exec("DROP TABLE affected_package_handles");
      d.close();
      await refused(readFileSync(db), /lacks the schema v6 tables "affected_package_handles"/);
    });
    test("a database of an unknown model", async () => {
      const db = join(work, "model7.db");
      writeGrypeV6(db, ADV);
      const d = new Database(db);
      d.exec("UPDATE db_metadata SET model = 7");
      d.close();
      await refused(readFileSync(db), /schema model 7/);
    });
    test("corrupt pages", async () => {
      const db = join(work, "corrupt.db");
      writeGrypeV6(db, ADV);
      const bytes = new Uint8Array(readFileSync(db));
      // keep the header and the schema page, scribble over the table pages
      for (let i = 4096 * 2; i < bytes.length; i++) bytes[i] = (i * 7) & 255;
      await refused(bytes, /integrity check|cannot be read|malformed|not a database/);
    });
    test("a checksum mismatch", async () => {
      const db = join(work, "sum.db");
      writeGrypeV6(db, ADV);
      await refused(readFileSync(await archive(join(work, "sum"), db, "gzip", "xxh64:0000000000000000")), /does not match the archive's checksum/);
    });
    test("an archive without vulnerability.db", async () => {
      const dir = join(work, "empty-arch");
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "README"), "x");
      await runOk(["tar", "-C", dir, "-czf", `${dir}.tar.gz`, "README"]);
      await refused(readFileSync(`${dir}.tar.gz`), /holds no vulnerability.db/);
    });
  });
});
