/**
 * JWT sign/verify (daemon/auth/jwt.ts, tokenverifier.ts): a valid token verifies; every kind
 * of forged, tampered, stale or garbage token is refused with a reason and never throws
 * (bad base64, huge, `alg: none`, HS256 keyed with the public key, RS256 label, expired,
 * not yet valid, wrong audience/issuer, tampered claims, unknown or wrong kid, DER signature).
 */
import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { b64url, type SigningKey, signJwt, type TokenClaims, verifyJwt } from "../../daemon/auth/jwt";
import { generateSigningKey } from "../../daemon/auth/tokenkey";
import { createTokenVerifier } from "../../daemon/auth/tokenverifier";

const NOW = 1_800_000_000;
const key: SigningKey = await generateSigningKey();
const other: SigningKey = await generateSigningKey();
const keys = new Map([[key.kid, key.publicKey]]);
const opts = { keys, issuer: "berth", audience: "reg", now: NOW };

function claims(over: Partial<TokenClaims> = {}): TokenClaims {
  return { iss: "berth", sub: "ci", aud: "reg", exp: NOW + 300, nbf: NOW - 1, iat: NOW, jti: "j1", access: [{ type: "repository", name: "app", actions: ["pull"] }], ...over };
}

/** Signs arbitrary header and payload objects with `k` (to forge well-signed but invalid tokens). */
async function rawSign(k: SigningKey, header: unknown, payload: unknown): Promise<string> {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, k.privateKey, new TextEncoder().encode(input));
  return `${input}.${b64url(new Uint8Array(sig))}`;
}

async function refused(token: string, o = opts): Promise<string> {
  const r = await verifyJwt(token, o);
  expect(r.ok).toBe(false);
  return r.ok ? "" : r.reason;
}

