/**
 * Text a pusher controls (annotations, labels, history, layer lists) is charged to the
 * query's work budget by its size (review of search): without that, one image with a
 * large description, tagged many times, made a small query build and send a response of
 * tags x description bytes (hundreds of MiB on a board) with no bound checked while the
 * fields resolved. CVE lists read per image (ImageListForCVE reads every image's) are
 * charged by their length too.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type TestRegistry, createTestRegistry } from "../helpers/registry";
import { gql, pushConfigured } from "./fixture";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";
import type { CveRecord } from "../../daemon/search/providers";

let r: TestRegistry;
let scanned: TestRegistry;
const TAGS = 40;
/** 2,000 findings for every image: ImageListForCVE reads them all for each image it looks at. */
const MANY: CveRecord[] = Array.from({ length: 2000 }, (_, i) => ({ id: `CVE-2099-${i}`, title: "t", description: "d", severity: "LOW", packages: [] }));

beforeAll(async () => {
  // 20,000 units: a few result objects and a few KiB of text each, far less than 40 x 256 KiB
  r = await createTestRegistry({ search: { limits: { maxWork: 20_000 } } });
  const big = await pushConfigured(r, "big/app", "t0", {
    created: "2024-01-01T00:00:00Z",
    layers: ["one layer"],
    annotations: { "org.opencontainers.image.description": "x".repeat(256 * 1024) },
  });
  for (let i = 1; i < TAGS; i++) {
    const res = await r.call("PUT", `/v2/big/app/manifests/t${i}`, { headers: { "Content-Type": OCI_MANIFEST }, body: big.manifest });
    expect(res.status).toBe(201);
  }
  await pushConfigured(r, "small/app", "1", { created: "2024-01-01T00:00:00Z", layers: ["small"], annotations: { "org.opencontainers.image.description": "small" } });
});
afterAll(async () => {
  await r[Symbol.asyncDispose]();
  await scanned?.[Symbol.asyncDispose]();
});

test("CVE lists read while answering are charged by their length (ImageListForCVE over many findings)", async () => {
  scanned = await createTestRegistry({ search: { limits: { maxWork: 20_000 }, vulns: { vulnSummaryOf: () => ({ maxSeverity: "LOW", count: MANY.length, bySeverity: { LOW: MANY.length } }), cvesOf: () => MANY } } });
  for (let i = 0; i < 20; i++) await pushConfigured(scanned, `cve/app${i}`, "1", { created: "2024-01-01T00:00:00Z", layers: [`layer ${i}`] });
  const res = await gql(scanned, `{ ImageListForCVE(id: "CVE-2099-1999") { Page { TotalCount } } }`);
  expect(res.body.errors?.[0]?.message).toContain("units of work");
});

test("a page of images whose large annotations add up past the budget is refused as too costly", async () => {
  const res = await gql(r, `{ ImageList(repo: "big/app") { Results { Tag Description } } }`);
  expect(res.status).toBe(200);
  expect(JSON.stringify(res.body).length).toBeLessThan(2 * 1024 * 1024);
  expect(res.body.errors?.[0]?.message).toContain("units of work");
});

test("the same query over ordinary images is answered", async () => {
  const res = await gql(r, `{ ImageList(repo: "small/app") { Results { Tag Description } } }`);
  expect(res.body.errors).toBeUndefined();
  expect(res.body.data!.ImageList.Results).toEqual([{ Tag: "1", Description: "small" }]);
});
