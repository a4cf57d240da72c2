/**
 * The appliance pages, from the admin API: storage (usage, quota, dedupe savings, writes,
 * scrub, GC), sync (upstreams, last runs, fetches in flight, the pinned and warm set per
 * upstream), background tasks (the scheduler's queue, the IO budget, recent tasks), and
 * health and board (probes, the board profile, budget and queue, memory). Actions (GC, scrub,
 * retention, a sync run) ask for confirmation, run as tasks followed to their end (tasks.ts);
 * the server still decides (admins only, loopback without a token).
 */
import { json, myRights } from "./api";
import { bytes, confirmDialog, fields, h, mount, when } from "./dom";
import { recentTasks, runTask } from "./tasks";

/** A long action after confirmation, started as a task and followed into `status`. */
async function act(status: HTMLElement, message: string, label: string, path: string): Promise<void> {
  if (!(await confirmDialog(message, label))) return;
  await runTask(status, label, path);
}

function card(title: string, value: string): HTMLElement {
  return h("div", { class: "card", "data-card": title }, h("div", { class: "muted" }, title), h("div", { class: "big" }, value));
}

function num(o: unknown, ...path: string[]): number | undefined {
  let v: unknown = o;
  for (const k of path) v = v && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined;
  return typeof v === "number" ? v : undefined;
}

/** The storage page. */
export async function storagePage(main: HTMLElement): Promise<void> {
  const [stats, rights] = await Promise.all([json<Record<string, unknown>>("/api/v1/storage"), myRights()]);
  const q = await json<{ quarantined: unknown[] }>("/api/v1/storage/quarantine").catch(() => ({ quarantined: [] }));
  const status = h("div", { id: "status", role: "status" });
  const quota = stats.quota as Record<string, unknown> | undefined;
  const max = num(quota, "maxBytes");
  const writes = num(stats, "writes", "berth", "bytesWritten");
  mount(main, h("h1", null, "Storage"), status,
    h("div", { class: "cards", id: "storage-cards" },
      card("Used", bytes(num(quota, "usedBytes"))),
      card("Quota", max === undefined ? "–" : max === 0 ? "none" : bytes(max)),
      card("Free on disk", bytes(num(quota, "freeBytes"))),
      card("Disk size", bytes(num(quota, "totalBytes"))),
      card("Written by berth", bytes(writes)),
      card("Dedupe savings", bytes(num(stats, "dedupe", "savedBytes"))),
      card("Quarantined", String(q.quarantined.length))),
    rights.admin ? h("div", { class: "row actions" },
      h("button", { type: "button", "data-action": "gc", onclick: () => act(status, "Run a garbage-collection pass now? It deletes blobs nothing refers to.", "Run GC", "/api/v1/storage/gc") }, "Run GC"),
      h("button", { type: "button", onclick: () => act(status, "Report what a GC pass would free, deleting nothing?", "GC dry run", "/api/v1/storage/gc?dry_run=true") }, "GC dry run"),
      h("button", { type: "button", "data-action": "scrub", onclick: () => act(status, "Re-hash every stored blob now? This reads the whole store (within the IO budget).", "Scrub", "/api/v1/storage/scrub") }, "Scrub"),
      h("button", { type: "button", "data-action": "retention", onclick: () => act(status, "Apply the retention policies now? Tags they select are deleted.", "Retention", "/api/v1/storage/retention") }, "Apply retention")) : null,
    h("h2", null, "Details"), fields(stats));
}

interface WarmTag { repo: string; tag: string; pulledAt: number }

