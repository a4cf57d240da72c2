/**
 * The IO budget's contract, apart from both sides of it: the tasks that spend it
 * (task.ts hands a {@link BackgroundIo} to every running task) and the token buckets that
 * implement it (budget.ts `IoBudget`). Types only: imports nothing.
 */

/** The two directions of IO the budget meters. */
export type IoKind = "read" | "write";

/**
 * Background IO accounting. Every background read or write of `bytes` bytes (one
 * operation) awaits the budget first; it resolves when the budget allows it, or rejects
 * with the signal's reason when the task is aborted. Budgeted stream helpers live in
 * budget.ts (`budgetedStream`).
 */
export interface BackgroundIo {
  read(bytes: number, signal?: AbortSignal): Promise<void>;
  write(bytes: number, signal?: AbortSignal): Promise<void>;
  take(kind: IoKind, bytes: number, ops?: number, signal?: AbortSignal): Promise<void>;
}
