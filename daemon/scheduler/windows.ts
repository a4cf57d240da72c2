/**
 * Maintenance windows: "HH:MM-HH:MM" in local time, e.g. "02:00-05:00"; a window whose end
 * is before its start crosses midnight ("22:00-04:00"). Several windows may be given; an
 * empty list means "always".
 */

/** One parsed window, in minutes after local midnight. */
export interface Window {
  readonly text: string;
  readonly start: number;
  readonly end: number;
}

/** Parses one window; returns an error message instead when the text is not one. */
export function parseWindow(text: string): Window | string {
  const m = /^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$/.exec(text);
  if (!m) return `"${text}" is not a window of the form "HH:MM-HH:MM"`;
  const [h1, m1, h2, m2] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  if (h1 > 24 || h2 > 24 || m1 > 59 || m2 > 59 || (h1 === 24 && m1 > 0) || (h2 === 24 && m2 > 0)) return `"${text}" has a time outside 00:00..24:00`;
  const start = h1 * 60 + m1;
  const end = h2 * 60 + m2;
  if (start === end) return `"${text}" is an empty window`;
  return { text, start, end };
}

/** True when `date` (local time) falls inside one of `windows`, or when there are none. */
export function inWindows(windows: readonly Window[], date: Date = new Date()): boolean {
  if (windows.length === 0) return true;
  const minute = date.getHours() * 60 + date.getMinutes();
  return windows.some((w) => (w.start < w.end ? minute >= w.start && minute < w.end : minute >= w.start || minute < w.end));
}