/** Per upstream: what is pinned (kept and never evicted) and warm (pulled within the warm window, kept fresh). */
function warmSet(regs: Record<string, unknown>[], pins: unknown): HTMLElement {
  const pinList = Array.isArray(pins) ? (pins as { repo: string; tag: string; registry?: string }[]) : [];
  if (regs.length === 0) return h("p", { class: "muted", id: "warm-set" }, "No upstream.");
  return h("div", { id: "warm-set" }, regs.map((r) => {
    const name = String(r.name ?? "");
    const pinned = pinList.filter((p) => p.registry === undefined || p.registry === name);
    const warm = (r.warm as WarmTag[] | undefined) ?? [];
    return h("section", { "data-upstream": name },
      h("h3", null, name),
      h("p", { class: "muted" }, `Warm window: ${typeof r.warmWindowSeconds === "number" && r.warmWindowSeconds > 0 ? `${Math.round(r.warmWindowSeconds / 3600)} h` : "off"}`),
      h("div", { class: "scroll" }, h("table", { class: "warm" },
        h("thead", null, h("tr", null, ["Image", "Why kept", "Last pulled"].map((c) => h("th", null, c)))),
        h("tbody", null,
          pinned.map((p) => h("tr", { "data-kind": "pinned" }, h("td", { class: "mono" }, `${p.repo}:${p.tag}`), h("td", null, h("span", { class: "badge ok" }, "pinned")), h("td", null, "–"))),
          warm.map((w) => h("tr", { "data-kind": "warm" }, h("td", { class: "mono" }, `${w.repo}:${w.tag}`), h("td", null, h("span", { class: "badge" }, "warm")), h("td", null, when(w.pulledAt)))),
          pinned.length + warm.length === 0 ? h("tr", null, h("td", { colspan: 3, class: "muted" }, "Nothing pinned or warm.")) : null))));
  }));
}

/** The sync page. */
export async function syncPage(main: HTMLElement): Promise<void> {
  const [s, rights] = await Promise.all([json<{ registries?: Record<string, unknown>[]; fetches?: unknown[]; pins?: unknown }>("/api/v1/sync"), myRights()]);
  const status = h("div", { id: "status", role: "status" });
  const regs = s.registries ?? [];
  mount(main, h("h1", null, "Sync"), status,
    regs.length === 0 ? h("p", { class: "muted" }, "No upstream configured ([[sync.registries]]).") : h("div", { class: "scroll" }, h("table", { id: "upstreams" },
      h("thead", null, h("tr", null, ["Upstream", "State", "Last run", ""].map((c) => h("th", null, c)))),
      h("tbody", null, regs.map((r) => {
        const name = String(r.name ?? "");
        const breaker = r.breaker as { state?: string } | undefined;
        const state = String(breaker?.state ?? r.state ?? (r.up === false ? "down" : "up"));
        return h("tr", null, h("td", null, name), h("td", null, h("span", { class: `badge ${/closed|up/.test(state) ? "ok" : "bad"}` }, state)), h("td", null, fields(r.lastRun ?? "never")),
          h("td", null, rights.admin ? h("button", { type: "button", class: "small", "data-sync": name, onclick: () => act(status, `Run a full sync of ${name} now?`, "Sync run", `/api/v1/sync/${encodeURIComponent(name)}/run`) }, "Run now") : null));
      })))),
    h("h2", null, "Fetches in flight"), fields(s.fetches ?? []),
    h("h2", null, "Pinned and warm"), warmSet(regs, s.pins),
    h("h2", null, "Details"), fields(s));
}

interface SchedulerState {
  concurrency?: number;
  inWindow?: boolean;
  windows?: string[];
  queue?: { name: string; priority: number; heavy: boolean; waitingMs: number; startsInMs: number }[];
  running?: { name: string; heavy: boolean; runningMs: number; progress?: unknown }[];
  budget?: { rates?: Record<string, number>; available?: Record<string, { bytes: number | null; ops: number | null }>; backgroundWaitedMs?: number };
}

/** "unlimited" for a rate of 0, else bytes or operations per second. */
function rate(n: number | undefined, unit: "B" | "ops"): string {
  if (n === undefined) return "–";
  if (n === 0) return "unlimited";
  return unit === "B" ? `${bytes(n)}/s` : `${n} ops/s`;
}

/** The IO budget's rates as cards. */
function budgetCards(b: SchedulerState["budget"]): HTMLElement {
  const r = b?.rates ?? {};
  return h("div", { class: "cards", id: "budget" },
    card("Background reads", rate(r.readBytesPerSecond, "B")), card("Background writes", rate(r.writeBytesPerSecond, "B")),
    card("Read operations", rate(r.readOpsPerSecond, "ops")), card("Write operations", rate(r.writeOpsPerSecond, "ops")),
    card("Waited for budget", `${Math.round((b?.backgroundWaitedMs ?? 0) / 1000)} s`));
}

