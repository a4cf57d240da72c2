/**
 * Output of the client commands: aligned tables for people, JSON for scripts, sizes in
 * binary units, and a progress bar (bytes, rate, ETA) drawn on standard error only when it
 * is a terminal, so that pipes and scripts see nothing of it.
 */

/** C0 and C1 control characters and DEL: what a terminal may obey instead of showing. */
const CONTROL = /[\x00-\x1f\x7f-\x9f]/g;

/**
 * `text` fit for a terminal: every control character (escape sequences, carriage returns,
 * newlines) shown as `\xNN` (`\n`, `\r`, `\t`), so a string from a registry can neither drive
 * the terminal nor fake lines of output. For human output only; JSON output stays exact.
 */
export function printable(text: string): string {
  return text.replace(CONTROL, (c) => (c === "\n" ? "\\n" : c === "\r" ? "\\r" : c === "\t" ? "\\t" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`));
}

/** Formats rows under a header as aligned columns (the last column is not padded); cells are made {@link printable}. */
export function table(head: string[], rows: string[][]): string {
  rows = rows.map((r) => r.map((c) => printable(c ?? "")));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd()).join("\n");
}

/** Prints `value` as indented JSON on stdout. */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

/** A byte count in binary units: 0 B, 512 B, 1.5 KiB, 3.2 MiB … */
export function bytes(n: number): string {
  if (!Number.isFinite(n)) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) (v /= 1024), u++;
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** Parses a size such as 512, 4KiB, 1MiB, 1M, 2GB (decimal suffixes are read as binary); undefined when it is not one. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?$/i.exec(text.trim());
  if (!m) return undefined;
  const exp = " KMGT".indexOf((m[2] || " ").toUpperCase());
  return Math.round(Number(m[1]) * 1024 ** exp);
}

/** Seconds as "1m05s", "42s". */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

/** What a progress bar is told. */
export interface ProgressState {
  done: number;
  total: number | null;
  bytes: number;
  totalBytes: number | null;
}

/** A progress line on stderr, redrawn in place; does nothing when stderr is not a terminal (or `enabled` is false). */
export class ProgressBar {
  private readonly started = Date.now();
  private drawn = false;

  constructor(
    private readonly label: string,
    private readonly enabled = Boolean(process.stderr.isTTY),
  ) {}

  /** Redraws the line. */
  update(p: ProgressState): void {
    if (!this.enabled) return;
    const elapsed = (Date.now() - this.started) / 1000;
    const fraction = p.totalBytes ? p.bytes / p.totalBytes : p.total ? p.done / p.total : null;
    const width = 24;
    const bar = fraction === null ? "" : `[${"#".repeat(Math.round(Math.min(1, fraction) * width)).padEnd(width, ".")}] ${Math.floor(Math.min(1, fraction) * 100)}% `;
    const rate = elapsed > 0 ? p.bytes / elapsed : 0;
    const eta = fraction && fraction > 0 && fraction < 1 ? ` ETA ${duration((elapsed * (1 - fraction)) / fraction)}` : "";
    const count = p.total !== null ? `${p.done}/${p.total}` : `${p.done}`;
    const size = p.totalBytes ? `${bytes(p.bytes)}/${bytes(p.totalBytes)}` : bytes(p.bytes);
    process.stderr.write(`\r\x1b[K${this.label} ${bar}${count} ${size} ${bytes(rate)}/s${eta}`);
    this.drawn = true;
  }

  /** Ends the line (if one was drawn). */
  finish(): void {
    if (this.drawn) process.stderr.write("\n");
    this.drawn = false;
  }
}
