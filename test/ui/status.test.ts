/**
 * Signature and vulnerability status in the web UI (issue 12), in Debian's Chromium against a
 * real daemon with `[trust]` on (a key installed, cosign signatures pushed: one made with the
 * key, one with another) and `[cve]` on (a Grype v6 database imported, a Debian image scanned):
 * the repository page's badges (verified with the signer / unverified / unsigned; the highest
 * severity and count), and the image page's signature and its CVE list (CVEListForImage).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { launchChromium, screenshot, watchProblems } from "../helpers/browser";
import { Skopeo, makeTemp, waitFor } from "../helpers/clients";
import { type Daemon, startDaemon } from "../helpers/daemon";
import { ADVISORIES } from "../cve/advisories";
import { writeGrypeV6 } from "../cve/grypedb";
import { buildImage } from "../cve/images";
import { keyPair } from "../trust/fixtures";
import { pushCosignSignature, pushImage } from "../trust/push";

let work: string;
let berth: Daemon;
let skopeo: Skopeo;
let browser: Browser & AsyncDisposable;

async function digestOf(repo: string, ref: string): Promise<string> {
  const res = await fetch(`${berth.url}/v2/${repo}/manifests/${ref}`, { method: "HEAD", headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
  return res.headers.get("docker-content-digest")!;
}

beforeAll(async () => {
  work = makeTemp("berth-ui-status-");
  skopeo = new Skopeo();
  berth = await startDaemon({ extra: `[trust]\nenabled = true\nkeys_dir = "${join(work, "keys")}"\n[cve]\nenabled = true\n[scheduler]\njitter_ms = 0\n` });
  const release = keyPair("p256");
  const intruder = keyPair("p256");
  // a Debian image (dpkg's status file of this machine), signed with the installed key
  const deb = join(work, "deb");
  await buildImage(join(work, "deb-src"), deb, [{ files: { "etc/os-release": "ID=debian\nVERSION_ID=\"12\"\n", "var/lib/dpkg/status": readFileSync("/var/lib/dpkg/status") } }]);
  await skopeo.ok(["copy", "-q", "--dest-tls-verify=false", `oci:${deb}:v1`, `docker://${berth.host}/apps/deb:v1`]);
  const res = await fetch(`${berth.url}/api/v1/trust/keys?name=release.pub`, { method: "POST", body: release.publicPem, headers: { "Content-Type": "application/x-pem-file" } });
  expect(res.status).toBe(201);
  const signed = await digestOf("apps/deb", "v1");
  await pushCosignSignature(berth.url, "apps/deb", signed, release, signed);
  // another repository: one image signed with a key nobody trusts, one not signed at all
  const foreign = await pushImage(berth.url, "apps/other", "v1", "foreign layer");
  await pushCosignSignature(berth.url, "apps/other", foreign, intruder, foreign);
  await pushImage(berth.url, "apps/other", "v2", "plain layer");
  const db = join(work, "grype.db");
  writeGrypeV6(db, ADVISORIES);
  expect((await fetch(`${berth.url}/api/v1/cve/db`, { method: "PUT", body: Bun.file(db) })).status).toBe(200);
  await waitFor("the Debian image scanned", async () => (await fetch(`${berth.url}/api/v1/cve/image?repo=apps/deb&reference=v1`)).status === 200, 30_000);
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await berth?.[Symbol.asyncDispose]();
  skopeo?.[Symbol.dispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("signatures and vulnerabilities in the UI", () => {
  test("the repository pages: verified with its signer, unverified, unsigned; the highest severity and the count", async () => {
    const page = await (await browser.newContext({ viewport: { width: 1200, height: 900 } })).newPage();
    const problems = watchProblems(page);
    await page.goto(`${berth.url}/#/repo/apps/deb`);
    await page.waitForSelector('#tags tr[data-tag="v1"]');
    const sig = await page.$('#tags tr[data-tag="v1"] [data-signature]');
    expect(await sig!.getAttribute("data-signature")).toBe("verified");
    expect(await sig!.textContent()).toBe("verified: release.pub");
    const findings = ((await (await fetch(`${berth.url}/api/v1/cve/image?repo=apps/deb&reference=v1`)).json()) as { findings: unknown[] }).findings.length;
    const vuln = await page.$('#tags tr[data-tag="v1"] [data-severity]');
    expect(await vuln!.getAttribute("data-severity")).toBe("CRITICAL");
    expect(await vuln!.textContent()).toBe(`CRITICAL (${findings})`);
    await screenshot(page, "status-repo");

    await page.goto(`${berth.url}/#/repo/apps/other`);
    await page.waitForSelector('#tags tr[data-tag="v2"]');
    expect(await page.getAttribute('#tags tr[data-tag="v1"] [data-signature]', "data-signature")).toBe("unverified");
    expect(await page.getAttribute('#tags tr[data-tag="v2"] [data-signature]', "data-signature")).toBe("unsigned");
    // the repositories page: the newest image's status
    await page.goto(`${berth.url}/#/repos`);
    await page.waitForSelector("#repo-list");
    expect(await page.textContent("#repo-list")).toContain("vulnerabilities: CRITICAL");
    expect(problems.take()).toEqual([]);
    await page.context().close();
  }, 30_000);

  test("the image page: its signature and its CVE list, as CVEListForImage gives it", async () => {
    const page = await (await browser.newContext({ viewport: { width: 1200, height: 900 } })).newPage();
    const problems = watchProblems(page);
    await page.goto(`${berth.url}/#/image/apps/deb:v1`);
    await page.waitForSelector("#cves");
    expect(await page.textContent("#signature")).toBe("Signature: verified: release.pub");
    const cves = await page.$$eval("#cves tr[data-cve]", (rows) => rows.map((r) => r.getAttribute("data-cve")));
    // the scanner's findings for the image, and no other: 1002 is fixed below the installed dpkg, 1004 is another release's
    const ids = ((await (await fetch(`${berth.url}/api/v1/cve/image?repo=apps/deb&reference=v1`)).json()) as { findings: { id: string }[] }).findings.map((f) => f.id);
    expect(cves.slice().sort()).toEqual([...new Set(ids)].sort());
    expect(cves).toContain("CVE-2026-1001");
    expect(cves).not.toContain("CVE-2026-1002");
    expect(cves).not.toContain("CVE-2026-1004");
    expect(await page.textContent('#cves tr[data-cve="CVE-2026-1001"]')).toContain("dpkg");
    await screenshot(page, "status-image");
    await page.goto(`${berth.url}/#/image/apps/other:v1`);
    await page.waitForSelector("#signature [data-signature]");
    expect(await page.getAttribute("#signature [data-signature]", "data-signature")).toBe("unverified");
    expect(problems.take()).toEqual([]);
    await page.context().close();
  }, 30_000);
});