/** The scheduler's queue and running tasks. */
function queueTable(s: SchedulerState): HTMLElement {
  const rows = [
    ...(s.running ?? []).map((r) => h("tr", { "data-state": "running" }, h("td", { class: "mono" }, r.name), h("td", null, h("span", { class: "badge ok" }, "running")), h("td", null, r.heavy ? "heavy" : ""), h("td", null, `${Math.round(r.runningMs / 1000)} s`))),
    ...(s.queue ?? []).map((q) => h("tr", { "data-state": "queued" }, h("td", { class: "mono" }, q.name), h("td", null, h("span", { class: "badge" }, q.startsInMs > 0 ? `in ${Math.round(q.startsInMs / 1000)} s` : "queued")), h("td", null, `${q.heavy ? "heavy, " : ""}priority ${q.priority}`), h("td", null, `waiting ${Math.round(q.waitingMs / 1000)} s`))),
  ];
  return rows.length === 0 ? h("p", { class: "muted", id: "queue" }, "Nothing queued or running.") : h("div", { class: "scroll" }, h("table", { id: "queue" },
    h("thead", null, h("tr", null, ["Task", "State", "Kind", "Time"].map((c) => h("th", null, c)))), h("tbody", null, rows)));
}

/** The background tasks page: the scheduler's queue, the IO budget, and the admin API's recent tasks. */
export async function tasksPage(main: HTMLElement): Promise<void> {
  const [s, recent] = await Promise.all([json<SchedulerState>("/api/v1/scheduler"), recentTasks()]);
  mount(main, h("h1", null, "Background tasks"),
    h("p", { class: "muted" }, `Concurrency ${s.concurrency ?? "–"}; ${s.windows?.length ? `windows ${s.windows.join(", ")} (${s.inWindow ? "inside one now" : "outside them now"})` : "no time windows"}.`),
    h("h2", null, "Scheduler queue"), queueTable(s),
    h("h2", null, "IO budget"), budgetCards(s.budget),
    h("h2", null, "Recent tasks"), recent,
    h("details", null, h("summary", null, "Scheduler details"), fields(s)));
}

/** The health and board page (the probes answer anyone; the admin figures need rights). */
export async function healthPage(main: HTMLElement): Promise<void> {
  const probe = (p: string) => fetch(p, { credentials: "omit", cache: "no-store" }).then(async (r) => `${r.status} ${(await r.json().catch(() => ({}))).status ?? ""}`, (e) => String(e));
  const [live, ready, info, sched] = await Promise.all([probe("/livez"), probe("/readyz"), json<Record<string, unknown>>("/api/v1/info").catch((e) => ({ unavailable: (e as Error).message })),
    json<SchedulerState>("/api/v1/scheduler").catch(() => undefined)]);
  const board = (info as { board?: { profile?: string; ioProfile?: string; detected?: string; model?: string; arch?: string; memoryBytes?: number } }).board;
  mount(main, h("h1", null, "Health and board"),
    h("div", { class: "cards" }, card("Live", live), card("Ready", ready), card("Memory (RSS)", bytes(num(info, "rssBytes"))), card("Uptime", num(info, "uptimeSeconds") !== undefined ? `${Math.round(num(info, "uptimeSeconds")! / 60)} min` : "–")),
    board ? [h("h2", null, "Board"), h("div", { class: "cards", id: "board" },
      card("Profile in use", board.profile ?? "–"), card("Detected board", board.detected ?? "–"), card("IO profile", board.ioProfile ?? "–"),
      card("Model", board.model || `${board.arch ?? "?"} (no device tree)`), card("Memory", bytes(board.memoryBytes)))] : null,
    sched ? [h("h2", null, "IO budget"), budgetCards(sched.budget), h("h2", null, "Scheduler queue"), queueTable(sched)] : null,
    h("h2", null, "Details"), fields(info));
}
