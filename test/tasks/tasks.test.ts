/**
 * The task board of the admin API (daemon/tasks/tasks.ts): states, progress, results and
 * errors, and its bounds (tasks running at once; finished tasks kept).
 */
import { describe, expect, test } from "bun:test";
import { TaskBoard, TooManyTasksError, wantsAsync } from "../../daemon/tasks/tasks";

/** A promise with its resolve/reject outside. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

describe("TaskBoard", () => {
  test("a task runs, reports progress, ends with its result or its error", async () => {
    const board = new TaskBoard();
    const gate = deferred<string>();
    let report!: (p: { done: number; total: number; bytes: number }) => void;
    const view = board.start("scrub", (progress) => ((report = progress), gate.promise));
    expect(view).toMatchObject({ kind: "scrub", state: "running", done: 0, total: null, finished: null });
    await Promise.resolve();
    report({ done: 2, total: 5, bytes: 100 });
    expect(board.get(view.id)).toMatchObject({ done: 2, total: 5, bytes: 100 });
    gate.resolve("ok");
    await board.settled(view.id);
    expect(board.get(view.id)).toMatchObject({ state: "succeeded", result: "ok", error: null });
    expect(board.get(view.id)!.finished).toBeString();
    const failing = board.start("gc", async () => {
      throw new Error("disk on fire");
    });
    await board.settled(failing.id);
    expect(board.get(failing.id)).toMatchObject({ state: "failed", error: "disk on fire", result: null });
    expect(board.list().map((t) => t.id)).toEqual([failing.id, view.id]);
    expect(board.get("__proto__")).toBeUndefined();
  });

  test("bounded: too many running is refused, old finished tasks are forgotten", async () => {
    const board = new TaskBoard({ maxRunning: 2, keepFinished: 3 });
    const gates = [deferred<void>(), deferred<void>()];
    const a = board.start("a", () => gates[0]!.promise);
    const b = board.start("b", () => gates[1]!.promise);
    expect(() => board.start("c", async () => {})).toThrow(TooManyTasksError);
    gates[0]!.resolve();
    gates[1]!.resolve();
    await Promise.all([board.settled(a.id), board.settled(b.id)]);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(board.start("n", async () => i).id);
      await board.settled(ids.at(-1)!);
    }
    expect(board.list()).toHaveLength(3);
    expect(board.list().map((t) => t.id)).toEqual(ids.slice(2).reverse());
  });

  test("wantsAsync: ?async=true|1 or Prefer: respond-async", () => {
    expect(wantsAsync({ async: "true" }, {})).toBe(true);
    expect(wantsAsync({ async: "1" }, {})).toBe(true);
    expect(wantsAsync({}, { prefer: "respond-async, wait=10" })).toBe(true);
    expect(wantsAsync({}, { prefer: "return=minimal" })).toBe(false);
    expect(wantsAsync({ async: "no" }, {})).toBe(false);
  });
});
