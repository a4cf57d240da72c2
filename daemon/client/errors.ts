/**
 * The client's exit codes, which scripts may rely on, and the one error type that carries
 * one. Every client command (repos, images, rm, cve, trust, ...) ends through
 * {@link exitCodeOf}: 0 ok, 1 any other failure, 2 usage, 3 not found, 4 denied (401/403),
 * 5 unreachable (connection, DNS, TLS, timeout), 6 unsupported (the registry lacks the API).
 */

/** Exit codes of the client commands. */
export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  notFound: 3,
  denied: 4,
  unreachable: 5,
  unsupported: 6,
} as const;

/** One of {@link EXIT}'s values. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure the client explains in one line and maps to an exit code. */
export class ClientError extends Error {
  constructor(
    message: string,
    readonly exit: ExitCode,
    /** The HTTP status, when the registry answered. */
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The exit code for an HTTP status (only meaningful for a status >= 400). */
export function exitForStatus(status: number): ExitCode {
  if (status === 401 || status === 403) return EXIT.denied;
  if (status === 404) return EXIT.notFound;
  return EXIT.error;
}

/** The exit code of any thrown value: a {@link ClientError}'s own, else 1. */
export function exitCodeOf(err: unknown): ExitCode {
  return err instanceof ClientError ? err.exit : EXIT.error;
}

/** Reads the most useful message out of an error body: OCI `errors[]`, the admin API's `error`, or the text. */
export function messageOfBody(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: string; errors?: { code?: string; message?: string; detail?: unknown }[] };
    if (typeof j.error === "string") return j.error;
    if (Array.isArray(j.errors) && j.errors.length > 0) {
      return j.errors.map((e) => [e.code, typeof e.detail === "string" && e.detail ? e.detail : e.message].filter(Boolean).join(": ")).join("; ");
    }
  } catch {
    // not JSON: the text as it came
  }
  return text.trim().slice(0, 300) || "(empty body)";
}
