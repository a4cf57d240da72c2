import { expect, test } from "bun:test";
import { signatureRequired } from "../../daemon/trust/policy";

// Signature policies take the access rules' precedence: the most specific matching glob
// decides, wherever it is written, so a narrow entry can lift or set the requirement.
test("the most specific glob decides, not the first written", () => {
  const required = signatureRequired([
    { repositories: ["**"], require_signature: true },
    { repositories: ["dev/**"], require_signature: false },
    { repositories: ["dev/release/*"], require_signature: true },
  ]);
  expect(required("factory/app")).toBe(true);
  expect(required("dev/tools/x")).toBe(false);
  expect(required("dev/release/app")).toBe(true);
  expect(required("dev/release/app/sub")).toBe(false); // `*` stays within one component
});

test("a repository no policy names needs no signature; ties go to the earlier entry", () => {
  const required = signatureRequired([
    { repositories: ["edge/*"], require_signature: true },
    { repositories: ["edge/*"], require_signature: false },
  ]);
  expect(required("edge/a")).toBe(true);
  expect(required("other")).toBe(false);
});
