/**
 * Structured logging: one JSON object per line on stderr (or plain text for a terminal).
 * Writes go to stderr unbuffered, so nothing is lost when the process is killed. A log sink
 * that goes away (a closed pipe) silences the log; it never stops the registry.
 */

/** Log levels, lowest first. */
export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A logger; `fields` are merged into the line. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** Logs `msg` at warn level the first time `key` is seen, never again. */
  once(key: string, msg: string, fields?: Record<string, unknown>): void;
}

/** A logger whose level and format can be changed while it runs (SIGHUP reload). */
export interface ReconfigurableLogger extends Logger {
  reconfigure(level: Level, format: "json" | "text"): void;
}

/** Creates a logger writing to `sink` (stderr by default). */
export function createLogger(level: Level, format: "json" | "text", sink: (line: string) => void = stderrSink()): ReconfigurableLogger {
  let min = RANK[level];
  const seen = new Set<string>();
  const emit = (lvl: Level, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    const time = new Date().toISOString();
    if (format === "json") {
      sink(`${JSON.stringify({ time, level: lvl, msg, ...fields }, errorReplacer)}\n`);
    } else {
      // a field whose value is undefined is left out, as JSON.stringify does in the json format
      const extra = fields ? Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v, errorReplacer)}`).join(" ") : "";
      sink(`${time} ${lvl.toUpperCase()} ${msg}${extra ? ` ${extra}` : ""}\n`);
    }
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    reconfigure(newLevel, newFormat) {
      min = RANK[newLevel];
      format = newFormat;
    },
    once(key, m, f) {
      if (seen.has(key)) return;
      seen.add(key);
      emit("warn", m, f);
    },
  };
}

/** Writes to stderr; after the first write error (EPIPE: nobody reads) it drops lines. */
function stderrSink(): (line: string) => void {
  let broken = false;
  process.stderr.on("error", () => {
    broken = true;
  });
  return (line) => {
    if (broken) return;
    try {
      process.stderr.write(line);
    } catch {
      broken = true;
    }
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  return value;
}

/** A logger that drops everything (for tests). */
export const silentLogger: Logger = createLogger("error", "json", () => {});
