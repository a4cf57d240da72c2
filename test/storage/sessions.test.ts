/** The bounded table of upload sessions: caps, per-client counts, expiry that spares busy sessions and never throws. */
import { expect, test } from "bun:test";
import { StorageError } from "../../daemon/storage/errors";
import { SessionTable, type TrackedSession } from "../../daemon/storage/sessions";

const session = (id: string, client?: string): TrackedSession => ({ id, client, lastActive: Date.now(), busy: false });

test("caps in total and per client; deleting frees the client's slot", () => {
  const t = new SessionTable<TrackedSession>({ maxSessions: 3, maxPerClient: 2, expiryMs: 0 }, async () => {});
  t.add(session("a1", "a"));
  t.add(session("a2", "a"));
  expect(() => t.add(session("a3", "a"))).toThrow(StorageError);
  t.add(session("b1", "b"));
  expect(() => t.add(session("c1", "c"))).toThrow(/3 upload sessions are open/);
  t.delete("a1");
  expect(t.countFor("a")).toBe(1);
  t.add(session("a3", "a"));
  expect(t.size).toBe(3);
});

test("expiry removes idle sessions on its own timer, spares a busy one, and survives a failing removal", async () => {
  const removed: string[] = [];
  let failures = 0;
  const t: SessionTable<TrackedSession> = new SessionTable<TrackedSession>({ maxSessions: 10, maxPerClient: 10, expiryMs: 30 }, async (s) => {
    if (s.id === "flaky" && failures++ === 0) throw new Error("EBUSY: first removal fails");
    removed.push(s.id);
    t.delete(s.id);
  });
  const busy = { ...session("busy"), busy: true };
  t.add(session("idle"));
  t.add(busy);
  t.add(session("flaky"));
  for (let i = 0; i < 200 && !(removed.includes("idle") && removed.includes("flaky")); i++) await Bun.sleep(10);
  expect(removed.sort()).toEqual(["flaky", "idle"]);
  expect(failures).toBe(2); // failed once, retried on a later pass
  expect(t.get("busy")).toBe(busy);
  busy.busy = false;
  busy.lastActive = Date.now();
  for (let i = 0; i < 200 && t.size > 0; i++) await Bun.sleep(10);
  expect(t.size).toBe(0);
  t.stop();
});
