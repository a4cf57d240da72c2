/** The one pin parser shared by sync pins and quota pins. */
import { expect, test } from "bun:test";
import { parsePin, parseSyncPin, syncPinProblem } from "../../daemon/oci/pins";
import { PinPatterns } from "../../daemon/lifecycle/patterns";

test("a pin splits at its last colon; without one it covers every tag", () => {
  expect(parsePin("library/alpine:3.20")).toEqual({ repo: "library/alpine", tag: "3.20" });
  expect(parsePin("apps/**")).toEqual({ repo: "apps/**" });
  expect(parsePin("a/b:c:d")).toEqual({ repo: "a/b:c", tag: "d" });
  expect(parseSyncPin("edge/agent:v1.2")).toEqual({ repo: "edge/agent", tag: "v1.2" });
});

test("a sync pin must be an exact repository:tag", () => {
  expect(syncPinProblem("edge/agent:v1")).toBeUndefined();
  expect(syncPinProblem("edge/agent")).toBe('"edge/agent" is not "repository:tag"');
  expect(syncPinProblem("Edge/agent:v1")).toBe('"Edge/agent:v1" is not "repository:tag"');
  expect(syncPinProblem("edge/agent:")).toBeDefined();
});

test("quota pins use the same split: a bare glob pins every tag, untagged manifests only then", () => {
  const p = new PinPatterns(["apps/*:v*", "base/**"]);
  expect(p.pinned("apps/web", "v2")).toBe(true);
  expect(p.pinned("apps/web", "latest")).toBe(false);
  expect(p.pinned("apps/web", undefined)).toBe(false);
  expect(p.pinned("base/x/y", undefined)).toBe(true);
  expect(p.pinned("other", "v1")).toBe(false);
});
