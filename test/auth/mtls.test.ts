/**
 * ClientCertIdentity from certificates made by openssl: the name from CN or a SAN kind, the
 * groups from O/OU, and what is no identity (unverified, outside its validity period, no
 * usable name).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { ClientCertIdentity, parsePemCertificates, sanValues } from "../../daemon/auth/mtls";
import { makePki, type Pki } from "../helpers/pki";

let pki: Pki;
let device: X509Certificate;
let noCn: X509Certificate;
let foreign: X509Certificate;

beforeAll(() => {
  pki = makePki();
  const load = (p: string) => new X509Certificate(readFileSync(p));
  device = load(pki.client("device", { subject: "/O=fleet/OU=line1/OU=cameras/CN=device-1", san: ["DNS:dev1.fleet.example", "URI:spiffe://fleet/dev1", "email:dev1@fleet.example"] }).cert);
  noCn = load(pki.client("nocn", { subject: "/O=fleet" }).cert);
  foreign = load(pki.client("foreign", { subject: "/CN=device-1", foreign: true }).cert);
});
afterAll(() => pki?.[Symbol.dispose]());

const verified = (certificate: X509Certificate) => ({ authorized: true, certificate });

describe("ClientCertIdentity", () => {
  test("CN by default, groups from OU or O when configured", () => {
    expect(new ClientCertIdentity({ identity: "cn", groups: "none" }).principalOf(verified(device))).toEqual({ name: "device-1", groups: [], source: "mtls" });
    expect(new ClientCertIdentity({ identity: "cn", groups: "ou" }).principalOf(verified(device))?.groups).toEqual(["line1", "cameras"]);
    expect(new ClientCertIdentity({ identity: "cn", groups: "o" }).principalOf(verified(device))?.groups).toEqual(["fleet"]);
  });

  test("a SAN kind names the user when configured", () => {
    const name = (identity: "san-dns" | "san-uri" | "san-email") => new ClientCertIdentity({ identity, groups: "none" }).principalOf(verified(device))?.name;
    expect(name("san-dns")).toBe("dev1.fleet.example");
    expect(name("san-uri")).toBe("spiffe://fleet/dev1");
    expect(name("san-email")).toBe("dev1@fleet.example");
  });

  test("unverified, out of validity, or nameless certificates are no identity", () => {
    const id = new ClientCertIdentity({ identity: "cn", groups: "none" });
    expect(id.principalOf({ authorized: false, certificate: device })).toBeUndefined();
    expect(id.principalOf({ authorized: false, error: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" })).toBeUndefined();
    expect(id.principalOf(verified(noCn))).toBeUndefined();
    expect(new ClientCertIdentity({ identity: "san-dns", groups: "none" }).principalOf(verified(noCn))).toBeUndefined();
    const later = new ClientCertIdentity({ identity: "cn", groups: "none", now: () => Date.parse(device.validTo) + 1000 });
    expect(later.principalOf(verified(device))).toBeUndefined();
    const earlier = new ClientCertIdentity({ identity: "cn", groups: "none", now: () => Date.parse(device.validFrom) - 1000 });
    expect(earlier.principalOf(verified(device))).toBeUndefined();
  });

  test("with the CA's certificates, one not issued and signed by them is no identity even if the TLS layer said so", () => {
    const issuers = parsePemCertificates(readFileSync(pki.ca, "utf8"));
    expect(issuers.length).toBe(1);
    const id = new ClientCertIdentity({ identity: "cn", groups: "none", issuers });
    expect(id.principalOf(verified(device))?.name).toBe("device-1");
    expect(id.principalOf(verified(foreign))).toBeUndefined();
    expect(new ClientCertIdentity({ identity: "cn", groups: "none" }).principalOf(verified(foreign))?.name).toBe("device-1");
  });

  test("identify asks the peer for the request's certificate", () => {
    const id = new ClientCertIdentity({ identity: "cn", groups: "none" });
    const req = new Request("https://x/v2/");
    expect(id.identify({ req }, { clientCertificate: (r: Request) => (r === req ? verified(device) : undefined) })).toEqual({ kind: "ok", principal: { name: "device-1", groups: [], source: "mtls" } });
    expect(id.identify({ req }, { requestIP: () => null })).toBeUndefined();
    expect(id.identify({ req }, undefined)).toBeUndefined();
  });

  test("SAN text with quoted values is split correctly", () => {
    expect(sanValues('DNS:a.example, URI:"spiffe://x/a, b", email:c@d', "URI")).toEqual(["spiffe://x/a, b"]);
    expect(sanValues('DNS:a.example, URI:"spiffe://x/a, b", email:c@d', "email")).toEqual(["c@d"]);
    expect(sanValues("DNS:a, DNS:b", "DNS")).toEqual(["a", "b"]);
  });
});
