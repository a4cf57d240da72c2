/**
 * Abuse limits against the real daemon: request rates per client address ([limits]), with
 * clients played from distinct loopback source addresses.
 */
import { expect, test } from "bun:test";
import { startDaemon } from "../helpers/daemon";
import { requestFrom } from "../helpers/fromaddress";

test("a flood from one client gets 429 TOOMANYREQUESTS with Retry-After while another client is served", async () => {
  await using d = await startDaemon({ extra: "[limits]\nreads_per_second = 1\nread_burst = 5\n" });
  const statuses: number[] = [];
  let refused: Awaited<ReturnType<typeof requestFrom>> | undefined;
  for (let i = 0; i < 40; i++) {
    const r = await requestFrom("127.0.0.2", `${d.url}/v2/`);
    statuses.push(r.status);
    if (r.status === 429) refused ??= r;
  }
  expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
  expect(statuses).toContain(429);
  expect(Number(refused!.headers["retry-after"])).toBeGreaterThanOrEqual(1);
  expect(JSON.parse(refused!.body)).toMatchObject({ errors: [{ code: "TOOMANYREQUESTS" }] });
  // another client is served, and the flooding client's probes still answer
  expect((await requestFrom("127.0.0.3", `${d.url}/v2/`)).status).toBe(200);
  expect((await requestFrom("127.0.0.2", `${d.url}/livez`)).status).toBe(200);
  expect((await requestFrom("127.0.0.2", `${d.url}/readyz`)).status).toBe(200);
});
