/**
 * The UI's whole "framework": an element builder that only ever sets text (never HTML, so
 * nothing a registry returns can inject markup), and the formatting of sizes and times.
 */

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | EventListener | undefined | null>;

/** Builds an element: attributes (`on*` are listeners, booleans toggle) and children (text is escaped). */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs | null = null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the content of `el`. */
export function mount(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** "12.3 MiB" for a byte count; "–" when unknown. */
export function bytes(n: unknown): string {
  if (typeof n !== "number" || !Number.isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** A time as "2026-12-03 11:58" (local), from ms, seconds-since-epoch guesses or an ISO string. */
export function when(t: unknown): string {
  if (t === null || t === undefined || t === "" || t === 0) return "–";
  const d = typeof t === "number" ? new Date(t < 1e12 ? t * 1000 : t) : new Date(String(t));
  if (Number.isNaN(d.getTime())) return String(t);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** A digest shortened for tables ("sha256:0123456789ab"). */
export function short(digest: string): string {
  const i = digest.indexOf(":");
  return i < 0 ? digest.slice(0, 12) : digest.slice(0, i + 13);
}

/** A button that copies `text` (the clipboard needs a secure context; otherwise the text is selected). */
export function copyable(text: string): HTMLElement {
  const code = h("code", null, text);
  const btn = h("button", {
    class: "small",
    type: "button",
    onclick: () => {
      const done = () => (btn.textContent = "copied");
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, () => select(code));
      else select(code);
    },
  }, "copy");
  return h("div", { class: "cmd" }, code, btn);
}

function select(el: Element): void {
  const range = document.createRange();
  range.selectNodeContents(el);
  const sel = getSelection();
  sel?.removeAllRanges();
  sel?.addRange(range);
}

/** Asks for confirmation in a modal dialog; resolves true on "confirm". */
export function confirmDialog(message: string, action: string): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm" },
      h("p", null, message),
      h("div", { class: "row" },
        h("button", { type: "button", class: "danger", "data-confirm": "", onclick: () => close(true) }, action),
        h("button", { type: "button", onclick: () => close(false) }, "Cancel")));
    const close = (ok: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(ok);
    };
    dialog.addEventListener("cancel", () => close(false));
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

/** A definition list of an object's fields; nested objects as nested lists, byte fields formatted. */
export function fields(obj: unknown, depth = 0): HTMLElement {
  if (obj === null || typeof obj !== "object") return h("span", null, String(obj));
  if (Array.isArray(obj)) {
    if (obj.length === 0) return h("span", { class: "muted" }, "none");
    return h("ul", { class: "plain" }, obj.slice(0, 200).map((v) => h("li", null, typeof v === "object" && depth < 4 ? fields(v, depth + 1) : String(v))));
  }
  return h("dl", { class: "kv" }, Object.entries(obj as Record<string, unknown>).map(([k, v]) => [
    h("dt", null, k),
    h("dd", null, typeof v === "object" && v !== null ? (depth < 4 ? fields(v, depth + 1) : JSON.stringify(v)) : /bytes$|Bytes$|size$|Size$/.test(k) && typeof v === "number" ? `${bytes(v)} (${v})` : /At$|^last|time$|Time$/i.test(k) && typeof v === "number" && v > 1e9 ? when(v) : String(v)),
  ]));
}
