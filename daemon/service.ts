/**
 * Running under a service manager: readiness and watchdog notifications (sd_notify), and the
 * signals. SIGTERM/SIGINT drain and stop (STOPPING=1 first); SIGHUP re-reads the
 * configuration file (RELOADING=1 ... READY=1) and applies what can change while running:
 * the log level and format, and (through `reload`) the access policy of `[auth]` and
 * `[[access]]`. Keys that need a restart are named in the log when they differ. A file that
 * no longer validates is reported and the running configuration is kept. With
 * `watchConfig`, a change to the file is re-read the same way without a signal.
 */
import { watch } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { ConfigError, loadConfig } from "./config/load";
import type { Config } from "./config/schema";
import type { ReconfigurableLogger } from "./log";
import { type Notifier, createNotifier } from "./platform/sdnotify";
import { VERSION } from "./version";

/** What {@link runService} drives. */
export interface ServiceDeps {
  config: Config;
  /** The file the configuration came from (undefined: the embedded default; reload is then a no-op). */
  configPath: string | undefined;
  log: ReconfigurableLogger;
  /** Drains and stops the daemon. */
  close(): Promise<void>;
  /** Applies a re-read configuration to the running daemon (optional, beyond logging). */
  reload?(next: Config): void;
  notifier?: Notifier;
  /** Also re-read the configuration when its file changes (set while `[auth]` is on, so policy edits apply at once). */
  watchConfig?: boolean;
}

/** Keys whose new value takes effect on SIGHUP; every other change needs a restart. */
export const LIVE_KEYS = ["log.level", "log.format"] as const;

/** `[auth]` and `[[access]]` keys: applied on reload by the daemon (auth/setup.ts). */
function isAuthKey(key: string): boolean {
  return key.startsWith("auth.") || key.startsWith("access.");
}

/** Dotted keys whose values differ between two configurations. */
export function changedKeys(a: Config, b: Config): string[] {
  const out: string[] = [];
  for (const [section, fields] of Object.entries(a) as [string, Record<string, unknown>][]) {
    const other = (b as unknown as Record<string, Record<string, unknown>>)[section] ?? {};
    for (const [key, value] of Object.entries(fields)) {
      if (JSON.stringify(value) !== JSON.stringify(other[key])) out.push(`${section}.${key}`);
    }
  }
  return out;
}

/** Notifies readiness, runs the watchdog, and handles signals; resolves once the daemon has stopped. */
export async function runService(deps: ServiceDeps): Promise<void> {
  const { log } = deps;
  const notifier = deps.notifier ?? createNotifier();
  let current = deps.config;
  // the stop signals are handled before READY=1: a SIGTERM right after it must drain, not kill
  let stopWith: ((signal: string) => void) | undefined;
  let early: string | undefined;
  const onSignal = (signal: string) => (stopWith ? stopWith(signal) : (early ??= signal));
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  process.once("SIGINT", () => onSignal("SIGINT"));
  if (notifier.enabled) {
    if (!(await notifier.notify(`READY=1\nSTATUS=serving\nMAINPID=${process.pid}`))) {
      log.error("could not notify the service manager (NOTIFY_SOCKET)", { socket: process.env.NOTIFY_SOCKET });
    }
  }
  const stopWatchdog = notifier.startWatchdog();
  const onHup = () => {
    void (async () => {
      await notifier.notify(`RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=${monotonicUsec()}`);
      if (deps.configPath === undefined) {
        log.info("reload: running on the embedded default configuration; nothing to re-read");
      } else {
        try {
          const next = loadConfig(deps.configPath);
          const changed = changedKeys(current, next);
          const live = changed.filter((k) => (LIVE_KEYS as readonly string[]).includes(k) || isAuthKey(k));
          const restart = changed.filter((k) => !live.includes(k));
          log.reconfigure(next.log.level, next.log.format);
          deps.reload?.(next);
          current = { ...current, log: next.log, auth: next.auth, access: next.access };
          log.info("configuration reloaded", { applied: live, needRestart: restart });
        } catch (err) {
          const problems = err instanceof ConfigError ? err.problems : [String(err)];
          log.error("reload failed; keeping the running configuration", { problems });
        }
      }
      await notifier.notify(`READY=1\nSTATUS=serving (version ${VERSION})`);
    })();
  };
  process.on("SIGHUP", onHup);
  const watcher = deps.watchConfig && deps.configPath !== undefined ? watchFile(deps.configPath, onHup, log) : undefined;
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info("shutting down", { signal });
      process.off("SIGHUP", onHup);
      watcher?.close();
      stopWatchdog();
      void notifier.notify("STOPPING=1\nSTATUS=draining").finally(() => deps.close().then(resolve, resolve));
    };
    stopWith = stop;
    if (early !== undefined) stop(early);
  });
  notifier.close();
}

/**
 * Calls `onChange` once a burst of changes to `path` has settled (250 ms). The directory is
 * watched, so a file replaced by rename (editors, config management) is still seen.
 */
function watchFile(path: string, onChange: () => void, log: ReconfigurableLogger): { close(): void } | undefined {
  const name = basename(path);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const w = watch(dirname(resolve(path)), (_event, file) => {
      if (file !== null && file !== name) return;
      clearTimeout(timer);
      timer = setTimeout(onChange, 250);
    });
    w.on("error", (err) => log.warn("configuration file watch stopped; reload with SIGHUP", { path, error: err.message }));
    return {
      close() {
        clearTimeout(timer);
        w.close();
      },
    };
  } catch (err) {
    log.warn("cannot watch the configuration file; reload with SIGHUP", { path, error: (err as Error).message });
    return undefined;
  }
}

function monotonicUsec(): string {
  return String(process.hrtime.bigint() / 1000n);
}
