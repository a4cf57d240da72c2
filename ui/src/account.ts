/**
 * Login, logout and the user's API keys. Login trades the password (or API key) for a UI
 * session token once (api.ts `login`); the password is not kept. Creating a key asks the
 * server, which refuses a key minted with a key or a token.
 */
import { call, failure, json, login, logout, resetRights, server, takeExpiredNotice, user } from "./api";
import { confirmDialog, copyable, h, mount, when } from "./dom";


/** The login page; `done` runs after a successful login. */
export function loginPage(main: HTMLElement, done: () => void): void {
  const name = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const notice = takeExpiredNotice();
  const status = h("p", { id: "status", role: "status", class: notice ? "error" : undefined }, notice ?? "");
  const form = h("form", { class: "login" },
    h("label", { for: "username" }, "User"), name,
    h("label", { for: "password" }, "Password or API key"), pass,
    h("button", { type: "submit" }, "Log in"), status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const refused = await login(name.value, pass.value);
    pass.value = "";
    if (refused) {
      status.textContent = `Login refused: ${refused.message}`;
      status.className = "error";
      return;
    }
    resetRights();
    done();
  });
  mount(main, h("h1", null, "Log in"), server.auth ? null : h("p", { class: "muted" }, "This registry has no [auth]: everyone sees everything it serves."), form);
}

/** Logs out (the tab forgets the session; the server ends it). */
export async function doLogout(): Promise<void> {
  await logout();
  resetRights();
}

interface KeyInfo {
  id: string;
  owner: string;
  label: string;
  created: string;
  expires: string | null;
  lastUsed: string | null;
}

/** The API keys page. */
export async function keysPage(main: HTMLElement): Promise<void> {
  if (!user()) {
    mount(main, h("h1", null, "API keys"), h("p", null, "Log in to manage your API keys."));
    return;
  }
  const { keys } = await json<{ keys: KeyInfo[] }>("/api/v1/keys");
  const status = h("div", { id: "status", role: "status" });
  const label = h("input", { id: "key-label", placeholder: "label, e.g. ci-runner", required: true, maxlength: 200 });
  const days = h("input", { id: "key-days", type: "number", min: 1, max: 3650, value: 90, "aria-label": "Expires in days" });
  const form = h("form", { class: "row" }, label, days, h("span", null, "days"), h("button", { type: "submit" }, "Create key"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = await call("/api/v1/keys", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ label: label.value, expires_in: Math.round(Number(days.value) * 86400) }) });
    if (!res.ok) {
      status.className = "error";
      status.textContent = `Not created: ${(await failure(res)).message}`;
      return;
    }
    const k = (await res.json()) as { key: string };
    await keysPage(main);
    const again = main.querySelector("#status")!;
    again.className = "ok";
    again.replaceChildren(h("p", null, "The key is shown only now; copy it:"), copyable(k.key));
  });
  mount(main, h("h1", null, "API keys"), status, h("p", { class: "muted" }, "Use a key as the password of your user name (docker login, podman login, the token endpoint)."), form,
    h("div", { class: "scroll" }, h("table", { id: "keys" },
      h("thead", null, h("tr", null, ["Label", "Owner", "Created", "Expires", "Last used", ""].map((c) => h("th", null, c)))),
      h("tbody", null, keys.map((k) => h("tr", null, h("td", null, k.label), h("td", null, k.owner), h("td", null, when(k.created)), h("td", null, when(k.expires)), h("td", null, when(k.lastUsed)),
        h("td", null, h("button", { type: "button", class: "danger small", onclick: async () => {
          if (!(await confirmDialog(`Revoke the key "${k.label}"? Clients using it are refused at once.`, "Revoke"))) return;
          const res = await call(`/api/v1/keys/${k.id}`, { method: "DELETE" });
          if (!res.ok) {
            status.className = "error";
            status.textContent = `Not revoked: ${(await failure(res)).message}`;
            return;
          }
          await keysPage(main);
        } }, "Revoke"))))))));
}
