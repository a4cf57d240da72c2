/** The start-up warning for a registry open to the network without [auth] (auth/exposure.ts). */
import { expect, test } from "bun:test";
import { isLoopbackAddress, warnIfExposed } from "../../daemon/auth/exposure";
import { createLogger } from "../../daemon/log";

test("loopback addresses are recognised; wildcard, LAN and names are not", () => {
  for (const a of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "reg.localhost", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"]) {
    expect([a, isLoopbackAddress(a)]).toEqual([a, true]);
  }
  for (const a of ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "fe80::1", "::ffff:10.0.0.1", "gateway.lan", "128.0.0.1", "1270.0.0.1"]) {
    expect([a, isLoopbackAddress(a)]).toEqual([a, false]);
  }
});

test("a warning naming the address and the fix when exposed without [auth]; none otherwise", () => {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("info", "json", (l) => lines.push(JSON.parse(l)));
  expect(warnIfExposed("127.0.0.1", false, log)).toBe(false);
  expect(warnIfExposed("0.0.0.0", true, log)).toBe(false);
  expect(lines).toEqual([]);
  expect(warnIfExposed("0.0.0.0", false, log)).toBe(true);
  expect(lines).toEqual([expect.objectContaining({ level: "warn", address: "0.0.0.0", fix: expect.stringContaining("[auth]") })]);
  expect(String(lines[0]!.msg)).toContain("authentication is off and berth listens on a non-loopback address");
});
