/**
 * Keys kept for old configurations: each still works, mapped onto the key that replaced
 * it, and leaves a warning that `berth verify` prints and `serve` logs at start-up.
 *
 * - `[gc] upload_idle`: GC no longer removes upload sessions; they expire on their own
 *   timer (`[storage] upload_expiry`). Its value becomes upload_expiry (capped at that
 *   key's maximum) unless upload_expiry is set too, in which case it is ignored.
 * - `[scheduler] profile`: renamed `io_profile` (it names an IO budget, not a board, which
 *   `[board] profile` does). Its value becomes io_profile unless io_profile is set in the
 *   same file, in which case it is ignored.
 */
import type { Config } from "./schema";

const UPLOAD_EXPIRY_MAX = 7 * 24 * 3600;
const warnings = new WeakMap<Config, readonly string[]>();

function section(doc: Record<string, unknown>, name: string): Record<string, unknown> | undefined {
  const s = doc[name];
  return typeof s === "object" && s !== null && !Array.isArray(s) ? (s as Record<string, unknown>) : undefined;
}

/**
 * Maps deprecated keys of the file's own document `raw` onto `config` (validated from it)
 * and records the warnings for {@link configWarnings}.
 */
export function applyDeprecations(raw: Record<string, unknown>, config: Config): void {
  const out: string[] = [];
  if (section(raw, "gc")?.upload_idle !== undefined) {
    const idle = config.gc.upload_idle;
    if (section(raw, "storage")?.upload_expiry !== undefined) {
      out.push(`gc.upload_idle is deprecated and ignored: storage.upload_expiry (${config.storage.upload_expiry} s) is set; remove gc.upload_idle`);
    } else {
      const expiry = Math.min(idle, UPLOAD_EXPIRY_MAX);
      (config.storage as { upload_expiry: number }).upload_expiry = expiry;
      const capped = expiry < idle ? `, capped at ${UPLOAD_EXPIRY_MAX} s` : "";
      out.push(`gc.upload_idle is deprecated: upload sessions expire on their own timer; its value (${idle} s) is used as storage.upload_expiry${capped}; rename the key`);
    }
  }
  const scheduler = section(raw, "scheduler");
  if (scheduler?.profile !== undefined) {
    if (scheduler.io_profile !== undefined) {
      out.push(`scheduler.profile is deprecated and ignored: scheduler.io_profile ("${config.scheduler.io_profile}") is set; remove scheduler.profile`);
    } else {
      (config.scheduler as { io_profile: string }).io_profile = config.scheduler.profile;
      out.push(`scheduler.profile is deprecated: it is now scheduler.io_profile; its value ("${config.scheduler.profile}") is used for it; rename the key`);
    }
  }
  warnings.set(config, out);
}

/** Warnings about deprecated keys of `config` (empty when none). */
export function configWarnings(config: Config): readonly string[] {
  return warnings.get(config) ?? [];
}
