/**
 * Makes a race with a repository's lock deterministic: wraps the store's lock entry points
 * so that the next time anyone asks for the lock of a repository, a given action (a whole
 * manifest PUT, say) runs and completes first.
 */
import type { Layouts } from "../../daemon/storage/layouts";

type LockFn = (name: string, ...rest: never[]) => Promise<unknown>;

/** Runs `before` (once) when the next lock of `repo` is asked for by anyone but `before` itself. */
export function beforeNextLock(layouts: Layouts, repo: string, before: () => Promise<void>): void {
  let armed = true;
  // update() takes the lock too (a group commit, storage/groupcommit.ts)
  const target = layouts as unknown as Record<"withLock" | "transaction" | "update", LockFn>;
  for (const name of ["withLock", "transaction", "update"] as const) {
    const original = target[name].bind(layouts);
    target[name] = async (r, ...rest) => {
      if (armed && r === repo) {
        armed = false;
        await before();
      }
      return original(r, ...rest);
    };
  }
}
