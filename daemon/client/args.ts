/**
 * Argument parsing shared by the client commands, and the one place a command's flags turn
 * into a connected {@link RegistryClient}: `--registry ALIAS|URL` (`-r`), `--ca FILE`,
 * `--timeout SECONDS`, `--json`. A cve or trust command does:
 *
 *   const a = parseArgs(argv, { bool: ["--json"], value: ["--severity"] }, COMMON);
 *   const { client } = connect(a);
 *   … client.json(…) …
 *
 * and ends with `finish(err)` for the message and exit code.
 */
import { ClientError, EXIT, exitCodeOf, type ExitCode } from "./errors";
import { printable } from "./output";
import { readCredentials, resolveRegistry } from "./credentials";
import { RegistryClient } from "./http";

/** Flags every client command takes. */
export const COMMON = { bool: ["--json"], value: ["--registry", "--ca", "--timeout"] } as const;

/** Which flags a command takes: booleans, and flags with a value (`--x V` or `--x=V`). */
export interface FlagSpec {
  bool?: readonly string[];
  value?: readonly string[];
}

/** Parsed arguments. */
export interface Parsed {
  flags: Set<string>;
  values: Map<string, string>;
  positional: string[];
}

const ALIASES: Record<string, string> = { "-r": "--registry", "-y": "--yes" };

/** Parses `argv` against the specs; throws a usage ClientError on an unknown flag or a missing value. */
export function parseArgs(argv: readonly string[], ...specs: FlagSpec[]): Parsed {
  const bool = new Set(specs.flatMap((s) => s.bool ?? []));
  const value = new Set(specs.flatMap((s) => s.value ?? []));
  const out: Parsed = { flags: new Set(), values: new Map(), positional: [] };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]!;
    let inline: string | undefined;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) (inline = arg.slice(eq + 1)), (arg = arg.slice(0, eq));
    arg = ALIASES[arg] ?? arg;
    if (bool.has(arg) && inline === undefined) out.flags.add(arg);
    else if (value.has(arg)) {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new ClientError(`${arg} needs a value`, EXIT.usage);
      out.values.set(arg, v);
    } else if (arg.startsWith("-") && arg !== "-") throw new ClientError(`unknown argument "${argv[i]}"`, EXIT.usage);
    else out.positional.push(argv[i]!);
  }
  return out;
}

/** `--timeout SECONDS` in ms (default 30 s). */
export function timeoutOf(a: Parsed): number {
  const t = a.values.get("--timeout");
  if (t === undefined) return 30_000;
  const n = Number(t);
  if (!Number.isFinite(n) || n <= 0) throw new ClientError(`--timeout "${t}" is not a number of seconds`, EXIT.usage);
  return n * 1000;
}

/** The client for the registry the arguments name (see credentials.ts for how it is resolved). */
export function connect(a: Parsed, registry = a.values.get("--registry")): { client: RegistryClient; alias?: string } {
  const { alias, entry } = resolveRegistry(registry, readCredentials());
  const ca = a.values.get("--ca");
  const client = new RegistryClient(entry, { timeoutMs: timeoutOf(a), ...(ca !== undefined && { ca }) });
  return { client, ...(alias !== undefined && { alias }) };
}

/**
 * Prints a failure and returns its exit code: a usage error as one line plus the command's
 * usage (exit 2), anything else as one `berth: …` line.
 */
export function finish(err: unknown, usage: string): ExitCode {
  const code = exitCodeOf(err);
  // messages quote what servers said: shown, never obeyed by the terminal
  const message = printable(err instanceof Error ? err.message : String(err));
  if (code === EXIT.usage) console.error(`berth: ${message}\n${usage}`);
  else console.error(`berth: ${message}`);
  if (!(err instanceof ClientError) && err instanceof Error && process.env.BERTH_DEBUG) console.error(err.stack);
  return code;
}
