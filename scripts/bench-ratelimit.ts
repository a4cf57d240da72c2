/**
 * What the abuse guards cost on the hot path, in process (no sockets, so the figure is the
 * guard's own cost and not the network's):
 *   - RateLimiter.take for one client, and round-robin over 4,096 clients (a full map);
 *   - LoginLockout.check (what every credentialed request asks before verifying);
 *   - the HTTP front answering GET /v2/ with and without a rate limiter, in ABAB rounds.
 * Prints nanoseconds per operation, and per request through the front with the limiter on and off
 * (the handler behind it is trivial, so the difference is the limiter's share, not a ratio to
 * a real pull).
 *
 *   bun scripts/bench-ratelimit.ts     (BERTH_OPS=N per measurement, default 2,000,000)
 */
import { LoginLockout } from "../daemon/auth/lockout";
import { createApp } from "../daemon/http/app";
import { RateLimiter } from "../daemon/http/ratelimit";

const OPS = Number(process.env.BERTH_OPS ?? 2_000_000);

function nsPerOp(label: string, ops: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(ops, 100_000); i++) fn(i); // warm-up
  const t = Bun.nanoseconds();
  for (let i = 0; i < ops; i++) fn(i);
  const ns = (Bun.nanoseconds() - t) / ops;
  console.log(`${label.padEnd(58)} ${ns.toFixed(1).padStart(8)} ns/op`);
  return ns;
}

const generous = { read: { perSecond: 1e9, burst: 1e9 }, write: { perSecond: 1e9, burst: 1e9 }, maxClients: 4096 };
const one = new RateLimiter(generous);
nsPerOp("RateLimiter.take, one client", OPS, () => one.take("192.0.2.1", true));
const addresses = Array.from({ length: 4096 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
const many = new RateLimiter(generous);
nsPerOp("RateLimiter.take, 4,096 clients round-robin (map full)", OPS, (i) => many.take(addresses[i & 4095]!, true));
const overflow = new RateLimiter({ ...generous, maxClients: 1024 });
nsPerOp("RateLimiter.take, 4,096 clients over a 1,024 map (evicting)", OPS, (i) => overflow.take(addresses[i & 4095]!, true));
const lockout = new LoginLockout({ perSource: 5, perUser: 20, windowMs: 900_000, baseMs: 60_000, maxMs: 3_600_000, maxEntries: 4096 });
for (const a of addresses.slice(0, 1000)) lockout.failed("ci", a);
nsPerOp("LoginLockout.check (1,000 sources with failures)", OPS, (i) => lockout.check("ci", addresses[i & 4095]));

// The front, GET /v2/ answered by a trivial handler: the limiter's share of a whole request.
const info = () => ({ root: "/", uploadsInFlight: 0, manifestCacheBytes: 0, rssBytes: 0, repositories: 0 });
const v2 = async () => new Response("{}");
const peer = { requestIP: () => ({ address: "192.0.2.7" }) };
const off = createApp({ v2, ready: () => true, info });
const on = createApp({ v2, ready: () => true, info, rateLimiter: new RateLimiter(generous) });
const req = new Request("http://registry.local:5000/v2/");
async function frontRate(app: typeof on, n: number): Promise<number> {
  const t = Bun.nanoseconds();
  for (let i = 0; i < n; i++) await app(req, peer);
  return n / ((Bun.nanoseconds() - t) / 1e9);
}
const n = Math.max(10_000, Math.floor(OPS / 10));
await frontRate(off, n);
await frontRate(on, n);
const rounds: { off: number; on: number }[] = [];
for (let r = 0; r < 4; r++) rounds.push({ off: await frontRate(off, n), on: await frontRate(on, n) });
for (const [i, r] of rounds.entries()) {
  console.log(`front round ${i + 1}: without limiter ${(1e9 / r.off).toFixed(0)} ns/request, with ${(1e9 / r.on).toFixed(0)} ns/request`);
}
const added = rounds.map((r) => 1e9 / r.on - 1e9 / r.off).sort((a, b) => a - b);
console.log(`median cost the limiter adds to a request in the front: ${((added[1]! + added[2]!) / 2).toFixed(0)} ns`);
