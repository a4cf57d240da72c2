/**
 * Following long admin tasks (GC, scrub, retention, sync runs): the action is started with
 * `?async=true` (202 with a task), then /api/v1/tasks/<id> is read every half second until
 * the task ends, shown as a progress bar with done/total, bytes and an ETA once the totals are
 * known, then the result. The tasks page lists the recent tasks the admin API keeps.
 */
import { call, failure, json } from "./api";
import { bytes, fields, h, when } from "./dom";
import type { TaskView as Task } from "../../daemon/tasks/wire";

/** A task as GET /api/v1/tasks/<id> shows it (the one declaration: daemon/tasks/wire.ts). */
export type { TaskView as Task } from "../../daemon/tasks/wire";

/** Polls between reads of a running task (a UI refresh, not a wait for a condition in a test). */
const POLL_MS = 500;

/** "3 s", "2 min", "1 h 5 min". */
function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

/** The time left, from the fraction done so far (bytes when their total is known, else items); undefined when unknown. */
export function eta(t: Task, now = Date.now()): number | undefined {
  const fraction = t.totalBytes ? t.bytes / t.totalBytes : t.total ? t.done / t.total : undefined;
  if (!fraction || fraction <= 0 || fraction >= 1) return undefined;
  const elapsed = now - Date.parse(t.started);
  return (elapsed * (1 - fraction)) / fraction;
}

/** The progress line of a task: a bar (indeterminate until a total is known) and its figures. */
export function progressOf(t: Task): HTMLElement {
  const max = t.totalBytes ?? t.total ?? undefined;
  const value = t.totalBytes ? t.bytes : t.done;
  const left = t.state === "running" ? eta(t) : undefined;
  const parts = [
    t.total !== null ? `${t.done}/${t.total}` : t.done ? String(t.done) : "",
    t.bytes ? `${bytes(t.bytes)}${t.totalBytes ? ` of ${bytes(t.totalBytes)}` : ""}` : "",
    left !== undefined ? `about ${duration(left)} left` : "",
  ].filter(Boolean);
  return h("div", { class: "progress", "data-task": t.id, "data-state": t.state },
    h("progress", max ? { max, value: t.state === "succeeded" ? max : value } : t.state === "running" ? null : { max: 1, value: 1 }),
    h("span", { class: "muted" }, parts.join(" · ")));
}

/**
 * POSTs `path` with `?async=true` and follows the task into `status` until it ends: the label
 * and the result on success, the error on failure. Resolves when the task has ended.
 */
export async function runTask(status: HTMLElement, label: string, path: string): Promise<Task | undefined> {
  status.className = "";
  status.textContent = `${label}…`;
  const res = await call(`${path}${path.includes("?") ? "&" : "?"}async=true`, { method: "POST" });
  if (!res.ok) {
    status.textContent = `${label} refused: ${(await failure(res)).message}`;
    status.className = "error";
    return undefined;
  }
  let task = (await res.json()) as Task;
  for (;;) {
    status.replaceChildren(h("span", null, `${label}: ${task.state === "running" ? "running" : task.state === "succeeded" ? "done." : "failed."}`), progressOf(task));
    if (task.state !== "running") break;
    await new Promise((r) => setTimeout(r, POLL_MS));
    try {
      task = await json<Task>(`/api/v1/tasks/${encodeURIComponent(task.id)}`);
    } catch (err) {
      status.textContent = `${label}: cannot follow task ${task.id}: ${(err as Error).message}`;
      status.className = "error";
      return undefined;
    }
  }
  status.className = task.state === "succeeded" ? "ok" : "error";
  status.append(task.error ? h("p", null, task.error) : fields(task.result ?? {}));
  return task;
}

/** The recent tasks table (newest first), for the tasks page. */
export async function recentTasks(): Promise<HTMLElement> {
  const { tasks } = await json<{ tasks: Task[] }>("/api/v1/tasks");
  if (tasks.length === 0) return h("p", { class: "muted", id: "tasks" }, "No task started from the admin API since the daemon started.");
  return h("div", { class: "scroll" }, h("table", { id: "tasks" },
    h("thead", null, h("tr", null, ["Task", "Kind", "State", "Progress", "Started", "Finished"].map((c) => h("th", null, c)))),
    h("tbody", null, tasks.map((t) => h("tr", { "data-kind": t.kind },
      h("td", { class: "mono" }, t.id), h("td", null, t.kind),
      h("td", null, h("span", { class: `badge ${t.state === "failed" ? "bad" : t.state === "succeeded" ? "ok" : ""}` }, t.state), t.error ? h("div", { class: "error small" }, t.error) : null),
      h("td", null, progressOf(t)), h("td", null, when(t.started)), h("td", null, when(t.finished)))))));
}

