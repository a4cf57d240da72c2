/**
 * The client's credentials file (review of the client): written through a fresh file that
 * no one else planted, never through a symbolic link at its temporary name, and mode 0600.
 */
import { expect, test } from "bun:test";
import { lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readCredentials, writeCredentials } from "../../daemon/client/credentials";

test("a symbolic link planted at the temporary name is not written through", () => {
  const dir = mkdtempSync(join(tmpdir(), "berth-cred-"));
  try {
    const victim = join(dir, "victim");
    writeFileSync(victim, "precious\n", { mode: 0o644 });
    const path = join(dir, "credentials.json");
    symlinkSync(victim, `${path}.${process.pid}.tmp`);
    writeCredentials({ registries: { edge: { url: "https://edge:5000", password: "s3cret" } } }, path);
    expect(readFileSync(victim, "utf8")).toBe("precious\n");
    expect(statSync(victim).mode & 0o777).toBe(0o644);
    expect(lstatSync(path).isSymbolicLink()).toBe(false);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readCredentials(path).registries.edge!.password).toBe("s3cret");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
