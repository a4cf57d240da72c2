/**
 * The appliance pages, from the admin API: storage (usage, quota, writes, scrub, GC),
 * sync (upstreams, last runs, pins, fetches in flight), background tasks (the scheduler's
 * queue and IO budget), and health (probes, version, memory). Actions (GC, scrub, a sync
 * run) ask for confirmation; the server still decides (admins only, loopback without a token).
 */
import { call, failure, json, myRights } from "./api";
import { bytes, confirmDialog, fields, h, mount } from "./dom";

/** A POST after confirmation, reporting into `status`. */
async function act(status: HTMLElement, message: string, label: string, path: string, after?: () => void): Promise<void> {
  if (!(await confirmDialog(message, label))) return;
  status.textContent = `${label}…`;
  const res = await call(path, { method: "POST" });
  if (!res.ok) {
    status.textContent = `${label} refused: ${(await failure(res)).message}`;
    status.className = "error";
    return;
  }
  const body = await res.json().catch(() => ({}));
  status.className = "ok";
  status.replaceChildren(h("span", null, `${label}: done.`), fields(body));
  after?.();
}

function card(title: string, value: string): HTMLElement {
  return h("div", { class: "card" }, h("div", { class: "muted" }, title), h("div", { class: "big" }, value));
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
      card("Dedupe savings", "not reported"),
      card("Quarantined", String(q.quarantined.length))),
    rights.admin ? h("div", { class: "row actions" },
      h("button", { type: "button", "data-action": "gc", onclick: () => act(status, "Run a garbage-collection pass now? It deletes blobs nothing refers to.", "Run GC", "/api/v1/storage/gc") }, "Run GC"),
      h("button", { type: "button", onclick: () => act(status, "Report what a GC pass would free, deleting nothing?", "GC dry run", "/api/v1/storage/gc?dry_run=true") }, "GC dry run"),
      h("button", { type: "button", onclick: () => act(status, "Re-hash every stored blob now? This reads the whole store (within the IO budget).", "Scrub", "/api/v1/storage/scrub") }, "Scrub")) : null,
    h("h2", null, "Details"), fields(stats));
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
          h("td", null, rights.admin ? h("button", { type: "button", class: "small", onclick: () => act(status, `Queue a full sync of ${name} now?`, "Sync run", `/api/v1/sync/${encodeURIComponent(name)}/run`) }, "Run now") : null));
      })))),
    h("h2", null, "Fetches in flight"), fields(s.fetches ?? []),
    h("h2", null, "Pins and warm set"), fields(s.pins ?? []),
    h("h2", null, "Details"), fields(s));
}

/** The background tasks page. */
export async function tasksPage(main: HTMLElement): Promise<void> {
  const s = await json<Record<string, unknown>>("/api/v1/scheduler");
  mount(main, h("h1", null, "Background tasks"), fields(s));
}

/** The health and board page (the probes answer anyone; the admin figures need rights). */
export async function healthPage(main: HTMLElement): Promise<void> {
  const probe = (p: string) => fetch(p, { credentials: "omit", cache: "no-store" }).then(async (r) => `${r.status} ${(await r.json().catch(() => ({}))).status ?? ""}`, (e) => String(e));
  const [live, ready, info] = await Promise.all([probe("/livez"), probe("/readyz"), json<Record<string, unknown>>("/api/v1/info").catch((e) => ({ unavailable: (e as Error).message }))]);
  mount(main, h("h1", null, "Health and board"),
    h("div", { class: "cards" }, card("Live", live), card("Ready", ready), card("Memory (RSS)", bytes(num(info, "rssBytes"))), card("Uptime", num(info, "uptimeSeconds") !== undefined ? `${Math.round(num(info, "uptimeSeconds")! / 60)} min` : "–")),
    h("h2", null, "Details"), fields(info));
}
