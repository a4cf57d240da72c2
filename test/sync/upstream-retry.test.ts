/**
 * The referrers lookup of an upstream is background work (issue 15: a mutant that sent it
 * as a client's request, without retries, survived): an upstream that answers the referrers
 * API with a passing 503 once is asked again and its answer used, where a foreground request
 * (a client waiting on a pull) would fail at once. An upstream that refuses the referrers API
 * (another 4xx) is asked for the fallback tag instead; one whose referrers API stays down
 * is an error, not "no referrers".
 */
import { expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { checkSyncRegistries } from "../../daemon/config/sync";
import { silentLogger } from "../../daemon/log";
import { parseDigest } from "../../daemon/oci/digest";
import { UpstreamError } from "../../daemon/sync/errors";
import { Upstream } from "../../daemon/sync/upstream";
import { startFakeUpstream } from "../helpers/fakeupstream";

const sha = (b: string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const INDEX = "application/vnd.oci.image.index.v1+json";

test("a referrers request that meets a passing 503 is retried as background work, and its answer used", async () => {
  const subject = sha("the subject manifest");
  const sig = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: sha("a signature"), size: 11 };
  let failures = 1;
  await using fake = startFakeUpstream((_req, path) => {
    if (path !== `/v2/lib/app/referrers/${subject}`) return undefined;
    if (failures-- > 0) return new Response("busy", { status: 503 });
    return new Response(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [sig] }), { headers: { "content-type": INDEX } });
  });
  const problems: string[] = [];
  const [config] = checkSyncRegistries([{ name: "fake", urls: [fake.url], retries: 2, retry_delay_ms: 1, timeout_ms: 5000 }], "sync.registries", problems);
  expect(problems).toEqual([]);
  const upstream = new Upstream(config!, 1 << 20, silentLogger);
  const found = await upstream.referrers("lib/app", parseDigest(subject)!);
  expect(found).toEqual([{ digest: sig.digest, mediaType: sig.mediaType }]);
  expect(fake.hits(`/v2/lib/app/referrers/${subject}`)).toBe(2);
});

/** An upstream config for `url`, no retries. */
function once(url: string) {
  const problems: string[] = [];
  const [config] = checkSyncRegistries([{ name: "fake", urls: [url], retries: 0, timeout_ms: 5000 }], "sync.registries", problems);
  expect(problems).toEqual([]);
  return new Upstream(config!, 1 << 20, silentLogger);
}

test("a referrers API that answers 400 falls back to the sha256-<hex> tag; one that answers 503 is an error, not an empty list; without API and tag: none", async () => {
  const subject = sha("the subject manifest");
  const sig = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: sha("a signature"), size: 11 };
  const fallback = JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [sig] });
  await using fake = startFakeUpstream((_req, path) => {
    if (path === `/v2/lib/refused/referrers/${subject}`) return new Response("no", { status: 400 });
    if (path === `/v2/lib/down/referrers/${subject}`) return new Response("busy", { status: 503 });
    if (path === `/v2/lib/tagdown/manifests/sha256-${subject.slice(7)}`) return new Response("busy", { status: 503 });
    if (path.endsWith(`/manifests/sha256-${subject.slice(7)}`) && !path.includes("/none/")) return new Response(fallback, { headers: { "content-type": INDEX, "docker-content-digest": sha(fallback) } });
    return undefined;
  });
  const upstream = once(fake.url);
  expect(await upstream.referrers("lib/refused", parseDigest(subject)!)).toEqual([{ digest: sig.digest, mediaType: sig.mediaType }]);
  const down = await upstream.referrers("lib/down", parseDigest(subject)!).then(() => undefined, (e: unknown) => e);
  expect(down).toBeInstanceOf(UpstreamError);
  expect((down as UpstreamError).fault).toBe("server");
  expect(fake.hits(`/v2/lib/down/manifests/sha256-${subject.slice(7)}`)).toBe(0);
  // no referrers API and no fallback tag: no referrers; a fallback tag that cannot be read: an error
  expect(await upstream.referrers("lib/none", parseDigest(subject)!)).toEqual([]);
  const tagDown = await upstream.referrers("lib/tagdown", parseDigest(subject)!).then(() => undefined, (e: unknown) => e);
  expect((tagDown as UpstreamError).fault).toBe("server");
});
