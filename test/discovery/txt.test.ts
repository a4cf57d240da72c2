/** The TXT record's `auth` and `anon` keys, and what `berth discover` says about credentials. */
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { authSummary, credentialAdvice, needsCredentials } from "../../daemon/discovery/credentials";
import { writeContainerd, writeRegistriesConf } from "../../daemon/discovery/runtime-config";
import { type Advertised, fromTxt, toTxt } from "../../daemon/discovery/txt";

const base: Advertised = { api: "/v2/", tls: false, version: "1", instanceId: "id", board: "none" };

test("auth is advertised as none, or as the accepted modes with anon=pull when some pulls are open; it reads back", () => {
  expect(toTxt(base)).toMatchObject({ auth: "none" });
  expect(toTxt(base).anon).toBeUndefined();
  const locked = toTxt({ ...base, auth: { modes: ["basic", "token"], anonymousPull: false } });
  expect(locked).toMatchObject({ auth: "basic,token" });
  expect(locked.anon).toBeUndefined();
  const mixed = toTxt({ ...base, auth: { modes: ["mtls"], anonymousPull: true } });
  expect(mixed).toMatchObject({ auth: "mtls", anon: "pull" });
  expect(fromTxt(locked)!.auth).toEqual({ modes: ["basic", "token"], anonymousPull: false });
  expect(fromTxt(mixed)!.auth).toEqual({ modes: ["mtls"], anonymousPull: true });
  expect(fromTxt(toTxt(base))!.auth).toEqual({ modes: [], anonymousPull: true });
  // bytes, as bonjour-service may hand them over; an older berth without the key: not said
  expect(fromTxt({ ...locked, auth: new TextEncoder().encode("basic") })!.auth).toEqual({ modes: ["basic"], anonymousPull: false });
  const { auth: _, ...old } = toTxt(base);
  expect(fromTxt(old)!.auth).toBeUndefined();
});

test("discover explains how to give each runtime credentials, and says nothing when none are needed", () => {
  expect(credentialAdvice({ modes: [], anonymousPull: true }, "10.0.0.1:5000")).toEqual([]);
  expect(credentialAdvice(undefined, "10.0.0.1:5000")).toEqual([]);
  expect(authSummary(undefined)).toBe("unknown");
  expect(authSummary({ modes: ["basic"], anonymousPull: true })).toBe("basic+anon-pull");
  const all = credentialAdvice({ modes: ["basic", "token"], anonymousPull: false }, "10.0.0.1:5000").join("\n");
  expect(all).toContain("10.0.0.1:5000 requires credentials (basic, token) for every request");
  expect(all).toContain("podman login 10.0.0.1:5000");
  expect(all).toContain("ctr images pull --user USER 10.0.0.1:5000/");
  expect(all).toContain("global_auth_file");
  expect(all).toContain("As a mirror");
  const containerd = credentialAdvice({ modes: ["basic"], anonymousPull: true }, "h:1", "containerd").join("\n");
  expect(containerd).toContain("ctr images pull --user");
  expect(containerd).not.toContain("podman login h:1   ");
  expect(containerd).not.toContain("As a mirror");
  expect(credentialAdvice({ modes: ["mtls"], anonymousPull: false }, "h:1").join("\n")).toContain("client.cert");
  expect(needsCredentials({ modes: ["mtls"], anonymousPull: true })).toBe(true);
});

test("the runtime files written for a registry that needs credentials say so, and hold none", () => {
  const dir = mkdtempSync(join(tmpdir(), "berth-txt-"));
  try {
    const t = { hostPort: "10.0.0.1:5000", tls: false, upstreams: ["docker.io"], needsCredentials: true };
    writeContainerd(join(dir, "certs.d"), t);
    writeRegistriesConf(join(dir, "50-berth.conf"), join(dir, "certs"), t);
    expect(readFileSync(join(dir, "certs.d/10.0.0.1:5000/hosts.toml"), "utf8")).toContain("# 10.0.0.1:5000 asks clients for credentials, which this file does not hold: ctr --user");
    expect(readFileSync(join(dir, "certs.d/docker.io/hosts.toml"), "utf8")).toContain("asks clients for credentials");
    expect(readFileSync(join(dir, "50-berth.conf"), "utf8")).toContain("podman login 10.0.0.1:5000");
    writeContainerd(join(dir, "open.d"), { ...t, needsCredentials: false });
    expect(readFileSync(join(dir, "open.d/10.0.0.1:5000/hosts.toml"), "utf8")).not.toContain("credentials");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
