/**
 * berth's web UI: a hash-routed single page (repository names have slashes, so the route is
 * the hash, and the server serves one document). Every page reads berth's public APIs
 * through api.ts; nothing is kept between pages but the tab's login.
 */
import "./style.css";
import { myRights, server, user, whenExpired } from "./api";
import { doLogout, keysPage, loginPage } from "./account";
import { healthPage, storagePage, syncPage, tasksPage } from "./appliance";
import { h, mount } from "./dom";
import { imagePage } from "./image";
import { repoPage } from "./repo";
import { reposPage } from "./repos";

const main = h("main", { id: "main" });
const nav = h("nav", { id: "nav" });

function navigation(): void {
  const who = user();
  const here = location.hash || "#/repos";
  const link = (href: string, text: string) => h("a", { href, class: here.startsWith(href) ? "here" : undefined }, text);
  mount(nav,
    h("a", { href: "#/repos", class: "brand" }, "berth"),
    link("#/repos", "Repositories"), h("span", { id: "admin-links", hidden: true }, link("#/storage", "Storage"), link("#/sync", "Sync"), link("#/tasks", "Tasks")), link("#/health", "Health"),
    who && server.keys ? link("#/keys", "API keys") : null,
    h("span", { class: "spacer" }),
    who
      ? [h("span", { class: "who", id: "who" }, who), h("button", { type: "button", class: "small", id: "logout", onclick: async () => { await doLogout(); location.hash = "#/repos"; void route(); } }, "Log out")]
      : h("a", { href: "#/login", id: "login" }, "Log in"));
  // the appliance pages are the admin API's: offered to identities it answers
  void myRights().then((r) => nav.querySelector("#admin-links")?.toggleAttribute("hidden", !r.admin));
}

/** Counts routings: a page that fails after the user (or an expired session) moved on shows nothing. */
let routing = 0;

async function route(): Promise<void> {
  const mine = ++routing;
  navigation();
  const hash = decodeURIComponent(location.hash.slice(1)) || "/repos";
  const [path, query] = hash.split("?") as [string, string | undefined];
  mount(main, h("p", { class: "muted", id: "loading" }, "Loading…"));
  try {
    if (path === "/repos" || path === "/") await reposPage(main, new URLSearchParams(query ?? ""));
    else if (path.startsWith("/repo/")) await repoPage(main, path.slice(6));
    else if (path.startsWith("/image/")) await imagePage(main, path.slice(7));
    else if (path === "/storage") await storagePage(main);
    else if (path === "/sync") await syncPage(main);
    else if (path === "/tasks") await tasksPage(main);
    else if (path === "/health") await healthPage(main);
    else if (path === "/keys") await keysPage(main);
    else if (path === "/login") loginPage(main, () => { location.hash = "#/repos"; });
    else mount(main, h("h1", null, "Not found"), h("p", null, `No page "${path}".`));
  } catch (err) {
    if (mine !== routing) return;
    const status = (err as { status?: number }).status;
    mount(main, h("h1", null, "Cannot show this page"), h("p", { class: "error", id: "page-error" }, (err as Error).message),
      status === 401 && !user() ? h("p", null, h("a", { href: "#/login" }, "Log in"), " to see more.") : null,
      status === 403 ? h("p", { class: "muted" }, "This identity is not allowed to see it.") : null);
  }
}

// an expired session: back to the login page, which says why (then on to the front page)
whenExpired(() => {
  if (location.hash === "#/login") void route();
  else location.hash = "#/login";
});
document.body.append(h("header", null, nav), main);
addEventListener("hashchange", () => void route());
void route();
