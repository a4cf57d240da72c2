/**
 * SigV4 (daemon/storage/s3/sigv4.ts) against the worked example in AWS's S3 documentation for
 * presigned URLs (bucket "examplebucket", key "test.txt", 2013-05-24, one day), so the signing
 * is checked against AWS's own arithmetic and not only against RGW's acceptance; and the
 * percent-encoding rules S3 wants for keys.
 */
import { expect, test } from "bun:test";
import { presignUrl, uriEncode } from "../../daemon/storage/s3/sigv4";

const EXAMPLE = { accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1" };

test("a presigned GET matches AWS's documented example signature", () => {
  const url = new URL(presignUrl(EXAMPLE, "GET", new URL("https://examplebucket.s3.amazonaws.com/test.txt"), 86400, new Date("2013-05-24T00:00:00Z")));
  expect(url.searchParams.get("X-Amz-Credential")).toBe("AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request");
  expect(url.searchParams.get("X-Amz-Signature")).toBe("aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
});

test("keys are percent-encoded byte by byte, keeping only unreserved characters and slashes", () => {
  expect(uriEncode("a/b:c@d+e f~_.-ü", true)).toBe("a/b%3Ac%40d%2Be%20f~_.-%C3%BC");
  expect(uriEncode("a/b")).toBe("a%2Fb");
  expect(() => presignUrl(EXAMPLE, "GET", new URL("https://h/k"), 0)).toThrow('Presigned URL lifetime "0"');
});