describe("ES256 JWT", () => {
  test("a signed token verifies and round-trips its claims; kid is the key's thumbprint", async () => {
    const t = await signJwt(key, claims());
    const header = JSON.parse(Buffer.from(t.split(".")[0]!, "base64url").toString());
    expect(header).toEqual({ alg: "ES256", typ: "JWT", kid: key.kid });
    expect(key.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const r = await verifyJwt(t, opts);
    expect(r.ok && r.claims).toEqual(claims());
  });

  test("alg none, HS256 with the public key as secret, RS256 label are refused before the key is used", async () => {
    const payload = b64url(JSON.stringify(claims()));
    const none = `${b64url(JSON.stringify({ alg: "none", kid: key.kid }))}.${payload}.`;
    expect(await refused(none)).toContain('"none" is not ES256');
    const jwk = await crypto.subtle.exportKey("jwk", key.publicKey);
    const spki = Buffer.from(await crypto.subtle.exportKey("spki", key.publicKey));
    for (const secret of [spki, Buffer.from(JSON.stringify(jwk)), Buffer.from(`-----BEGIN PUBLIC KEY-----\n${spki.toString("base64")}\n-----END PUBLIC KEY-----\n`)]) {
      const input = `${b64url(JSON.stringify({ alg: "HS256", typ: "JWT", kid: key.kid }))}.${payload}`;
      const mac = createHmac("sha256", secret).update(input).digest("base64url");
      expect(await refused(`${input}.${mac}`)).toContain('"HS256" is not ES256');
    }
    // a genuine ES256 signature under a header that claims another algorithm
    const relabeled = await rawSign(key, { alg: "RS256", kid: key.kid }, claims());
    expect(await refused(relabeled)).toContain("RS256");
    const lower = await rawSign(key, { alg: "es256", kid: key.kid }, claims());
    await refused(lower);
  });

  test("expired, not yet valid, issued in the future, wrong audience or issuer", async () => {
    expect(await refused(await signJwt(key, claims({ exp: NOW - 31 })))).toBe("token has expired");
    expect((await verifyJwt(await signJwt(key, claims({ exp: NOW - 29 })), opts)).ok).toBe(true); // within skew
    expect(await refused(await signJwt(key, claims({ nbf: NOW + 60 })))).toBe("token is not valid yet");
    expect(await refused(await signJwt(key, claims({ iat: NOW + 60, nbf: NOW })))).toBe("token was issued in the future");
    expect(await refused(await signJwt(key, claims({ aud: "other" })))).toContain("audience");
    expect(await refused(await signJwt(key, claims({ iss: "evil" })))).toContain("issuer");
    expect((await verifyJwt(await rawSign(key, { alg: "ES256", kid: key.kid }, { ...claims(), aud: ["x", "reg"] }), opts)).ok).toBe(true);
  });

  test("tampered claims, wrong kid, another key's signature, swapped signature", async () => {
    const t = await signJwt(key, claims());
    const [h, , s] = t.split(".");
    const widened = b64url(JSON.stringify(claims({ access: [{ type: "repository", name: "app", actions: ["pull", "push", "delete"] }] })));
    expect(await refused(`${h}.${widened}.${s}`)).toBe("token signature does not verify");
    const otherSub = b64url(JSON.stringify(claims({ sub: "admin" })));
    expect(await refused(`${h}.${otherSub}.${s}`)).toBe("token signature does not verify");
    expect(await refused(await signJwt(other, claims()))).toContain("is unknown");
    // another key's signature under this key's kid
    expect(await refused(await rawSign({ ...other, kid: key.kid }, { alg: "ES256", kid: key.kid }, claims()))).toBe("token signature does not verify");
    expect(await refused(await rawSign(key, { alg: "ES256" }, claims()))).toBe("token header has no kid");
    // flip one bit of the signature
    const sig = Buffer.from(s!, "base64url");
    sig[10]! ^= 1;
    expect(await refused(`${h}.${t.split(".")[1]}.${sig.toString("base64url")}`)).toBe("token signature does not verify");
  });

  test("well-signed tokens with malformed claims are refused", async () => {
    const h = { alg: "ES256", kid: key.kid };
    const base = claims() as unknown as Record<string, unknown>;
    for (const bad of [
      { ...base, exp: "9999999999" },
      { ...base, exp: undefined },
      { ...base, nbf: null },
      { ...base, sub: 5 },
      { ...base, access: "all" },
      { ...base, access: [{ type: "repository", name: "app", actions: "push" }] },
      { ...base, grp: [1] },
    ]) await refused(await rawSign(key, h, bad));
    await refused(await rawSign(key, h, [base]));
    await refused(await rawSign(key, { ...h, crit: ["exp"] }, base));
  });

  test("garbage never throws and never verifies (bad base64, huge, wrong part counts, random bytes)", async () => {
    const good = await signJwt(key, claims());
    const [h, p, s] = good.split(".") as [string, string, string];
    const cases = [
      "", ".", "..", "...", "a.b.c", `${h}.${p}`, `${h}.${p}.${s}.x`, `${h}!.${p}.${s}`, `${h}.${p}=.${s}`, `${h}.${p}.${s}==`,
      `${h}.${p}.${Buffer.from("short").toString("base64url")}`, `${h}.${p}.${s}${s}`,
      `${b64url("not json")}.${p}.${s}`, `${b64url("[1]")}.${p}.${s}`, `${b64url("null")}.${p}.${s}`,
      `${b64url(Buffer.from([0xff, 0xfe, 0xfd]))}.${p}.${s}`,
      "x".repeat(9000), `${h}.${"A".repeat(10_000)}.${s}`, `${h}.${p}.${"A".repeat(86)}`,
    ];
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const alphabet = "ABCabc012-_.=+/ \u0000\u00e9{}\"";
    for (let i = 0; i < 300; i++) {
      let t = "";
      const n = Math.floor(rand() * 200);
      for (let j = 0; j < n; j++) t += alphabet[Math.floor(rand() * alphabet.length)];
      cases.push(t);
      // mutate one character of the good token
      const at = Math.floor(rand() * good.length);
      const mutated = good.slice(0, at) + alphabet[Math.floor(rand() * alphabet.length)] + good.slice(at + 1);
      if (mutated !== good) cases.push(mutated);
    }
    for (const c of cases) {
      const r = await verifyJwt(c, opts);
      if (r.ok) throw new Error(`garbage verified: ${JSON.stringify(c).slice(0, 200)}`);
    }
    // a non-canonical encoding of the same signature bytes (last character's unused bits set)
    const last = s.at(-1)!;
    const alphabet64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const twin = `${h}.${p}.${s.slice(0, -1)}${alphabet64[alphabet64.indexOf(last) ^ 1]}`;
    expect(Buffer.from(twin.split(".")[2]!, "base64url").equals(Buffer.from(s, "base64url"))).toBe(true);
    expect((await verifyJwt(twin, opts)).ok).toBe(false);
    // type confusion through the public entry point
    expect((await verifyJwt(undefined as unknown as string, opts)).ok).toBe(false);
  });
});

describe("token verifier", () => {
  const verifier = (active = true) => createTokenVerifier({ keys: [key], issuer: "berth", service: "reg", now: () => NOW, keyActive: () => active });

  test("a user's token becomes a principal limited to its access claims", async () => {
    const t = await signJwt(key, claims({ grp: ["dev"], access: [{ type: "repository", name: "app", actions: ["pull", "push", "bogus"] }, { type: "registry", name: "catalog", actions: ["*"] }, { type: "repository", name: "../x", actions: ["pull"] }] }));
    expect(await verifier().verify(t)).toEqual({
      kind: "ok",
      principal: { name: "ci", groups: ["dev"], source: "token", limits: [{ repos: ["app"], actions: ["pull", "push"] }, { repos: ["**"], actions: ["pull"] }] },
    });
  });

  test("an anonymous token is anonymous; a token from a revoked API key is refused at once", async () => {
    expect(await verifier().verify(await signJwt(key, claims({ sub: "" })))).toEqual({ kind: "anonymous" });
    const viaKey = await signJwt(key, claims({ kid: "k1" }));
    expect((await verifier(true).verify(viaKey)).kind).toBe("ok");
    const v = await verifier(false).verify(viaKey);
    expect(v.kind === "denied" && v.reason).toContain('API key "k1"');
  });

  test("a verified token is remembered, but expiry and revocation still apply to it", async () => {
    let clock = NOW;
    let active = true;
    const v = createTokenVerifier({ keys: [key], issuer: "berth", service: "reg", now: () => clock, keyActive: () => active });
    const t = await signJwt(key, claims({ kid: "k9" }));
    expect((await v.verify(t)).kind).toBe("ok");
    const again = v.verify(t);
    expect(again instanceof Promise).toBe(false); // answered from memory
    expect((again as { kind: string }).kind).toBe("ok");
    active = false;
    expect((await v.verify(t)).kind).toBe("denied");
    active = true;
    clock = NOW + 300 + 31;
    const late = await v.verify(t);
    expect(late.kind === "denied" && late.reason).toBe("token has expired");
    // a tampered twin of a remembered token is not a cache hit
    clock = NOW;
    const [h, , sig] = t.split(".");
    expect((await v.verify(`${h}.${b64url(JSON.stringify(claims({ sub: "admin" })))}.${sig}`)).kind).toBe("denied");
  });

  test("garbage is denied, not thrown", async () => {
    for (const t of ["", "Bearer x", "a.b.c", "x".repeat(100_000)]) expect((await verifier().verify(t)).kind).toBe("denied");
  });
});
